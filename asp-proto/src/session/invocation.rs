//! Per-request-id state: one record per open invocation, in either role.

use web_time::Instant;

/// Our part in an invocation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InvocationRole {
    /// We sent the INVOKE and receive its output.
    Invoker,
    /// We run the tool and send its output.
    Handler,
}

/// Where an open invocation stands (SPEC.md §5.3). A closed one is not
/// tracked: [`Session::invocation`](super::Session::invocation) returns `None`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InvocationState {
    /// Running.
    Open,
    /// Invoker: we sent INTERRUPT and wait for the terminal frame, which
    /// may still be COMPLETE if the handler won the race.
    Interrupting,
    /// Invoker: the deadline passed and was reported; we wait for the
    /// handler's terminal frame and will drop it.
    TimedOut,
}

/// A snapshot of one open invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvocationInfo {
    /// Our role in it.
    pub role: InvocationRole,
    /// Its state.
    pub state: InvocationState,
    /// The tool.
    pub tool: String,
    /// When it was opened (INVOKE sent or received).
    pub started: Instant,
    /// When it times out.
    pub deadline: Option<Instant>,
    /// Handler: STREAM bytes we may send now (the smaller of the two windows).
    pub send_credit: u32,
}

#[derive(Debug)]
pub(crate) struct Invocation {
    pub(crate) role: InvocationRole,
    pub(crate) state: InvocationState,
    pub(crate) tool: String,
    pub(crate) started: Instant,
    pub(crate) deadline: Option<Instant>,
    /// Handler: credit the invoker gave us for this invocation.
    pub(crate) send_window: u32,
    /// Handler: a send was refused for lack of this window's credit.
    pub(crate) blocked: bool,
    /// Invoker: credit we still give the handler.
    pub(crate) recv_window: u32,
    /// Invoker: bytes delivered to the application and not yet granted back.
    pub(crate) unconsumed: u32,
    /// Invoker: bytes consumed and not yet sent back in a WINDOW.
    pub(crate) pending_grant: u32,
}

impl Invocation {
    pub(crate) fn new(role: InvocationRole, tool: String, started: Instant, window: u32) -> Self {
        Invocation {
            role,
            state: InvocationState::Open,
            tool,
            started,
            deadline: None,
            send_window: if role == InvocationRole::Handler { window } else { 0 },
            blocked: false,
            recv_window: if role == InvocationRole::Invoker { window } else { 0 },
            unconsumed: 0,
            pending_grant: 0,
        }
    }
}
