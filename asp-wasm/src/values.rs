//! MsgPack values to and from plain JS values.

use asp_proto::Value;
use serde::Serialize;
use wasm_bindgen::{JsError, JsValue};

/// JS → MsgPack: objects become maps with string keys, `Uint8Array`
/// binary, safe integers integers, other numbers floats.
pub(crate) fn from_js(value: JsValue) -> Result<Value, JsError> {
    if value.is_undefined() || value.is_null() {
        return Ok(Value::Nil);
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("not a MsgPack value: {e}")))
}

/// Rust → JS with maps as plain objects, binary as `Uint8Array` and
/// integers as numbers (beyond ±2^53 as `BigInt`, see [`js_value`]). A map
/// whose keys are not strings becomes an ES `Map` instead of failing.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    let plain = serde_wasm_bindgen::Serializer::json_compatible().serialize_bytes_as_arrays(false);
    value.serialize(&plain).unwrap_or_else(|_| {
        let general = serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true);
        value.serialize(&general).unwrap_or(JsValue::UNDEFINED)
    })
}

/// `Number.MAX_SAFE_INTEGER`: larger integers are not exact as numbers.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Serializes a MsgPack value for JS (`#[serde(serialize_with)]`): as
/// rmpv does, except that an integer beyond ±2^53 goes out as `BigInt`
/// (serde-wasm-bindgen's i128) instead of failing the whole event.
pub(crate) fn js_value<S: serde::Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    JsSafe(value).serialize(serializer)
}

struct JsSafe<'a>(&'a Value);

impl Serialize for JsSafe<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Integer(n) => {
                if let Some(u) = n.as_u64() {
                    if u <= MAX_SAFE_INTEGER {
                        serializer.serialize_u64(u)
                    } else {
                        serializer.serialize_u128(u.into())
                    }
                } else if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() > MAX_SAFE_INTEGER) {
                    serializer.serialize_i128(i.into())
                } else {
                    self.0.serialize(serializer)
                }
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(JsSafe)),
            Value::Map(entries) => serializer.collect_map(entries.iter().map(|(k, v)| (JsSafe(k), JsSafe(v)))),
            other => other.serialize(serializer),
        }
    }
}
