//! rustls configurations: from PEM files, from a custom CA, with the webpki
//! roots and the operating system's trust store. The crypto provider is the
//! process default when one is installed, else `ring` (feature `ring`).
//! Servers speak TLS through [`TlsServerStream`], which holds no buffer
//! while a connection is idle; clients through futures-rustls.

use std::io;
use std::sync::Arc;

pub use crate::tls_stream::TlsServerStream;

use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The crypto provider for every configuration made here: the process
/// default when the application installed one
/// (`CryptoProvider::install_default`, e.g. aws-lc-rs or a FIPS build),
/// else `ring` (feature `ring`, on by default).
fn provider() -> io::Result<Arc<rustls::crypto::CryptoProvider>> {
    if let Some(installed) = rustls::crypto::CryptoProvider::get_default() {
        return Ok(installed.clone());
    }
    #[cfg(feature = "ring")]
    return Ok(Arc::new(rustls::crypto::ring::default_provider()));
    #[cfg(not(feature = "ring"))]
    Err(invalid(
        "no rustls crypto provider: enable asp-driver's `ring` feature, or install one first with \
         rustls::crypto::CryptoProvider::install_default (e.g. rustls::crypto::aws_lc_rs::default_provider())",
    ))
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// A server configuration from a PEM certificate chain and private key.
pub fn server_config_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem).collect::<Result<_, _>>().map_err(invalid)?;
    if certs.is_empty() {
        return Err(invalid("no certificate in the PEM data"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        invalid(format!("no usable private key in the key PEM ({e}): expected a `BEGIN PRIVATE KEY` block"))
    })?;
    let config = ServerConfig::builder_with_provider(provider()?)
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(invalid)?;
    Ok(Arc::new(config))
}

/// The operating system's trusted CAs (rustls-native-certs: the system
/// store, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), read once per
/// process. Certificates it cannot parse are skipped.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "skipping part of the system trust store");
        }
        found.certs
    })
}

/// A client configuration that trusts the webpki roots, the operating
/// system's trust store (so a corporate CA installed there works, as in
/// browsers and curl) and, when given, the CA certificates in
/// `extra_ca_pem` (a private CA or a self-signed server certificate).
pub fn client_config(extra_ca_pem: Option<&[u8]>) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    roots.add_parsable_certificates(native_roots().iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots.add(cert.map_err(invalid)?).map_err(invalid)?;
            added += 1;
        }
        if added == 0 {
            // Otherwise the mistake would surface later as `UnknownIssuer`.
            return Err(invalid("no certificate found: expected PEM with a `BEGIN CERTIFICATE` block"));
        }
    }
    let config = ClientConfig::builder_with_provider(provider()?)
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A failed client TLS handshake as a [`ConnectError`](crate::ConnectError):
/// rustls's certificate verdicts become [`ConnectError::Tls`](crate::ConnectError::Tls)
/// with the fix spelled out; other I/O failures stay connection failures.
pub(crate) fn connect_error(error: io::Error) -> crate::ConnectError {
    let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        return crate::ConnectError::WebSocket(tungstenite::Error::Io(error));
    };
    crate::ConnectError::Tls(explain(tls))
}

/// What a rustls error means for someone holding the certificates: the
/// error and, where it can, how to fix it.
pub fn explain(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let hint = match error {
        rustls::Error::InvalidCertificate(C::Other(other)) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "the server's certificate is a CA certificate (basicConstraints CA:TRUE, which `openssl req -x509` \
             makes by default); serve an end-entity certificate signed by that CA, or make the self-signed one \
             with `-addext basicConstraints=critical,CA:FALSE`"
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "the server's certificate is not signed by a trusted CA: pass that CA (or the self-signed \
             certificate) with --ca FILE / ClientBuilder::trust_pem"
        }
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "the server's certificate does not name the host in the URL: connect by a name it lists \
             (subjectAltName)"
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server's certificate has expired"
        }
        _ => return error.to_string(),
    };
    format!("{hint} ({error})")
}
