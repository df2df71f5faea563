//! The HTTP side of a call, as data: request bodies in JSON or MsgPack and
//! the response headers the relay reads (SPEC.md §15.2). No HTTP library is
//! involved; the adapter copies these to and from its requests.

use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use bytes::Bytes;
use serde_json::{json, Map, Number};

use asp_proto::{Invoke, RequestId, Value};

use super::BodyEncoding;

/// base64url for `X-Asp-State`: written without padding, read with or without.
const STATE_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes a connection's state for the `X-Asp-State` header.
pub fn encode_state(state: &[u8]) -> String {
    STATE_B64.encode(state)
}

/// Decodes an `X-Asp-State` header value.
pub fn decode_state(value: &str) -> Result<Vec<u8>, String> {
    STATE_B64.decode(value.trim()).map_err(|e| format!("X-Asp-State is not base64url: {e}"))
}

/// Parses an `X-Cpu-Time` header value: a decimal number
/// with an optional unit `us`, `ms` (the default) or `s`, e.g. `45ms`,
/// `45`, `0.045s`. Returns microseconds.
pub fn parse_cpu_time(value: &str) -> Option<u64> {
    let value = value.trim();
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        (value, 1_000.0)
    };
    let number: f64 = number.trim().parse().ok()?;
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let us = (number * scale).round();
    (us <= u64::MAX as f64).then_some(us as u64)
}

/// What one INVOKE becomes (the body of `POST {function}/invoke`).
pub(super) struct InvokeBody<'a> {
    pub cid: &'a str,
    pub id: RequestId,
    pub invoke: &'a Invoke,
    pub state: Option<&'a [u8]>,
}

impl InvokeBody<'_> {
    pub(super) fn encode(&self, encoding: BodyEncoding) -> Bytes {
        let invoke = self.invoke;
        match encoding {
            BodyEncoding::Json => {
                let meta: Map<String, serde_json::Value> =
                    invoke.meta.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect();
                let body = json!({
                    "connection_id": self.cid,
                    "request_id": self.id.0,
                    "tool": invoke.tool,
                    "args": value_to_json(&invoke.args),
                    "meta": meta,
                    "timeout_ms": invoke.timeout,
                    "state": self.state.map(encode_state),
                });
                Bytes::from(serde_json::to_vec(&body).expect("JSON values always encode"))
            }
            BodyEncoding::MsgPack => {
                let meta =
                    invoke.meta.iter().map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str()))).collect();
                let body = Value::Map(vec![
                    (Value::from("connection_id"), Value::from(self.cid)),
                    (Value::from("request_id"), Value::from(self.id.0)),
                    (Value::from("tool"), Value::from(invoke.tool.as_str())),
                    (Value::from("args"), invoke.args.clone()),
                    (Value::from("meta"), Value::Map(meta)),
                    (Value::from("timeout_ms"), invoke.timeout.map_or(Value::Nil, Value::from)),
                    (Value::from("state"), self.state.map_or(Value::Nil, |s| Value::Binary(s.to_vec()))),
                ]);
                encode_msgpack(&body)
            }
        }
    }
}

/// The body of `POST {function}/connect` and `/disconnect`.
pub(super) fn lifecycle_body(
    encoding: BodyEncoding,
    cid: &str,
    name: Option<&str>,
    caps: &[String],
    state: Option<&[u8]>,
) -> Bytes {
    match encoding {
        BodyEncoding::Json => {
            let body = json!({
                "connection_id": cid,
                "client": { "name": name, "caps": caps },
                "state": state.map(encode_state),
            });
            Bytes::from(serde_json::to_vec(&body).expect("JSON values always encode"))
        }
        BodyEncoding::MsgPack => {
            let caps = caps.iter().map(|c| Value::from(c.as_str())).collect();
            let client = Value::Map(vec![
                (Value::from("name"), name.map_or(Value::Nil, Value::from)),
                (Value::from("caps"), Value::Array(caps)),
            ]);
            encode_msgpack(&Value::Map(vec![
                (Value::from("connection_id"), Value::from(cid)),
                (Value::from("client"), client),
                (Value::from("state"), state.map_or(Value::Nil, |s| Value::Binary(s.to_vec()))),
            ]))
        }
    }
}

