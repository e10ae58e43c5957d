//! The rustls client of the load testers' `tls = true` (HTTP and WebSocket).
//!
//! DANGER: it accepts any server certificate. A load tester talks to a
//! tracker its user runs, typically with a self-signed certificate for
//! `localhost` and an IP address in the config, which no verifier would
//! accept; what is measured is the tracker's TLS work, which is the same
//! either way. The handshake signature is still verified (a real client
//! does that work too), so only the certificate's chain, name and validity
//! are not checked. Never reuse this verifier for anything that needs to
//! trust the server.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// A certificate verifier that accepts every certificate (see the module
/// documentation) but checks handshake signatures with the provider's
/// algorithms.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client config shared by every connection: ring, TLS 1.2 and 1.3,
/// any server certificate accepted; with `resumption`, rustls' default
/// session cache (so with `keep_alive = false` later connections resume
/// sessions, as real clients do), without it a full handshake every time.
pub fn client_config(resumption: bool) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCertificate {
        provider: provider.clone(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS client config")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// The name the client gives the server: `localhost` (sent as SNI) for a
/// loopback address, else the IP address (rustls sends no SNI for one).
pub fn server_name(server: SocketAddr) -> ServerName<'static> {
    if server.ip().is_loopback()
        && let Ok(name) = ServerName::try_from("localhost")
    {
        return name;
    }
    ServerName::IpAddress(server.ip().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let local = server_name("127.0.0.1:443".parse().unwrap());
        assert_eq!(local.to_str(), "localhost");
        let v6 = server_name("[::1]:443".parse().unwrap());
        assert_eq!(v6.to_str(), "localhost");
        let remote = server_name("192.0.2.1:443".parse().unwrap());
        assert!(matches!(remote, ServerName::IpAddress(_)));
        client_config(true).unwrap();
        client_config(false).unwrap();
    }
}
