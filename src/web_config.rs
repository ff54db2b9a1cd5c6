//! Temporary stub of the exporter-toolkit web configuration (replaced by the real module).
use std::path::Path;

pub struct WebConfig;
#[derive(Debug, thiserror::Error)]
#[error("web config not supported yet")]
pub struct WebConfigError;
impl WebConfig {
    pub fn load(_path: &Path) -> Result<WebConfig, WebConfigError> {
        Err(WebConfigError)
    }
    pub fn tls(&self) -> Option<TlsAcceptorSource> {
        None
    }
    pub fn basic_auth(&self) -> Option<BasicAuth> {
        None
    }
    pub fn headers(&self) -> &[(http::HeaderName, http::HeaderValue)] {
        &[]
    }
}
#[derive(Clone)]
pub struct TlsAcceptorSource(tokio_rustls::TlsAcceptor);
impl TlsAcceptorSource {
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.0.clone()
    }
}
#[derive(Clone)]
pub struct BasicAuth;
impl BasicAuth {
    pub async fn check(&self, _authorization: Option<&http::HeaderValue>) -> bool {
        false
    }
}