fn encode_msgpack(value: &Value) -> Bytes {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).expect("writing to a Vec cannot fail");
    Bytes::from(out)
}

/// MsgPack → JSON for request bodies. JSON has no binary, extension or
/// non-string keys, so: `bin` → `{"$bin": "<base64>"}`, ext →
/// `{"$ext": [type, "<base64>"]}`, a non-string key → its JSON text, a
/// non-finite float → null, invalid UTF-8 → replaced characters.
pub fn value_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Nil => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => J::from(u),
            (_, Some(s)) => J::from(s),
            _ => J::Null,
        },
        Value::F32(f) => Number::from_f64(f64::from(*f)).map_or(J::Null, J::Number),
        Value::F64(f) => Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::String(s) => J::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Value::Binary(b) => json!({ "$bin": STANDARD.encode(b) }),
        Value::Array(items) => J::Array(items.iter().map(value_to_json).collect()),
        Value::Map(pairs) => J::Object(
            pairs
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        other => value_to_json(other).to_string(),
                    };
                    (key, value_to_json(v))
                })
                .collect(),
        ),
        Value::Ext(kind, data) => json!({ "$ext": [kind, STANDARD.encode(data)] }),
    }
}

/// Milliseconds for JSON, saturating.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_units() {
        assert_eq!(parse_cpu_time("45ms"), Some(45_000));
        assert_eq!(parse_cpu_time("45"), Some(45_000));
        assert_eq!(parse_cpu_time("0.045s"), Some(45_000));
        assert_eq!(parse_cpu_time(" 12us "), Some(12));
        assert_eq!(parse_cpu_time("1.5"), Some(1_500));
        for bad in ["", "ms", "-1ms", "abc", "NaN", "inf", "1e400s", "12 parsecs"] {
            assert_eq!(parse_cpu_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn state_round_trips_with_and_without_padding() {
        let state = b"\x00\xffcounter=3";
        let encoded = encode_state(state);
        assert!(!encoded.contains('='));
        assert_eq!(decode_state(&encoded).unwrap(), state);
        assert_eq!(decode_state("YQ==").unwrap(), b"a");
        assert!(decode_state("not base64!").is_err());
    }

    #[test]
    fn json_body_carries_everything_and_maps_binary() {
        let mut invoke = Invoke::new(
            "search",
            Value::Map(vec![
                (Value::from("q"), Value::from("rust")),
                (Value::from("raw"), Value::Binary(vec![1, 2, 3])),
                (Value::from(7), Value::F64(f64::NAN)),
            ]),
        );
        invoke.timeout = Some(1500);
        invoke.meta.insert("lang".into(), "en".into());
        let body =
            InvokeBody { cid: "c-1", id: RequestId(3), invoke: &invoke, state: Some(b"s") }.encode(BodyEncoding::Json);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["connection_id"], "c-1");
        assert_eq!(json["request_id"], 3);
        assert_eq!(json["tool"], "search");
        assert_eq!(json["args"]["q"], "rust");
        assert_eq!(json["args"]["raw"]["$bin"], "AQID");
        assert_eq!(json["args"]["7"], serde_json::Value::Null);
        assert_eq!(json["meta"]["lang"], "en");
        assert_eq!(json["timeout_ms"], 1500);
        assert_eq!(json["state"], "cw");
    }

    #[test]
    fn msgpack_body_keeps_values_as_sent() {
        let invoke = Invoke::new("echo", Value::Binary(vec![9; 4]));
        let body =
            InvokeBody { cid: "c-2", id: RequestId(5), invoke: &invoke, state: None }.encode(BodyEncoding::MsgPack);
        let value = rmpv::decode::read_value(&mut &body[..]).unwrap();
        let map: Vec<_> = value.as_map().unwrap().iter().map(|(k, v)| (k.as_str().unwrap(), v.clone())).collect();
        assert!(map.contains(&("args", Value::Binary(vec![9; 4]))));
        assert!(map.contains(&("state", Value::Nil)));
        assert!(map.contains(&("request_id", Value::from(5))));
    }
}
