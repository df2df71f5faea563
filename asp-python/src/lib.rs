//! `agent_socket._core`: asp-proto's [`Session`](asp_proto::Session) (client
//! and server roles) and codec for Python, through PyO3.
//!
//! Nothing here does I/O, exactly as in `asp-proto`: Python's event loop
//! owns the WebSocket and the timers (as h11 and wsproto leave them to their
//! callers) and drives the same state machine the Rust and JS clients run.
//! The loop, in the asyncio client (`agent_socket/client.py`):
//!
//! ```text
//!   message received ──▶ session.handle_message(data, loop.time())
//!   timer fires      ──▶ session.handle_timeout(loop.time())
//!   the application  ──▶ session.invoke(…) / grant(…) / interrupt(…)
//!   after each       ──▶ while (b := session.poll_transmit()): send(b)
//!                        while (e := session.poll_event()):    dispatch(e)
//!                        loop.call_at(session.poll_timeout(), on_timer)
//! ```
//!
//! Time is seconds on one monotonic clock (`loop.time()`). Events are dicts
//! with a `"type"` (the table in `asp_bindings`), values plain Python values
//! (dict, list, str, bytes, int, float, bool, None).

use pyo3::prelude::*;

mod codec;
mod errors;
mod frames;
mod session;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<session::PySession>()?;
    m.add_function(wrap_pyfunction!(codec::decode_frames, m)?)?;
    m.add_function(wrap_pyfunction!(codec::error_name, m)?)?;
    m.add_function(wrap_pyfunction!(frames::encode_stream, m)?)?;
    m.add_function(wrap_pyfunction!(frames::encode_progress, m)?)?;
    m.add_function(wrap_pyfunction!(frames::encode_complete, m)?)?;
    m.add_function(wrap_pyfunction!(frames::encode_error, m)?)?;
    m.add_function(wrap_pyfunction!(frames::encode_tool_def, m)?)?;
    m.add_function(wrap_pyfunction!(frames::encode_goaway, m)?)?;
    m.add_function(wrap_pyfunction!(frames::pack, m)?)?;
    m.add_function(wrap_pyfunction!(frames::unpack, m)?)?;
    Ok(())
}
