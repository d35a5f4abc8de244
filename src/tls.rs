//! In-process TLS termination (`TLS_CERT`/`TLS_KEY`) for deployments without a proxy: rustls with
//! the `ring` provider, TLS 1.3 and 1.2 only, its default (forward-secret AEAD) cipher suites.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or not PEM of the expected kind.
    #[error("{which} {path}: {message}")]
    File {
        /// `TLS_CERT` or `TLS_KEY`.
        which: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A server configuration for the certificate chain and key in `files`.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let file_error = |which, path: &std::path::Path, message: String| TlsError::File {
        which,
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| file_error("TLS_CERT", &files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("TLS_CERT", &files.cert, "no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_error("TLS_KEY", &files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(config)
}
