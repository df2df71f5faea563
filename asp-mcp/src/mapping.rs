//! How MCP and ASP/1 values correspond, as pure functions: tool
//! descriptions, arguments, results, errors and progress. `docs/MCP.md`
//! states the same mapping for readers; the tests below hold it to that.

use asp_proto::{ErrorCode, ErrorInfo, Progress, ToolSpec, Value};
use bytes::Bytes;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, ProgressNotificationParam, Tool};
use rmcp::service::ServiceError;
use rmcp::ErrorData;
use std::sync::Arc;

/// JSON → MsgPack: numbers stay integers or floats, objects become maps
/// with string keys.
pub fn json_to_value(json: &serde_json::Value) -> Value {
    rmpv::ext::to_value(json).unwrap_or(Value::Nil)
}

/// MsgPack → JSON, as the relay maps values for functions (SPEC §15.2):
/// `bin` → `{"$bin": base64}`, ext → `{"$ext": [type, base64]}`, other map
/// keys as their JSON text, non-finite floats → null.
pub fn value_to_json(value: &Value) -> serde_json::Value {
    asp_relay_proto::value_to_json(value)
}

/// An MCP tool as an ASP tool: `name`; `desc` from `description` (or
/// `title` when there is no description); `input` and `output` from
/// `inputSchema` and `outputSchema`; `meta` keeps `title` and
/// `annotations` under `"mcp"` when the tool has them.
pub fn tool_spec(tool: &Tool) -> ToolSpec {
    let mut spec = ToolSpec::named(tool.name.to_string());
    spec.desc = tool.description.as_ref().map(|d| d.to_string()).or_else(|| tool.title.clone());
    spec.input = json_to_value(&serde_json::Value::Object((*tool.input_schema).clone()));
    if let Some(output) = &tool.output_schema {
        spec.output = json_to_value(&serde_json::Value::Object((**output).clone()));
    }
    let mut mcp = serde_json::Map::new();
    if let Some(title) = &tool.title {
        mcp.insert("title".into(), title.clone().into());
    }
    if let Some(annotations) = &tool.annotations {
        mcp.insert("annotations".into(), serde_json::to_value(annotations).unwrap_or_default());
    }
    if !mcp.is_empty() {
        spec.meta = json_to_value(&serde_json::json!({ "mcp": mcp }));
    }
    spec
}

/// An ASP tool as an MCP tool: `description` from `desc`, `inputSchema`
/// from `input` when it is a map (MCP requires an object schema: otherwise
/// `{"type": "object"}`), `outputSchema` from `output` when it is a map.
pub fn mcp_tool(spec: &ToolSpec) -> Tool {
    let object = |value: &Value| match value_to_json(value) {
        serde_json::Value::Object(map) => Some(Arc::new(map)),
        _ => None,
    };
    let input = object(&spec.input).unwrap_or_else(|| {
        let mut any = JsonObject::new();
        any.insert("type".into(), "object".into());
        Arc::new(any)
    });
    let mut tool = Tool::new(spec.name.clone(), spec.desc.clone().unwrap_or_default(), input);
    if spec.desc.is_none() {
        tool.description = None;
    }
    tool.output_schema = object(&spec.output);
    tool
}

