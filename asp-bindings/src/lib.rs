//! What every foreign-language binding of asp-proto's client
//! [`Session`](asp_proto::Session) shares, so that JavaScript (`asp-wasm`)
//! and Python (`asp-python`) see the same events, options and refusals and
//! neither re-implements any of it.
//!
//! A binding owns a `Session` and an [`EventSource`]; it converts
//! [`ShapedEvent`]s, [`ClientOptions`] and [`InvokeOptions`] with serde
//! (serde-wasm-bindgen, pythonize) and maps [`SendError`](asp_proto::SendError)s
//! with [`refusal_kind`]. Nothing here does I/O.

mod events;
mod options;
mod source;
mod values;

pub use events::{shape, ShapedEvent};
pub use options::{refusal_kind, ClientOptions, InvokeOptions};
pub use source::{EventSource, MERGED_CHUNK_LIMIT};
pub use values::{safe_value, MAX_SAFE_INTEGER};
