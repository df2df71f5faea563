//! An agent with one streaming tool over wss://, with a self-signed
//! certificate written to the temporary directory for the client example:
//!
//!     cargo run -p asp-tokio --example server [ADDR]     # default 127.0.0.1:0
//!     cargo run -p asp-tokio --example client -- URL CERT  # what the server printed
use asp_tokio::proto::{ToolSpec, Value};
use asp_tokio::{ServerBuilder, ToolContext, ToolError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let cert_path = std::env::temp_dir().join(format!("asp-example-cert-{}.pem", std::process::id()));
    std::fs::write(&cert_path, cert.cert.pem())?;

    let server = ServerBuilder::new(addr.parse()?)
        .tls_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())?
        .tool(ToolSpec::named("shout"), |ctx: ToolContext, args: Value| async move {
            let text = args.as_str().unwrap_or("hello").to_uppercase();
            for word in text.split(' ') {
                ctx.send(format!("{word} ")).await?; // waits for the client's credit
            }
            Ok::<_, ToolError>(Value::from(text.len()))
        })
        .bind()
        .await?;
    println!("cargo run -p asp-tokio --example client -- {} {}", server.url(), cert_path.display());
    server.spawn().closed().await;
    Ok(())
}
