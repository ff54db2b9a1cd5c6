//! Client certificates: `client_auth_type` (with the meaning of Go's
//! `tls.ClientAuthType`), the rustls verifier chosen for it, and the
//! `client_allowed_sans` check on top.
//!
//! Owns which client certificates a handshake accepts; it must not touch the
//! server's own certificate. Subject alternative names are read with
//! `x509-parser`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::tls::{TlsSettings, CLIENT_AUTH_TYPE, CLIENT_CA_FILE};
use crate::Problem;

/// `client_auth_type`, with the meaning of Go's `tls.ClientAuthType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: [(&'static str, ClientAuth); 5] = [
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        (
            "VerifyClientCertIfGiven",
            ClientAuth::VerifyClientCertIfGiven,
        ),
        (
            "RequireAndVerifyClientCert",
            ClientAuth::RequireAndVerifyClientCert,
        ),
    ];

    pub(crate) fn parse(value: Option<&str>) -> Result<ClientAuth, Problem> {
        let Some(value) = value else {
            return Ok(ClientAuth::NoClientCert);
        };
        if value == "RequireClientCert" {
            // Old spelling exporter-toolkit still accepts.
            return Ok(ClientAuth::RequireAnyClientCert);
        }
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == value)
            .map(|(_, auth)| *auth)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                Problem::new(
                    CLIENT_AUTH_TYPE,
                    format!(
                        "unknown value {value:?} (expected one of {})",
                        names.join(", ")
                    ),
                )
            })
    }

    pub(crate) fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, auth)| *auth == self)
            .map_or("NoClientCert", |(name, _)| *name)
    }

    /// Whether a presented certificate is checked against `client_ca_file`.
    pub(crate) fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    /// Whether a handshake without a client certificate fails.
    pub(crate) fn mandatory(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// The verifier `settings` ask for: none, any certificate, or one issued by
/// `client_ca_file`; wrapped in the `client_allowed_sans` check when that is set.
pub(crate) fn verifier(settings: &TlsSettings) -> Result<Arc<dyn ClientCertVerifier>, Problem> {
    let roots = match &settings.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in ca.certificates()? {
                roots.add(cert).map_err(|err| {
                    Problem::new(ca.key, format!("not a usable CA certificate: {err}"))
                })?;
            }
            Some((ca.key, Arc::new(roots)))
        }
        None => None,
    };
    let algorithms = settings.provider.signature_verification_algorithms;
    let verifier: Arc<dyn ClientCertVerifier> = match (settings.client_auth, roots) {
        (ClientAuth::NoClientCert, _) => WebPkiClientVerifier::no_client_auth(),
        (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, roots) => {
            Arc::new(AnyClientCert {
                mandatory: settings.client_auth.mandatory(),
                hints: roots.map(|(_, r)| r.subjects()).unwrap_or_default(),
                algorithms,
            })
        }
        (auth, Some((key, roots))) => {
            let builder =
                WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&settings.provider));
            let builder = if auth.mandatory() {
                builder
            } else {
                builder.allow_unauthenticated()
            };
            builder.build().map_err(|err| {
                Problem::new(key, format!("cannot verify client certificates: {err}"))
            })?
        }
        (auth, None) => {
            return Err(Problem::new(
                CLIENT_CA_FILE,
                format!("required when client_auth_type is {}", auth.name()),
            ))
        }
    };
    Ok(match &settings.allowed_sans {
        Some(allowed) => Arc::new(AllowedSans {
            inner: verifier,
            allowed: Arc::clone(allowed),
        }),
        None => verifier,
    })
}

/// `RequestClientCert` / `RequireAnyClientCert`: asks for a certificate and accepts
/// any, without checking who issued it (as Go does). The handshake signature is
/// still checked, so the client must hold the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    /// Subjects of `client_ca_file`, if given, sent as hints as Go does.
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: after `inner` accepts the certificate, one of its DNS,
/// e-mail, IP or URI SANs must equal an allowed value exactly (no wildcard
/// matching), as in exporter-toolkit.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Arc<[String]>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = subject_alt_names(end_entity);
        if sans.iter().any(|san| self.allowed.contains(san)) {
            Ok(verified)
        } else {
            tracing::debug!(
                presented = ?sans,
                "client certificate refused: none of its SANs is in client_allowed_sans"
            );
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The DNS, e-mail, IP and URI subject alternative names of a DER certificate,
/// spelled as Go's `x509.Certificate` fields print them. Empty if the certificate
/// has none or cannot be read.
fn subject_alt_names(cert: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(cert) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::RFC822Name(name) | GeneralName::DNSName(name) | GeneralName::URI(name) => {
                Some((*name).to_owned())
            }
            GeneralName::IPAddress(ip) => ip_address(ip).map(|ip| ip.to_string()),
            _ => None,
        })
        .collect()
}

/// An `iPAddress` SAN; Go prints IPv4-mapped IPv6 addresses in dotted form.
fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
    Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn self_signed(sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_alt_names_are_read_like_go() {
        let der = self_signed(vec![
            SanType::DnsName("a.example".try_into().unwrap()),
            SanType::IpAddress("192.0.2.1".parse().unwrap()),
            SanType::IpAddress("2001:db8::1".parse().unwrap()),
            SanType::IpAddress("::ffff:198.51.100.7".parse().unwrap()),
            SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
            SanType::URI("spiffe://example/prometheus".try_into().unwrap()),
        ]);
        assert_eq!(
            subject_alt_names(&der),
            [
                "a.example",
                "192.0.2.1",
                "2001:db8::1",
                "198.51.100.7",
                "ops@example.com",
                "spiffe://example/prometheus"
            ]
        );
    }

    #[test]
    fn unreadable_or_san_less_certificates_have_no_names() {
        assert!(subject_alt_names(&self_signed(Vec::new())).is_empty());
        assert!(subject_alt_names(b"\x30\x82\xff").is_empty());
        assert!(subject_alt_names(b"").is_empty());
        let der = self_signed(vec![SanType::DnsName("a.example".try_into().unwrap())]);
        assert!(subject_alt_names(&der[..der.len() / 2]).is_empty());
    }

    #[test]
    fn client_auth_type_names_round_trip() {
        for (name, auth) in ClientAuth::NAMES {
            assert_eq!(ClientAuth::parse(Some(name)).unwrap(), auth);
            assert_eq!(auth.name(), name);
        }
        assert_eq!(
            ClientAuth::parse(Some("RequireClientCert")).unwrap(),
            ClientAuth::RequireAnyClientCert
        );
        assert_eq!(ClientAuth::parse(None).unwrap(), ClientAuth::NoClientCert);
    }
}
