//! A fake's wss:// side: a test CA and a server certificate for `127.0.0.1` and
//! `localhost`, generated with rcgen when the fake starts.

use std::sync::Arc;

use crate::FakeError;

/// A TLS acceptor for the fake called `name`, and its CA certificate (PEM) for the client
/// to trust.
pub(crate) fn acceptor(name: &str) -> Result<(tokio_rustls::TlsAcceptor, String), FakeError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let tls = |e: &dyn std::fmt::Display| FakeError::Tls(e.to_string());
    let ca_key = KeyPair::generate().map_err(|e| tls(&e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| tls(&e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("voice-ua {name} test CA"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| tls(&e))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().map_err(|e| tls(&e))?;
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).map_err(|e| tls(&e))?;
    leaf_params.distinguished_name.push(DnType::CommonName, name);
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).map_err(|e| tls(&e))?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)
        .map_err(|e| tls(&e))?;
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(server)), ca_cert.pem()))
}