/// An INVOKE's `args` as `tools/call` arguments: nil → none, a map → an
/// object; anything else is `INVALID_ARGUMENTS` (MCP tools take an object).
pub fn arguments(args: &Value) -> Result<Option<JsonObject>, ErrorInfo> {
    match value_to_json(args) {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(map) => Ok(Some(map)),
        other => Err(ErrorInfo::new(
            ErrorCode::INVALID_ARGUMENTS,
            format!("MCP tools take an object of arguments, not {}", json_kind(&other)),
        )),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// An MCP progress notification as an ASP progress update.
pub fn progress(update: &ProgressNotificationParam) -> Progress {
    Progress { progress: update.progress.max(0.0), total: update.total, message: update.message.clone() }
}

/// What a `tools/call` result becomes on the ASP side.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// STREAM output: the text of each `text` content item, in order.
    pub output: Vec<Bytes>,
    /// COMPLETE's result, or the invocation's ERROR when `isError` was set.
    pub result: Result<Value, ErrorInfo>,
}

/// The longest text of an `isError` result put in the ERROR's message.
const ERROR_MESSAGE_MAX: usize = 1024;

/// A `tools/call` result on the ASP side.
///
/// - Success: every `text` item is STREAM output, in order; COMPLETE's
///   result is `structuredContent` when present, else the other content
///   items (image, audio, resource…) as their MCP JSON objects in an
///   array when there are any, else nil.
/// - `isError: true`: `TOOL_FAILED`, the message the text items joined
///   (cut to 1 KiB), `data` `{"content": [items], "structured": …}`.
pub fn outcome(result: &CallToolResult) -> Outcome {
    let texts = || result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.as_str()));
    if result.is_error == Some(true) {
        let mut message = texts().collect::<Vec<_>>().join("\n");
        if message.is_empty() {
            message = "the MCP tool reported an error".into();
        }
        if message.len() > ERROR_MESSAGE_MAX {
            let mut cut = ERROR_MESSAGE_MAX;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let mut data = serde_json::Map::new();
        data.insert("content".into(), serde_json::to_value(&result.content).unwrap_or_default());
        if let Some(structured) = &result.structured_content {
            data.insert("structured".into(), structured.clone());
        }
        let error =
            ErrorInfo::new(ErrorCode::TOOL_FAILED, message).with_data(json_to_value(&serde_json::Value::Object(data)));
        return Outcome { output: Vec::new(), result: Err(error) };
    }
    let output = texts().map(|t| Bytes::copy_from_slice(t.as_bytes())).collect();
    let value = if let Some(structured) = &result.structured_content {
        json_to_value(structured)
    } else {
        let others: Vec<&ContentBlock> = result.content.iter().filter(|c| c.as_text().is_none()).collect();
        if others.is_empty() {
            Value::Nil
        } else {
            json_to_value(&serde_json::to_value(others).unwrap_or_default())
        }
    };
    Outcome { output, result: Ok(value) }
}

/// A failed `tools/call` as an ASP error.
///
/// | MCP | ASP |
/// |---|---|
/// | JSON-RPC -32602 (invalid params) | `INVALID_ARGUMENTS` (301) |
/// | JSON-RPC -32601 (method not found) | `UNKNOWN_TOOL` (300) |
/// | any other JSON-RPC error | `TOOL_FAILED` (304), `data: {"mcp_code", "mcp_data"}` |
/// | the connection to the server closed (it exited) | `BACKEND_UNAVAILABLE` (600) |
/// | the SDK's request timeout | `DEADLINE_EXCEEDED` (303) |
/// | cancelled | `CANCELLED` (302) |
pub fn service_error(error: &ServiceError) -> ErrorInfo {
    match error {
        ServiceError::McpError(data) => mcp_error(data),
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => ErrorInfo::new(
            ErrorCode::BACKEND_UNAVAILABLE,
            "the MCP server went away (it exited or closed the connection)",
        ),
        ServiceError::Timeout { timeout } => {
            ErrorInfo::new(ErrorCode::DEADLINE_EXCEEDED, format!("the MCP server did not answer in {timeout:?}"))
        }
        ServiceError::Cancelled { reason } => {
            ErrorInfo::new(ErrorCode::CANCELLED, reason.clone().unwrap_or_else(|| "cancelled".into()))
        }
        other => ErrorInfo::new(ErrorCode::TOOL_FAILED, format!("MCP: {other}")),
    }
}

