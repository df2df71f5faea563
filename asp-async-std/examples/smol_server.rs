//! A minimal agent on smol: one streaming tool over wss:// with a
//! self-signed certificate written to `agent-cert.pem` for the client
//! example to trust.
//!
//!     cargo run -p asp-async-std --example smol_server
use asp_async_std::proto::{ToolSpec, Value};
use asp_async_std::smol::ServerBuilder;
use asp_async_std::{ToolContext, ToolError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        std::fs::write("agent-cert.pem", cert.cert.pem())?;

        let server = ServerBuilder::new("127.0.0.1:9443".parse()?)
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
        println!("listening on {}", server.url());
        server.spawn().closed().await;
        Ok(())
    })
}
