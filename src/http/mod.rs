//! Outbound HTTP, shared by the Azure AD and Partner Center clients: what a failed
//! exchange was ([`TransportError`], a closed set instead of message strings), bodies
//! read with a size limit ([`read_body_limited`]), and the retry policy
//! ([`retry`]).
//!
//! Nothing here knows Azure AD or Partner Center; the clients decide what a status
//! or a body means.

pub mod retry;

use bytes::Bytes;

/// Why an exchange gave no usable answer. Every variant is worth a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The request or the body took longer than `--poll.timeout`.
    #[error("timeout")]
    Timeout,
    /// No connection (refused, DNS, TLS handshake).
    #[error("connection failed")]
    Connect,
    /// The answer's body was cut short (reset or closed mid-body).
    #[error("body read failed")]
    Body,
    /// Any other failure to send or receive.
    #[error("request failed")]
    Other,
}

impl TransportError {
    /// Every kind, in one list.
    pub const ALL: &'static [TransportError] = &[
        TransportError::Timeout,
        TransportError::Connect,
        TransportError::Body,
        TransportError::Other,
    ];

    /// A fixed name for logs: `timeout`, `connect`, `body`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportError::Timeout => "timeout",
            TransportError::Connect => "connect",
            TransportError::Body => "body",
            TransportError::Other => "other",
        }
    }

    /// Classifies a reqwest failure. Its message is not kept: it may carry a URL,
    /// and with it a tenant or a token.
    pub fn of(e: &reqwest::Error) -> TransportError {
        if e.is_timeout() {
            TransportError::Timeout
        } else if e.is_connect() {
            TransportError::Connect
        } else if e.is_body() || e.is_decode() {
            TransportError::Body
        } else {
            TransportError::Other
        }
    }
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The body is (or announces itself as) larger than the limit.
    #[error("response body larger than the limit")]
    TooLarge,
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Reads a response body, refusing more than `limit` bytes without buffering them.
pub async fn read_body_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, ReadError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(ReadError::TooLarge);
    }
    // Sized as announced (a large body so that its memory goes back when it is freed).
    let announced = response.content_length().map_or(0, |n| n as usize);
    let mut body = crate::memory::buffer(announced);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len().saturating_add(chunk.len()) > limit {
                    return Err(ReadError::TooLarge);
                }
                crate::memory::reserve(&mut body, chunk.len());
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(body)),
            Err(e) => return Err(ReadError::Transport(TransportError::of(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transport_kind_has_its_own_name() {
        let names: std::collections::HashSet<&str> =
            TransportError::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), TransportError::ALL.len());
    }
}
