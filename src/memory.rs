//! The allocation policy for large buffers (expositions, their plain text, large
//! response bodies): sized so that freeing them gives the memory back to the system.

/// Capacity of a large buffer, at least: see [`buffer`].
pub const LARGE_BUFFER: usize = 32 << 20;

/// From this size on, a buffer is large.
pub const LARGE: usize = 1 << 20;

/// A buffer for `size` bytes.
///
/// From 1 MiB on, its capacity is at least 32 MiB, which only reserves address space
/// (pages never written are never resident), but keeps glibc's malloc from holding on
/// to the memory: glibc maps allocations of 32 MiB and more directly and unmaps them
/// when freed, whereas smaller ones, once a large block has been freed (its mmap
/// threshold then rises to that size), come from per-thread arenas that keep freed
/// blocks. Allocated anew at every poll, 15 MiB buffers made the exporter's RSS grow
/// by about 10 MiB a poll in the benchmark (README, "Performance"), past 100 MiB.
pub fn buffer(size: usize) -> Vec<u8> {
    if size >= LARGE {
        Vec::with_capacity(size.max(LARGE_BUFFER))
    } else {
        Vec::with_capacity(size)
    }
}

/// Makes room in `buf` for `more` bytes: as [`buffer`] once it is large, else by
/// the usual doubling.
pub fn reserve(buf: &mut Vec<u8>, more: usize) {
    let need = buf.len().saturating_add(more);
    if need <= buf.capacity() {
        return;
    }
    if need >= LARGE {
        buf.reserve_exact(need.max(LARGE_BUFFER) - buf.len());
    } else {
        buf.reserve(more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_reserve_at_least_32_mib() {
        assert_eq!(buffer(100).capacity(), 100);
        assert!(buffer(LARGE).capacity() >= LARGE_BUFFER);
        let mut b = vec![0u8; 1000];
        reserve(&mut b, 10);
        assert!(b.capacity() >= 1010 && b.capacity() < LARGE);
        reserve(&mut b, LARGE);
        assert!(b.capacity() >= LARGE_BUFFER);
    }
}