/// A JSON-RPC error from `tools/call` as an ASP error (table above).
pub fn mcp_error(error: &ErrorData) -> ErrorInfo {
    let code = match error.code.0 {
        -32602 => ErrorCode::INVALID_ARGUMENTS,
        -32601 => ErrorCode::UNKNOWN_TOOL,
        _ => ErrorCode::TOOL_FAILED,
    };
    let mut info = ErrorInfo::new(code, error.message.to_string());
    if code == ErrorCode::TOOL_FAILED {
        let data = serde_json::json!({ "mcp_code": error.code.0, "mcp_data": error.data });
        info = info.with_data(json_to_value(&data));
    }
    info
}

/// An ASP invocation's end as a `tools/call` answer (`asp mcp expose`).
///
/// - COMPLETE: `content` holds one `text` item with the streamed output
///   (UTF-8, invalid bytes replaced) when there was any, then the result:
///   a string as a `text` item, anything else but nil as its JSON text;
///   a map result is also `structuredContent`.
/// - ERROR `UNKNOWN_TOOL` or `INVALID_ARGUMENTS`: a JSON-RPC invalid-params
///   error (MCP's answer for both).
/// - any other ERROR: `isError: true`, a `text` item `"<NAME> (<code>):
///   <message>"` after the output, and `structuredContent` `{"code",
///   "name", "message", "data"}`.
pub fn call_result(output: &[u8], end: Result<Value, ErrorInfo>) -> Result<CallToolResult, ErrorData> {
    let mut content = Vec::new();
    if !output.is_empty() {
        content.push(ContentBlock::text(String::from_utf8_lossy(output).into_owned()));
    }
    match end {
        Ok(result) => {
            match &result {
                Value::Nil => {}
                Value::String(s) => {
                    content.push(ContentBlock::text(String::from_utf8_lossy(s.as_bytes()).into_owned()))
                }
                other => content.push(ContentBlock::text(value_to_json(other).to_string())),
            }
            let mut done = CallToolResult::success(content);
            if matches!(result, Value::Map(_)) {
                done.structured_content = Some(value_to_json(&result));
            }
            Ok(done)
        }
        Err(e) if e.code == ErrorCode::UNKNOWN_TOOL || e.code == ErrorCode::INVALID_ARGUMENTS => {
            Err(ErrorData::invalid_params(e.message, Some(serde_json::json!({ "code": e.code.0 }))))
        }
        Err(e) => {
            let name = e.code.name().unwrap_or("ERROR");
            content.push(ContentBlock::text(format!("{name} ({}): {}", e.code.0, e.message)));
            let mut failed = CallToolResult::error(content);
            failed.structured_content = Some(serde_json::json!({
                "code": e.code.0, "name": e.code.name(), "message": e.message, "data": value_to_json(&e.data),
            }));
            Ok(failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (Value::from(*k), v.clone())).collect())
    }

    #[test]
    fn tools_keep_name_description_and_schemas_both_ways() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let mut tool = Tool::new("count", "Counts", Arc::new(schema.as_object().unwrap().clone()));
        tool.title = Some("Counter".into());
        let spec = tool_spec(&tool);
        assert_eq!(spec.name, "count");
        assert_eq!(spec.desc.as_deref(), Some("Counts"));
        assert_eq!(value_to_json(&spec.input), schema);
        assert_eq!(value_to_json(&spec.meta), json!({"mcp": {"title": "Counter"}}));
        let back = mcp_tool(&spec);
        assert_eq!(back.name, "count");
        assert_eq!(back.description.as_deref(), Some("Counts"));
        assert_eq!(serde_json::Value::Object((*back.input_schema).clone()), schema);
        // An ASP tool without a schema still gets MCP's required object schema.
        let bare = mcp_tool(&ToolSpec::named("bare"));
        assert_eq!(serde_json::Value::Object((*bare.input_schema).clone()), json!({"type": "object"}));
        assert!(bare.description.is_none());
    }

    #[test]
    fn arguments_must_be_an_object_or_absent() {
        assert_eq!(arguments(&Value::Nil).unwrap(), None);
        let args = arguments(&map(&[("b", Value::Binary(vec![1, 2]))])).unwrap().unwrap();
        assert_eq!(serde_json::Value::Object(args), json!({"b": {"$bin": "AQI="}}));
        let refused = arguments(&Value::from(3)).unwrap_err();
        assert_eq!(refused.code, ErrorCode::INVALID_ARGUMENTS);
        assert!(refused.message.contains("a number"), "{}", refused.message);
    }

    #[test]
    fn text_streams_and_structured_content_is_the_result() {
        let done = CallToolResult::structured(json!({"sum": 3}));
        let out = outcome(&done);
        assert_eq!(out.output, vec![Bytes::from(r#"{"sum":3}"#)]);
        assert_eq!(out.result, Ok(map(&[("sum", Value::from(3))])));

        let pictures = CallToolResult::success(vec![
            ContentBlock::text("a "),
            ContentBlock::image("iVBO", "image/png"),
            ContentBlock::text("picture"),
        ]);
        let out = outcome(&pictures);
        assert_eq!(out.output, vec![Bytes::from("a "), Bytes::from("picture")]);
        assert_eq!(
            value_to_json(out.result.as_ref().unwrap()),
            json!([{"type": "image", "data": "iVBO", "mimeType": "image/png"}])
        );
        assert_eq!(outcome(&CallToolResult::success(vec![ContentBlock::text("x")])).result, Ok(Value::Nil));
    }

    #[test]
    fn is_error_is_tool_failed_with_the_content() {
        let failed = CallToolResult::error(vec![ContentBlock::text("no rows"), ContentBlock::text("at all")]);
        let out = outcome(&failed);
        assert!(out.output.is_empty());
        let error = out.result.unwrap_err();
        assert_eq!(error.code, ErrorCode::TOOL_FAILED);
        assert_eq!(error.message, "no rows\nat all");
        assert_eq!(value_to_json(&error.data)["content"][0]["text"], json!("no rows"));
        let long = CallToolResult::error(vec![ContentBlock::text("é".repeat(1000))]);
        assert!(outcome(&long).result.unwrap_err().message.len() <= ERROR_MESSAGE_MAX);
    }

    #[test]
    fn json_rpc_errors_get_asp_codes() {
        assert_eq!(mcp_error(&ErrorData::invalid_params("bad", None)).code, ErrorCode::INVALID_ARGUMENTS);
        let internal = mcp_error(&ErrorData::internal_error("boom", Some(json!({"why": 1}))));
        assert_eq!(internal.code, ErrorCode::TOOL_FAILED);
        assert_eq!(value_to_json(&internal.data), json!({"mcp_code": -32603, "mcp_data": {"why": 1}}));
        assert_eq!(service_error(&ServiceError::TransportClosed).code, ErrorCode::BACKEND_UNAVAILABLE);
    }

    #[test]
    fn asp_results_become_mcp_content() {
        let done = call_result(b"streamed ", Ok(map(&[("n", Value::from(2))]))).unwrap();
        assert_eq!(done.content[0].as_text().unwrap().text, "streamed ");
        assert_eq!(done.content[1].as_text().unwrap().text, r#"{"n":2}"#);
        assert_eq!(done.structured_content, Some(json!({"n": 2})));
        let text = call_result(b"", Ok(Value::from("hi"))).unwrap();
        assert_eq!(text.content.len(), 1);
        assert_eq!(text.content[0].as_text().unwrap().text, "hi");
        assert!(text.structured_content.is_none());

        let failed = call_result(b"partial", Err(ErrorInfo::new(ErrorCode::TOOL_FAILED, "broke"))).unwrap();
        assert_eq!(failed.is_error, Some(true));
        assert_eq!(failed.content[1].as_text().unwrap().text, "TOOL_FAILED (304): broke");
        let unknown = call_result(b"", Err(ErrorInfo::new(ErrorCode::UNKNOWN_TOOL, "no such tool"))).unwrap_err();
        assert_eq!(unknown.code.0, -32602);
    }
}
