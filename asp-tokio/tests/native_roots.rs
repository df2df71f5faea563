//! The client trusts the operating system's store besides the webpki roots:
//! rustls-native-certs reads `SSL_CERT_FILE` when it is set, as OpenSSL
//! does, so a CA put there is trusted with no `trust_pem`. (One test per
//! binary: the store is read once per process.)

use asp_tokio::proto::{ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_in_the_system_store_is_trusted() {
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

    // The certificate is in no store yet: SSL_CERT_FILE points at it before
    // the first client reads the system store.
    let path = std::env::temp_dir().join(format!("asp-native-roots-{}.pem", std::process::id()));
    std::fs::write(&path, &cert_pem).unwrap();
    std::env::set_var("SSL_CERT_FILE", &path);
    let client = ClientBuilder::new(server.url()).connect().await.expect("the system store's CA is trusted");
    let done = client.invoke("echo", Value::from("ok")).await.unwrap().result().await.unwrap();
    assert_eq!(done.result, Value::from("ok"));
    std::fs::remove_file(&path).unwrap();
}
