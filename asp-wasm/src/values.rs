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

/// Rust → JS with maps as plain objects and 64-bit integers as numbers.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible().serialize_bytes_as_arrays(false);
    value.serialize(&serializer).unwrap_or(JsValue::UNDEFINED)
}
