//! The frame codec, for running SPEC.md §14's conformance vectors through
//! the same decoder the session uses.

use asp_proto::{decode_all, ErrorCode};
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::errors::raise;

/// Decodes every frame in `data` (at most `max_payload` bytes of payload
/// each): a list of dicts `{type, flags, request_id, canonical}`, or raises
/// `FrameError(code, name, message)` with the SPEC's error code.
#[pyfunction]
pub(crate) fn decode_frames<'py>(py: Python<'py>, data: &[u8], max_payload: u32) -> PyResult<Bound<'py, PyList>> {
    let frames = decode_all(Bytes::copy_from_slice(data), max_payload)
        .map_err(|e| raise(py, "FrameError", (e.code().0, e.code().name(), e.to_string())))?;
    let out = PyList::empty(py);
    for frame in frames {
        let canonical = frame
            .to_bytes()
            .map_err(|e| raise(py, "FrameError", (ErrorCode::INTERNAL.0, ErrorCode::INTERNAL.name(), e.to_string())))?;
        let item = PyDict::new(py);
        item.set_item("type", frame.frame_type().name())?;
        item.set_item("flags", frame.flags())?;
        item.set_item("request_id", frame.request_id().0)?;
        item.set_item("canonical", PyBytes::new(py, &canonical))?;
        out.append(item)?;
    }
    Ok(out)
}

/// The SPEC name of an error code (`UNKNOWN_TOOL` for 300), or None.
#[pyfunction]
pub(crate) fn error_name(code: u16) -> Option<&'static str> {
    ErrorCode(code).name()
}
