//! Integration tests of the web config through its public API: every file under
//! `testdata/` loads or fails as its name says, and the acceptors it builds serve
//! real handshakes over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod handshake;
mod pki;
mod testdata;
