//! Certificates and rustls configs for tests: a fresh self-signed
//! certificate for `localhost` and 127.0.0.1, written where a daemon reads
//! it or served by a fake tracker, and a client that trusts exactly it.

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

pub type Certified = rcgen::CertifiedKey<rcgen::KeyPair>;

/// A new self-signed certificate for `localhost` and 127.0.0.1.
pub fn self_signed() -> Certified {
    rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap()
}

/// A new certificate written to `dir/NAME.pem`, its key to `dir/NAME.key`.
pub fn write_cert(dir: &Path, name: &str) -> Certified {
    let certified = self_signed();
    std::fs::write(dir.join(format!("{name}.pem")), certified.cert.pem()).unwrap();
    let key = certified.signing_key.serialize_pem();
    std::fs::write(dir.join(format!("{name}.key")), key).unwrap();
    certified
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config serving a new self-signed certificate.
pub fn server_config() -> Arc<rustls::ServerConfig> {
    let certified = self_signed();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    Arc::new(config)
}

/// A client connection over `tcp` to `localhost` that trusts only
/// `trusted`; the handshake happens on first use.
pub fn client(
    tcp: TcpStream,
    trusted: &Certified,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}
