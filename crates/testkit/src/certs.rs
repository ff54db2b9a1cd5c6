//! Test certificates: a throw-away CA, the leaves it issues (server or client),
//! and rustls client configurations that trust it. Nothing here is written to
//! disk; tests put the PEM strings where their server reads them.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use rustls::{RootCertStore, SupportedProtocolVersion};

pub use rcgen::SanType;

/// A self-signed certificate authority that can sign leaves.
pub struct Ca {
    pub der: CertificateDer<'static>,
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate issued by a [`Ca`], with its private key (PKCS#8).
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key_pem: String,
    pub key_der: Vec<u8>,
}

impl Ca {
    /// A new CA with the common name `name` and a fresh key.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `sans` (see [`dns`] and [`ip`]), with a fresh key.
    pub fn leaf(&self, sans: Vec<SanType>) -> Leaf {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.distinguished_name.push(DnType::CommonName, "leaf");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

/// A DNS name subject alternative name.
pub fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

/// An IP address subject alternative name.
pub fn ip(addr: impl Into<IpAddr>) -> SanType {
    SanType::IpAddress(addr.into())
}

/// A rustls client configuration (ring) that trusts `ca` only, speaks `versions`
/// and presents `client_cert` when given.
pub fn client_config(
    ca: &Ca,
    versions: &[&'static SupportedProtocolVersion],
    client_cert: Option<&Leaf>,
) -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    match client_cert {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivatePkcs8KeyDer::from(leaf.key_der.clone()).into(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}
