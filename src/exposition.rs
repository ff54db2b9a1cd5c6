//! The encoding of the collectors' parts into the Prometheus text format 0.0.4.
//!
//! Each part is rendered by its collector with a [`Render`] into an [`Exposition`]
//! when that part changes: gzip, compressed once, and the plain text decompressed
//! from it once, when a scrape first asks for it. A scrape sends the parts one after
//! the other (gzip members concatenate), so a part that did not change is never
//! encoded again. This is what grows with the number of customers, so a scrape only
//! hands on shared bytes, without copying them.

use std::fmt::Write as _;
use std::io::Write as _;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::memory::buffer;

/// The content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A part's series, encoded once per change.
///
/// The gzip form is what Prometheus asks for; it is rendered and compressed in
/// chunks, so rendering never holds the whole text (15 MiB at 10,000 customers) next
/// to the exposition still being served. The plain text is decompressed from it on the
/// first scrape that wants it and kept with it: a server scraped only by Prometheus
/// never holds it at all.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Text format 0.0.4, gzip-compressed (one gzip member).
    pub gzip: Bytes,
    /// The same text uncompressed, once a scrape has asked for it.
    text: tokio::sync::OnceCell<Bytes>,
}

/// Text rendered before it is handed to the compressor.
const RENDER_CHUNK: usize = 64 * 1024;

impl Exposition {
    /// Encodes what `render` writes; `size_hint` is the expected text size.
    pub fn render(size_hint: usize, render: impl FnOnce(&mut Render<'_>)) -> Exposition {
        // The text format compresses about sevenfold.
        let out = buffer(1024 + size_hint / 6);
        let mut encoder = GzEncoder::new(out, Compression::default());
        {
            // Writing to a Vec cannot fail.
            let mut sink = |chunk: &str| {
                let _ = encoder.write_all(chunk.as_bytes());
            };
            let mut out = Render::new(&mut sink);
            render(&mut out);
            out.finish();
        }
        Exposition {
            gzip: Bytes::from(encoder.finish().unwrap_or_default()),
            text: tokio::sync::OnceCell::new(),
        }
    }

    /// Whether the plain text has been asked for (and so is kept).
    pub fn text_ready(&self) -> bool {
        self.text.initialized()
    }

    /// The text format, decompressed from [`Exposition::gzip`] on first use (on a
    /// blocking thread: 10,000 customers take about 30 ms) and kept.
    pub async fn text(&self) -> Bytes {
        let text = self.text.get_or_init(|| async {
            let gzip = self.gzip.clone();
            match tokio::task::spawn_blocking(move || gunzip(&gzip)).await {
                Ok(text) => text,
                // The runtime is shutting down: decompress here.
                Err(_) => gunzip(&self.gzip),
            }
        });
        text.await.clone()
    }
}

/// Decompresses one gzip member of ours into a buffer of the exact size.
fn gunzip(gzip: &[u8]) -> Bytes {
    use std::io::Read as _;
    // ISIZE, the member's uncompressed size, ends the member (RFC 1952 §2.3.1).
    let size = gzip
        .len()
        .checked_sub(4)
        .and_then(|at| gzip.get(at..))
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b: [u8; 4]| u32::from_le_bytes(b) as usize)
        // Deflate expands at most 1032-fold: a wrong ISIZE cannot reserve more.
        .min(gzip.len().saturating_mul(1032));
    let mut out = buffer(size);
    // Our own gzip of valid UTF-8: decompression cannot fail short of a bug, which
    // would show as a truncated exposition.
    if let Err(err) = flate2::read::GzDecoder::new(gzip).read_to_end(&mut out) {
        tracing::error!(error = %err, "decompressing the exposition failed");
    }
    Bytes::from(out)
}

/// Compresses `data` as one gzip member. Several members concatenated form a valid
/// gzip stream (RFC 1952 §2.2), which is how a scrape appends the live metrics to the
/// cached compressed snapshot without recompressing it.
#[cfg(test)]
pub fn gzip(data: &[u8], level: Compression) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), level);
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// `data` as one gzip member of stored (uncompressed) deflate blocks: how a scrape
/// appends the live metrics to the cached gzip. They are a few KiB; compressing them
/// would cost a compressor (about 300 KiB of state to allocate and clear) and more
/// CPU per scrape than the bytes saved are worth.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = u16::MAX as usize;
    let mut out = Vec::with_capacity(data.len() + data.len() / BLOCK * 5 + 23);
    // ID1 ID2, CM = deflate, no flags, no mtime, no extra flags, OS unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut blocks = data.chunks(BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        // BFINAL on the last block, BTYPE 00 (stored), then LEN and NLEN.
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// A metric family of a part: a gauge with its name and HELP text.
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
}

