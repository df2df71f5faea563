//! MsgPack values for languages whose numbers are doubles.

use asp_proto::Value;
use serde::{Serialize, Serializer};

/// `Number.MAX_SAFE_INTEGER`: larger integers are not exact as JS numbers.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Serializes a MsgPack value (`#[serde(serialize_with)]`) as rmpv does,
/// except that an integer beyond ±2^53 goes out as an i128: a `BigInt`
/// from serde-wasm-bindgen (which refuses such an u64 as a number, failing
/// the whole value), an `int` from pythonize.
pub fn safe_value<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    Safe(value).serialize(serializer)
}

struct Safe<'a>(&'a Value);

impl Serialize for Safe<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
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
            Value::Array(items) => serializer.collect_seq(items.iter().map(Safe)),
            Value::Map(entries) => serializer.collect_map(entries.iter().map(|(k, v)| (Safe(k), Safe(v)))),
            other => other.serialize(serializer),
        }
    }
}
