//! What the driver counts, through the `metrics` facade: nothing happens
//! unless the application installs a recorder (for example
//! `metrics-exporter-prometheus`, as `asp serve --metrics` does).
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `asp_connections_opened_total` | counter | `role` | sessions past their handshake |
//! | `asp_connections_open` | gauge | `role` | sessions open now |
//! | `asp_connections_closed_total` | counter | `role`, `code` | sessions ended, by close code name |
//! | `asp_bytes_received_total`, `asp_bytes_sent_total` | counter | `role` | frame bytes, added when a session ends |
//! | `asp_invocations_total` | counter | `tool`, `outcome` (`ok`, `error`, `interrupted`) | invocations our tools handled |
//! | `asp_invocation_errors_total` | counter | `tool`, `code` | of which ended with an ERROR, by code name |
//! | `asp_invocation_seconds` | histogram | `tool` | from INVOKE to the terminal frame |
//! | `asp_unknown_tool_total` | counter | | INVOKEs for a tool we do not have, when the session does not check tools itself (no label: the peer picks the name) |

use std::time::Instant;

use asp_proto::{ErrorCode, Role, Stats};

/// A code as a label: its name, or its number when it has none.
fn code_label(code: ErrorCode) -> String {
    code.name().map_or_else(|| code.0.to_string(), str::to_owned)
}

fn role(role: Role) -> &'static str {
    match role {
        Role::Client => "client",
        Role::Server => "server",
    }
}

pub(crate) fn connection_opened(r: Role) {
    metrics::counter!("asp_connections_opened_total", "role" => role(r)).increment(1);
    metrics::gauge!("asp_connections_open", "role" => role(r)).increment(1.0);
}

pub(crate) fn connection_closed(r: Role, code: ErrorCode, stats: &Stats) {
    metrics::gauge!("asp_connections_open", "role" => role(r)).decrement(1.0);
    metrics::counter!("asp_connections_closed_total", "role" => role(r), "code" => code_label(code)).increment(1);
    metrics::counter!("asp_bytes_received_total", "role" => role(r)).increment(stats.bytes_in);
    metrics::counter!("asp_bytes_sent_total", "role" => role(r)).increment(stats.bytes_out);
}

pub(crate) fn unknown_tool() {
    metrics::counter!("asp_unknown_tool_total").increment(1);
}

/// How a handled invocation ended.
pub(crate) enum Outcome {
    Ok,
    Error(ErrorCode),
    Interrupted,
}

/// Counts an ended invocation of `tool` (taken: the handler that named it
/// is gone, and its name becomes the last label without a copy).
pub(crate) fn invocation_ended(tool: String, started: Instant, now: Instant, outcome: Outcome) {
    let label = match &outcome {
        Outcome::Ok => "ok",
        Outcome::Error(_) => "error",
        Outcome::Interrupted => "interrupted",
    };
    metrics::counter!("asp_invocations_total", "tool" => tool.clone(), "outcome" => label).increment(1);
    if let Outcome::Error(code) = outcome {
        metrics::counter!("asp_invocation_errors_total", "tool" => tool.clone(), "code" => code_label(code))
            .increment(1);
    }
    metrics::histogram!("asp_invocation_seconds", "tool" => tool).record(now.saturating_duration_since(started));
}
