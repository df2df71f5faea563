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
/// integers as numbers (beyond ±2^53 as `BigInt`, see
/// [`asp_bindings::safe_value`]). A map
/// whose keys are not strings becomes an ES `Map` instead of failing.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    let plain = serde_wasm_bindgen::Serializer::json_compatible().serialize_bytes_as_arrays(false);
    value.serialize(&plain).unwrap_or_else(|_| {
        let general = serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true);
        value.serialize(&general).unwrap_or(JsValue::UNDEFINED)
    })
}
