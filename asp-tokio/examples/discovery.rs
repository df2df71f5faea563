//! Finding an agent by domain name (AID: a `_agent.<domain>` TXT record).
//! Self-contained: a DNS server on a loopback port (the test kit's) serves
//! the record of an agent started here; `--nameserver ADDR --domain NAME`
//! asks a real one instead.
//!
//!     cargo run -p asp-tokio --example discovery
use std::collections::HashMap;

use asp_tokio::proto::{ToolSpec, Value};
use asp_tokio::{ClientBuilder, Discovery, ServerBuilder, ToolContext, ToolError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let agent = ServerBuilder::new("127.0.0.1:0".parse()?)
        .tls_pem(cert_pem.as_bytes(), key_pem.as_bytes())?
        .tool(ToolSpec::named("hello"), |_ctx: ToolContext, _args: Value| async move {
            Ok::<_, ToolError>(Value::from("found me"))
        })
        .bind()
        .await?
        .spawn();

    // The zone: agent.example → that agent (a real deployment publishes
    // this record; `asp aid generate` writes it).
    let record: &'static str = Box::leak(format!("v=aid1;p=websocket;u={};s=Example agent", agent.url()).into());
    let dns = asp_testkit::dns::dns(HashMap::from([(
        "_agent.agent.example.",
        asp_testkit::dns::Answer::Txt(vec![vec![record]], 300),
    )]))
    .await;

    let discovery = Discovery::builder().nameservers([dns.addr]).well_known(false).build()?;
    let found = discovery.discover("agent.example", Some("websocket")).await?;
    println!("agent.example → {} ({})", found.record.uri, found.record.desc.as_deref().unwrap_or(""));
    let client =
        ClientBuilder::for_domain("agent.example", &discovery).await?.trust_pem(cert_pem.as_bytes())?.connect().await?;
    let done = client.invoke("hello", Value::Nil).await?.result().await?;
    println!("hello → {}", done.result);
    Ok(())
}
