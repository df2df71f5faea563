//! Frames a relay function writes itself (SPEC.md §15.2, frames mode) and
//! the MsgPack its state and request bodies travel in, encoded by asp-proto
//! so that Python never writes the wire format by hand.

use asp_proto::{Complete, ErrorCode, ErrorInfo, Frame, GoAway, Metrics, Progress, RequestId, ToolDef, ToolOp, Value};
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::Serialize;

use crate::errors::bad;

/// A value on its way to Python: integers beyond ±2^53 stay exact.
#[derive(Serialize)]
struct SafeValue(#[serde(serialize_with = "asp_bindings::safe_value")] Value);

/// A Python value as MsgPack (None → nil).
fn value(what: &str, object: Option<&Bound<'_, PyAny>>) -> PyResult<Value> {
    match object {
        Some(o) if !o.is_none() => pythonize::depythonize(o).map_err(|e| bad(what, e)),
        _ => Ok(Value::Nil),
    }
}

/// The frame's bytes, or `ValueError` naming what the peer would reject.
fn encoded<'py>(py: Python<'py>, frame: Frame) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = frame.to_bytes().map_err(|e| bad("frame", e))?;
    Ok(PyBytes::new(py, &bytes))
}

/// STREAM output of invocation `id`.
#[pyfunction]
pub(crate) fn encode_stream<'py>(py: Python<'py>, id: u16, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    encoded(py, Frame::Stream(RequestId(id), Bytes::copy_from_slice(data)))
}

/// STREAM with the PROGRESS flag.
#[pyfunction]
#[pyo3(signature = (id, progress, total=None, message=None))]
pub(crate) fn encode_progress<'py>(
    py: Python<'py>,
    id: u16,
    progress: f64,
    total: Option<f64>,
    message: Option<String>,
) -> PyResult<Bound<'py, PyBytes>> {
    encoded(py, Frame::Progress(RequestId(id), Progress { progress, total, message }))
}

/// COMPLETE with `result` (`wall_us` is the relay's to set: 0 here).
#[pyfunction]
#[pyo3(signature = (id, result=None, cpu_us=None))]
pub(crate) fn encode_complete<'py>(
    py: Python<'py>,
    id: u16,
    result: Option<&Bound<'py, PyAny>>,
    cpu_us: Option<u64>,
) -> PyResult<Bound<'py, PyBytes>> {
    let complete = Complete { result: value("result", result)?, metrics: Metrics { wall_us: 0, cpu_us } };
    encoded(py, Frame::Complete(RequestId(id), complete))
}

/// ERROR of invocation `id` (0: the function's call, SPEC §15.2).
#[pyfunction]
#[pyo3(signature = (id, code, message, data=None))]
pub(crate) fn encode_error<'py>(
    py: Python<'py>,
    id: u16,
    code: u16,
    message: String,
    data: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let info = ErrorInfo::new(ErrorCode(code), message).with_data(value("data", data)?);
    encoded(py, Frame::Error(RequestId(id), info))
}

/// TOOL_DEF: `op` is `add`, `remove` or `replace`; `tools` a list of
/// dicts (`name`, `desc`, `input`, …).
#[pyfunction]
pub(crate) fn encode_tool_def<'py>(
    py: Python<'py>,
    op: &str,
    tools: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let op = match op {
        "add" => ToolOp::Add,
        "remove" => ToolOp::Remove,
        "replace" => ToolOp::Replace,
        other => return Err(bad("op", format!("{other:?} is not add, remove or replace"))),
    };
    let tools = pythonize::depythonize(tools).map_err(|e| bad("tools", e))?;
    encoded(py, Frame::ToolDef(ToolDef { op, tools }))
}

/// GOAWAY (`code` absent: NO_ERROR).
#[pyfunction]
#[pyo3(signature = (code=None, message=None))]
pub(crate) fn encode_goaway<'py>(
    py: Python<'py>,
    code: Option<u16>,
    message: Option<String>,
) -> PyResult<Bound<'py, PyBytes>> {
    encoded(py, Frame::GoAway(GoAway { code: code.map(ErrorCode), message }))
}

/// A Python value as MsgPack bytes.
#[pyfunction]
pub(crate) fn pack<'py>(py: Python<'py>, object: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &value("value", Some(object))?).map_err(|e| bad("value", e))?;
    Ok(PyBytes::new(py, &out))
}

/// One MsgPack value (all of `data`) as a Python value; `ValueError` when
/// `data` is not exactly one value.
#[pyfunction]
pub(crate) fn unpack<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let mut rest = data;
    let decoded = rmpv::decode::read_value_with_max_depth(&mut rest, 64).map_err(|e| bad("MsgPack", e))?;
    if !rest.is_empty() {
        return Err(bad("MsgPack", format!("{} bytes after the value", rest.len())));
    }
    pythonize::pythonize(py, &SafeValue(decoded)).map_err(|e| bad("value", e))
}
