//! Raising the exceptions `agent_socket.errors` defines (they are Python
//! classes, so that Python code can subclass and document them).

use pyo3::prelude::*;

/// `agent_socket.errors.<class>(*args)` as a Python exception.
pub(crate) fn raise<'py, A>(py: Python<'py>, class: &str, args: A) -> PyErr
where
    A: pyo3::call::PyCallArgs<'py>,
{
    let made =
        py.import("agent_socket.errors").and_then(|module| module.getattr(class)).and_then(|class| class.call1(args));
    match made {
        Ok(exception) => PyErr::from_value(exception),
        Err(e) => e,
    }
}

/// A session command the session refused (`RefusedError(kind, message)`).
pub(crate) fn refused(py: Python<'_>, error: asp_proto::SendError) -> PyErr {
    raise(py, "RefusedError", (asp_bindings::refusal_kind(&error), error.to_string()))
}

/// A value that cannot cross (`ValueError` with what and why).
pub(crate) fn bad(what: &str, error: impl std::fmt::Display) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(format!("{what}: {error}"))
}
