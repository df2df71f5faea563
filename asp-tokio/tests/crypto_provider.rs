//! The crypto provider is the application's to pick: a provider installed as
//! the process default (`CryptoProvider::install_default`: aws-lc-rs, a
//! FIPS build, or as here a restricted `ring`) is what the server and the
//! client use. (One test per binary: the default is process-wide.)

use std::sync::Arc;

use asp_tokio::proto::{ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};
use rustls::crypto::{ring, CryptoProvider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_default_provider_is_used() {
    // Only ChaCha20-Poly1305: a peer without it cannot complete a handshake.
    let chacha_only = CryptoProvider {
        cipher_suites: vec![ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256],
        ..ring::default_provider()
    };
    chacha_only.install_default().expect("first in this process");

    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let server = ServerBuilder::new("127.0.0.1:0".parse().unwrap())
        .tls_pem(cert_pem.as_bytes(), key_pem.as_bytes())
        .unwrap()
        .tool(ToolSpec::named("echo"), |_ctx: ToolContext, args: Value| async move { Ok::<_, ToolError>(args) })
        .bind()
        .await
        .unwrap()
        .spawn();

    // Our client (same process default) connects.
    let client = ClientBuilder::new(server.url()).trust_pem(cert_pem.as_bytes()).unwrap().connect().await.unwrap();
    assert_eq!(client.invoke("echo", Value::from(1)).await.unwrap().result().await.unwrap().result, Value::from(1));

    // A client offering only AES-GCM is refused: the server is on the
    // installed provider, not on a built-in one.
    let aes_only = CryptoProvider {
        cipher_suites: vec![ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
        ..ring::default_provider()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(
        rustls_pki_types::pem::PemObject::pem_slice_iter(cert_pem.as_bytes()).map(Result::unwrap),
    );
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(aes_only))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let aes = ClientBuilder::new(server.url()).tls(Arc::new(config)).connect().await;
    let error = aes.unwrap_err().to_string();
    assert!(error.contains("TLS") || error.contains("handshake") || error.contains("alert"), "{error}");
}
