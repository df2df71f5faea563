//! ASP on a route of an existing axum application, beside its HTTP routes.
//!
//!     cargo run -p asp-tokio --example axum_route
use asp_tokio::proto::{ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let asp = ServerBuilder::new("127.0.0.1:0".parse()?)
        .tool(ToolSpec::named("echo"), |_ctx: ToolContext, args: Value| async move { Ok::<_, ToolError>(args) })
        .into_service();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route("/v1/agent-socket", asp_tokio::axum::route(asp));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = ClientBuilder::new(format!("ws://{addr}/v1/agent-socket")).allow_plaintext().connect().await?;
    let done = client.invoke("echo", Value::from("through axum")).await?.result().await?;
    println!("echo → {} (and GET http://{addr}/health still answers)", done.result);
    Ok(())
}
