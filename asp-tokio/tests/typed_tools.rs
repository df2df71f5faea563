//! Writing agents the typed way: tools over Rust types with generated,
//! enforced schemas, streaming tools, and what a handler knows about its
//! call (the identity an async auth hook returned, meta, deadline, trace).

use std::collections::BTreeMap;
use std::time::Duration;

use asp_tokio::proto::{ErrorCode, ErrorInfo, Invoke, Value};
use asp_tokio::{typed, ClientBuilder, ServerBuilder, ServerHandle, ToolContext, ToolError};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
struct Add {
    /// The first term.
    a: i64,
    b: i64,
}

#[derive(Serialize)]
struct Sum {
    sum: i64,
}

#[derive(Deserialize, JsonSchema)]
struct Count {
    n: u32,
    #[serde(default)]
    prefix: Option<String>,
}

/// What the async auth hook found out about the client.
struct User {
    name: String,
}

async fn server() -> ServerHandle {
    let (count_spec, count) = typed::streaming("count", "Counts to n", |_ctx: ToolContext, args: Count| {
        let prefix = args.prefix.unwrap_or_default();
        futures::stream::iter((1..=args.n).map(move |i| Ok::<_, ToolError>(format!("{prefix}{i} "))))
    });
    ServerBuilder::new("127.0.0.1:0".parse().unwrap())
        .allow_plaintext()
        // Async, as a JWKS fetch or a token introspection would be.
        .authenticate(|hello| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            match hello.token.as_deref() {
                Some("ada-token") => Ok(User { name: "ada".into() }),
                _ => Err(ErrorInfo::new(ErrorCode::UNAUTHENTICATED, "unknown token")),
            }
        })
        .typed_tool("add", "Adds two integers", |_ctx: ToolContext, args: Add| async move {
            Ok::<_, ToolError>(Sum { sum: args.a + args.b })
        })
        .typed_tool("refuse", "Fails in words", |_ctx: ToolContext, _args: Add| async move {
            Err::<Sum, _>("no, thank you")
        })
        .tool(count_spec, count)
        .typed_tool("context", "What the handler knows", |ctx: ToolContext, _args: BTreeMap<String, String>| async move {
            let user = ctx.caller().identity::<User>().map(|u| u.name.clone());
            Ok::<_, ToolError>(serde_json::json!({
                "user": user,
                "name": ctx.caller().name(),
                "meta": ctx.meta(),
                "trace": ctx.trace(),
                "deadline_ms": ctx.deadline().map(|d| d.saturating_duration_since(std::time::Instant::now()).as_millis() as u64),
            }))
        })
        .bind()
        .await
        .unwrap()
        .spawn()
}

fn args(json: serde_json::Value) -> Value {
    asp_tokio::proto::rmpv::ext::to_value(json).unwrap()
}

fn json(value: &Value) -> serde_json::Value {
    asp_tokio::proto::rmpv::ext::from_value(value.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_tools_have_checked_schemas_and_context() {
    let server = server().await;
    let refused = ClientBuilder::new(server.url()).allow_plaintext().token("eve").connect().await;
    assert!(refused.unwrap_err().to_string().contains("unknown token"));
    let client = ClientBuilder::new(server.url()).allow_plaintext().token("ada-token").connect().await.unwrap();

    // The input schema is generated from the type.
    let tools = client.peer_tools();
    let add = tools.iter().find(|t| t.name == "add").unwrap();
    let schema = json(&add.input);
    assert_eq!(schema["required"], serde_json::json!(["a", "b"]));
    assert_eq!(schema["properties"]["a"]["description"], "The first term.");
    assert_eq!(add.desc.as_deref(), Some("Adds two integers"));

    let done = client.invoke("add", args(serde_json::json!({"a": 2, "b": 40}))).await.unwrap().result().await.unwrap();
    assert_eq!(json(&done.result), serde_json::json!({"sum": 42}));

    // Connection::call: any Serialize in, any Deserialize out.
    let sum: BTreeMap<String, i64> = client.call("add", serde_json::json!({"a": 1, "b": 2})).await.unwrap();
    assert_eq!(sum["sum"], 3);
    let refused = client.call::<Value>("add", serde_json::json!({"a": "x"})).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::INVALID_ARGUMENTS);
    let mismatch = client.call::<String>("add", serde_json::json!({"a": 1, "b": 2})).await.unwrap_err();
    assert_eq!(mismatch.code, ErrorCode::INTERNAL);
    assert!(mismatch.message.starts_with("the result"), "{}", mismatch.message);

    // Arguments that break the schema never reach the handler.
    let wrong = client.invoke("add", args(serde_json::json!({"a": 2, "b": "x"}))).await.unwrap().result().await;
    let wrong = wrong.unwrap_err();
    assert_eq!(wrong.code, ErrorCode::INVALID_ARGUMENTS);
    assert!(wrong.message.starts_with("`/b`:"), "{}", wrong.message);
    assert_eq!(json(&wrong.data)[0]["path"], "/b");
    let missing = client.invoke("add", args(serde_json::json!({"a": 2}))).await.unwrap().result().await.unwrap_err();
    assert_eq!(missing.code, ErrorCode::INVALID_ARGUMENTS);
    assert!(missing.message.contains("\"b\""), "{}", missing.message);
    let none = client.invoke("add", Value::Nil).await.unwrap().result().await.unwrap_err();
    assert_eq!(none.code, ErrorCode::INVALID_ARGUMENTS);

    // A handler's `Err("…")` is TOOL_FAILED with that message.
    let failed = client.invoke("refuse", args(serde_json::json!({"a": 1, "b": 1}))).await.unwrap().result().await;
    let failed = failed.unwrap_err();
    assert_eq!((failed.code, failed.message.as_str()), (ErrorCode::TOOL_FAILED, "no, thank you"));

    // A streaming tool's items are its output.
    let mut counting = client.invoke("count", args(serde_json::json!({"n": 4, "prefix": "#"}))).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = counting.next().await {
        out.extend_from_slice(&chunk);
    }
    assert_eq!(out, b"#1 #2 #3 #4 ");
    counting.result().await.unwrap();

    // What the handler knows: the auth hook's identity, meta, trace, deadline.
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut invoke = Invoke::new("context", Value::Nil);
    invoke.meta.insert("tenant".into(), "acme".into());
    invoke.trace = Some(trace.into());
    invoke.timeout = Some(5_000);
    let done = client.invoke_with(invoke).await.unwrap().result().await.unwrap();
    let seen = json(&done.result);
    assert_eq!(seen["user"], "ada");
    assert_eq!(seen["meta"], serde_json::json!({"tenant": "acme"}));
    assert_eq!(seen["trace"], trace);
    let left = seen["deadline_ms"].as_u64().unwrap();
    assert!(left > 4_000 && left <= 5_000, "{left}");
    let plain = client.invoke("context", Value::Nil).await.unwrap().result().await.unwrap();
    assert_eq!(json(&plain.result)["deadline_ms"], serde_json::Value::Null);
}
