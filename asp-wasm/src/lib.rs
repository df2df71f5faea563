//! asp-proto's client [`Session`](asp_proto::Session) and codec for
//! JavaScript, compiled to WebAssembly.
//!
//! Nothing here does I/O, exactly as in `asp-proto`: JavaScript owns the
//! WebSocket and the timers, and drives the same state machine the Rust
//! adapters drive. The loop, in JS terms:
//!
//! ```text
//!   ws.onmessage  ──▶ session.handleMessage(bytes, now)
//!   timer fires   ──▶ session.handleTimeout(now)
//!   app calls     ──▶ session.invoke(…) / grant(…) / sendChunk(…) / …
//!   after each    ──▶ while (b = session.pollTransmit()) ws.send(b)
//!                     while (e = session.pollEvent())    dispatch(e)
//!                     setTimeout(…, session.pollTimeout() - now)
//! ```
//!
//! `now` is milliseconds on one monotonic clock (`performance.now()`).
//! Values cross as plain JS values: MsgPack maps are objects, binary is a
//! `Uint8Array`, integers are numbers. Events are objects with a `type`
//! (the table in `asp_bindings::ShapedEvent`'s module). The TypeScript client in `clients/js` is built on this.

mod codec;
mod session;
mod values;

pub use codec::{decode_frames, encode_frame_again, error_name, frame_headers};
pub use session::ClientSession;
