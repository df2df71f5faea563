//! Typed tools: a handler over a Rust type `T: Deserialize + JsonSchema`
//! instead of a MsgPack value. The input schema is generated (schemars)
//! into the tool's description, the arguments are checked against it
//! before the handler runs (`INVALID_ARGUMENTS` naming the field), and the
//! result is any `Serialize` value.
//!
//! ```
//! use asp_driver::{typed, ToolContext, ToolError};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Add {
//!     /// The first term.
//!     a: i64,
//!     b: i64,
//! }
//!
//! #[derive(Serialize)]
//! struct Sum {
//!     sum: i64,
//! }
//!
//! let (spec, tool) = typed::tool("add", "Adds two integers", |_ctx: ToolContext, args: Add| async move {
//!     Ok::<_, ToolError>(Sum { sum: args.a + args.b })
//! });
//! assert_eq!(spec.name, "add");
//! # let _ = tool;
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use asp_proto::{ErrorCode, ToolSpec, Value};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{BoxFuture, Tool, ToolContext, ToolError};

/// Most schema violations reported in one error's `data`.
const ERRORS_MAX: usize = 8;

/// The compiled input schema of a typed tool.
struct Arguments<T> {
    validator: jsonschema::Validator,
    _type: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + JsonSchema> Arguments<T> {
    /// `T`'s JSON Schema, as JSON and compiled.
    fn new() -> (serde_json::Value, Self) {
        let schema = serde_json::to_value(schemars::schema_for!(T)).expect("a generated schema is JSON");
        let validator = jsonschema::validator_for(&schema).expect("a generated schema compiles");
        (schema, Arguments { validator, _type: PhantomData })
    }

    /// Checks `args` against the schema, then decodes them.
    fn decode(&self, args: Value) -> Result<T, ToolError> {
        // No arguments is an empty object: a type whose fields are all
        // optional needs none.
        let args = if args.is_nil() { Value::Map(Vec::new()) } else { args };
        let json: serde_json::Value = rmpv::ext::from_value(args.clone())
            .map_err(|e| ToolError::invalid_arguments(format!("the arguments are not JSON-like: {e}")))?;
        let errors: Vec<jsonschema::ValidationError<'_>> = self.validator.iter_errors(&json).take(ERRORS_MAX).collect();
        if let Some(first) = errors.first() {
            let at = |e: &jsonschema::ValidationError<'_>| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    "the arguments".to_owned()
                } else {
                    format!("`{path}`")
                }
            };
            let data = errors
                .iter()
                .map(|e| {
                    Value::Map(vec![
                        (Value::from("path"), Value::from(e.instance_path().to_string())),
                        (Value::from("error"), Value::from(e.to_string())),
                    ])
                })
                .collect();
            return Err(ToolError::invalid_arguments(format!("{}: {first}", at(first))).with_data(Value::Array(data)));
        }
        rmpv::ext::from_value(args).map_err(|e| ToolError::invalid_arguments(e.to_string()))
    }
}

fn spec(name: &str, desc: &str, schema: &serde_json::Value) -> ToolSpec {
    let mut spec = ToolSpec::named(name);
    if !desc.is_empty() {
        spec.desc = Some(desc.to_owned());
    }
    spec.input = rmpv::ext::to_value(schema).expect("JSON converts to MsgPack");
    spec
}

/// A result as MsgPack, structs as maps with their field names (as JSON
/// would have them, which is what a caller in any language expects).
fn encode<R: Serialize>(result: &R) -> Result<Value, ToolError> {
    let failed = |e: &dyn std::fmt::Display| {
        ToolError::new(ErrorCode::TOOL_FAILED, format!("the result could not be encoded: {e}"))
    };
    let bytes = rmp_serde::to_vec_named(result).map_err(|e| failed(&e))?;
    rmpv::decode::read_value(&mut bytes.as_slice()).map_err(|e| failed(&e))
}

/// A tool whose handler takes `T` and returns `R` (see [`tool`]).
pub struct TypedTool<T, F> {
    arguments: Arc<Arguments<T>>,
    handler: F,
}

impl<T, F, Fut, R, E> Tool for TypedTool<T, F>
where
    T: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(ToolContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: Serialize,
    E: Into<ToolError>,
{
    fn call(&self, ctx: ToolContext, args: Value) -> BoxFuture<Result<Value, ToolError>> {
        match self.arguments.decode(args) {
            Ok(args) => {
                let run = (self.handler)(ctx, args);
                Box::pin(async move { encode(&run.await.map_err(Into::into)?) })
            }
            Err(refused) => Box::pin(std::future::ready(Err(refused))),
        }
    }
}

/// A typed tool named `name`: its description and input schema (from
/// `T`), and the handler to register with
/// [`ServerBuilder::tool`](crate::ServerBuilder::tool) or a
/// [`ToolRegistry`](crate::ToolRegistry).
/// [`ServerBuilder::typed_tool`](crate::ServerBuilder::typed_tool) does both.
pub fn tool<T, F, Fut, R, E>(name: &str, desc: &str, handler: F) -> (ToolSpec, TypedTool<T, F>)
where
    T: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(ToolContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: Serialize,
    E: Into<ToolError>,
{
    let (schema, arguments) = Arguments::<T>::new();
    (spec(name, desc, &schema), TypedTool { arguments: Arc::new(arguments), handler })
}

/// A tool whose handler takes `T` and returns a stream of output (see
/// [`streaming`]).
pub struct StreamingTool<T, F> {
    arguments: Arc<Arguments<T>>,
    handler: F,
}

impl<T, F, S, C, E> Tool for StreamingTool<T, F>
where
    T: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(ToolContext, T) -> S + Send + Sync + 'static,
    S: Stream<Item = Result<C, E>> + Send + 'static,
    C: Into<Bytes> + Send,
    E: Into<ToolError> + Send,
{
    fn call(&self, ctx: ToolContext, args: Value) -> BoxFuture<Result<Value, ToolError>> {
        match self.arguments.decode(args) {
            Ok(args) => {
                let output = (self.handler)(ctx.clone(), args);
                Box::pin(async move {
                    futures::pin_mut!(output);
                    while let Some(chunk) = output.next().await {
                        ctx.send(chunk.map_err(Into::into)?).await?;
                    }
                    Ok(Value::Nil)
                })
            }
            Err(refused) => Box::pin(std::future::ready(Err(refused))),
        }
    }
}

/// A streaming typed tool: each item of the handler's stream is a chunk
/// of output (sent as the caller's credit allows: the stream is not polled
/// while the output waits), an `Err` item ends the call with that error,
/// the stream's end completes it (result nil).
///
/// ```
/// use asp_driver::{typed, ToolContext, ToolError};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Count { n: u32 }
///
/// let (spec, tool) = typed::streaming("count", "Counts to n", |_ctx: ToolContext, args: Count| {
///     futures::stream::iter((1..=args.n).map(|i| Ok::<_, ToolError>(format!("{i} "))))
/// });
/// # let _ = (spec, tool);
/// ```
pub fn streaming<T, F, S, C, E>(name: &str, desc: &str, handler: F) -> (ToolSpec, StreamingTool<T, F>)
where
    T: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(ToolContext, T) -> S + Send + Sync + 'static,
    S: Stream<Item = Result<C, E>> + Send + 'static,
    C: Into<Bytes> + Send,
    E: Into<ToolError> + Send,
{
    let (schema, arguments) = Arguments::<T>::new();
    (spec(name, desc, &schema), StreamingTool { arguments: Arc::new(arguments), handler })
}