/// The text-format writer a part renders with: it hands on chunks of about
/// [`RENDER_CHUNK`] bytes, so a large part is never held whole as text.
pub struct Render<'a> {
    buf: String,
    sink: &'a mut dyn FnMut(&str),
}

impl<'a> Render<'a> {
    pub fn new(sink: &'a mut dyn FnMut(&str)) -> Render<'a> {
        Render {
            buf: String::with_capacity(RENDER_CHUNK + 4096),
            sink,
        }
    }

    /// `# HELP` and `# TYPE` of a gauge family.
    pub fn header(&mut self, family: &Family) {
        let _ = writeln!(self.buf, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(self.buf, "# TYPE {} gauge", family.name);
    }

    /// One sample; label values are escaped.
    pub fn sample(&mut self, family: &Family, labels: &[(&str, &str)], value: f64) {
        let out = &mut self.buf;
        out.push_str(family.name);
        out.push('{');
        for (i, (name, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push_str("=\"");
            escape_label_value(out, v);
            out.push('"');
        }
        out.push_str("} ");
        write_value(out, value);
        out.push('\n');
        if self.buf.len() >= RENDER_CHUNK {
            (self.sink)(&self.buf);
            self.buf.clear();
        }
    }

    fn finish(mut self) {
        if !self.buf.is_empty() {
            (self.sink)(&self.buf);
            self.buf.clear();
        }
    }
}

/// Renders into plain text, for tests.
#[cfg(test)]
pub fn render_text(render: impl FnOnce(&mut Render<'_>)) -> String {
    let mut text = String::new();
    {
        let mut sink = |chunk: &str| text.push_str(chunk);
        let mut out = Render::new(&mut sink);
        render(&mut out);
        out.finish();
    }
    text
}

/// Escapes a label value per the text format: backslash, double quote and line feed.
pub fn escape_label_value(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `n` samples of one family, as a part would render them.
    fn many(n: usize) -> impl Fn(&mut Render<'_>) {
        const F: Family = Family {
            name: "partnercenter_test",
            help: "Test family.",
        };
        move |out: &mut Render<'_>| {
            out.header(&F);
            for i in 0..n {
                let id = format!("{i:08}-f9ff-4252-b2bf-40e21937a51a");
                out.sample(
                    &F,
                    &[("customer_id", &id), ("name", "Customer \"x\"")],
                    i as f64 * 0.1,
                );
            }
        }
    }

    #[tokio::test]
    async fn exposition_text_and_gzip_match_the_render() {
        // Large enough to be rendered and compressed in several chunks.
        let want = render_text(many(5000)).into_bytes();
        assert!(want.len() > 3 * RENDER_CHUNK);
        let exposition = Exposition::render(want.len(), many(5000));
        assert_eq!(exposition.text().await, want);
        assert_eq!(exposition.text().await, want, "the text is kept");
        assert_eq!(gunzip(&exposition.gzip), want);
    }

    #[tokio::test]
    async fn expositions_of_any_size_round_trip() {
        for n in [8000, 3000, 0, 6000] {
            let exposition = Exposition::render(0, many(n));
            assert_eq!(exposition.text().await, render_text(many(n)).into_bytes());
        }
    }

    #[test]
    fn gzip_members_concatenate() {
        use std::io::Read;
        let mut body = gzip(b"first\n", Compression::default());
        body.extend(gzip(b"second\n", Compression::fast()));
        let mut out = String::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "first\nsecond\n");
    }

    proptest! {
        #[test]
        fn escaped_values_parse_back(value in ".{0,40}") {
            let mut out = String::new();
            escape_label_value(&mut out, &value);
            prop_assert!(!out.contains('\n'));
            // Unescape and compare.
            let mut back = String::new();
            let mut chars = out.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => back.push('\n'),
                        Some(other) => back.push(other),
                        None => prop_assert!(false, "dangling backslash"),
                    }
                } else {
                    prop_assert!(c != '"', "unescaped quote");
                    back.push(c);
                }
            }
            prop_assert_eq!(back, value);
        }

        #[test]
        fn stored_gzip_decodes(data in proptest::collection::vec(any::<u8>(), 0..200_000)) {
            use std::io::Read;
            let mut body = gzip(b"cached\n", Compression::default());
            body.extend(gzip_stored(&data));
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out).unwrap();
            prop_assert_eq!(&out[..7], b"cached\n");
            prop_assert_eq!(&out[7..], &data[..]);
        }

        #[test]
        fn values_render_as_numbers(v in any::<f64>()) {
            let mut out = String::new();
            write_value(&mut out, v);
            let parsed: f64 = match out.as_str() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                s => s.parse().unwrap(),
            };
            prop_assert!(parsed == v || (v.is_nan() && parsed.is_nan()));
        }
    }
}
