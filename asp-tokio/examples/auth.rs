//! Who may connect, and who they are: an async auth hook (as a JWKS fetch
//! or a token introspection would be) returns an identity that every tool
//! call of that client sees.
//!
//!     cargo run -p asp-tokio --example auth
use asp_tokio::proto::{ErrorCode, ErrorInfo, ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};

struct User {
    name: &'static str,
    admin: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agent = ServerBuilder::new("127.0.0.1:0".parse()?)
        .allow_plaintext()
        .authenticate(|hello| async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await; // the lookup
            match hello.token.as_deref() {
                Some("ada-token") => Ok(User { name: "ada", admin: true }),
                Some("bob-token") => Ok(User { name: "bob", admin: false }),
                _ => Err(ErrorInfo::new(ErrorCode::UNAUTHENTICATED, "unknown token")),
            }
        })
        .tool(ToolSpec::named("reset"), |ctx: ToolContext, _args: Value| async move {
            let caller = ctx.caller();
            let user = caller.identity::<User>().expect("the hook ran");
            if !user.admin {
                return Err(ToolError::new(ErrorCode::FORBIDDEN, format!("{} may not reset", user.name)));
            }
            Ok(Value::from(format!("reset by {}", user.name)))
        })
        .bind()
        .await?
        .spawn();

    for token in ["ada-token", "bob-token", "eve-token"] {
        match ClientBuilder::new(agent.url()).allow_plaintext().token(token).connect().await {
            Ok(client) => match client.invoke("reset", Value::Nil).await?.result().await {
                Ok(done) => println!("{token}: {}", done.result),
                Err(refused) => println!("{token}: {} {}", refused.code, refused.message),
            },
            Err(refused) => println!("{token}: {refused}"),
        }
    }
    Ok(())
}
