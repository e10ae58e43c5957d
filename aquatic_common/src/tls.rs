//! TLS server config from PEM files, swappable at runtime: SIGUSR1 loads
//! the files again and new connections use the new certificate; existing
//! connections keep theirs. A broken file keeps the old config. Used by the
//! HTTP and WebSocket trackers.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub type SharedTlsConfig = Arc<ArcSwap<ServerConfig>>;

pub fn load(certificate_path: &Path, private_key_path: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(certificate_path)
        .with_context(|| {
            format!(
                "TLS certificate {}: cannot read",
                certificate_path.display()
            )
        })?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "TLS certificate {}: invalid PEM",
                certificate_path.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "TLS certificate {}: no certificate in the file",
            certificate_path.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(private_key_path).with_context(|| {
        format!(
            "TLS private key {}: cannot read a PEM private key",
            private_key_path.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: no protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "TLS: certificate {} and key {} do not form a valid pair",
                certificate_path.display(),
                private_key_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The config both TCP daemons share between their socket workers: loaded
/// when `enabled`, none (plain TCP) otherwise.
pub fn load_shared(
    enabled: bool,
    certificate_path: &Path,
    private_key_path: &Path,
) -> anyhow::Result<Option<SharedTlsConfig>> {
    if !enabled {
        return Ok(None);
    }
    let config = load(certificate_path, private_key_path)?;
    Ok(Some(Arc::new(ArcSwap::new(config))))
}

/// Load the files again into `shared`; on failure keep the old config and
/// log why.
pub fn reload_and_log(shared: &SharedTlsConfig, certificate_path: &Path, private_key_path: &Path) {
    match load(certificate_path, private_key_path) {
        Ok(new) => {
            shared.store(new);
            log::info!("TLS certificate reloaded");
        }
        Err(err) => log::error!("TLS certificate reload failed, keeping the old one: {err:#}"),
    }
}
