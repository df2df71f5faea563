//! The numeric error codes carried by ERROR and GOAWAY frames, and their
//! WebSocket close codes.
//!
//! Codes are grouped in classes of one hundred (SPEC.md §7): the class of a
//! code a receiver does not know is still meaningful, so new codes can be added
//! without a version bump. The table is written once, in [`error_codes!`], so
//! the constants, their names and their descriptions cannot drift apart.

use std::fmt;

/// A wire error code (SPEC.md §7).
///
/// A `Copy` newtype rather than an enum: a peer may send a code this version
/// does not know, and that must round-trip and keep its class instead of
/// failing to decode.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u16);

/// The class of an [`ErrorCode`]: its hundreds digit (SPEC.md §7.1).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// 0–99: no error, or an internal failure.
    General,
    /// 100–199: the peer broke the protocol.
    Protocol,
    /// 200–299: a configured limit was exceeded.
    Limits,
    /// 300–399: one invocation failed; the connection is fine.
    Invocation,
    /// 400–499: authentication or authorisation.
    Auth,
    /// 500–599: a session could not be resumed.
    Resume,
    /// 600–699: relay mode, the serverless backend failed.
    Relay,
    /// 900–999 and anything above: defined by the application.
    Application,
    /// 700–899: reserved for future versions of ASP.
    Reserved,
}

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $value:expr, $text:expr;)*) => {
        impl ErrorCode {
            $($(#[$doc])* pub const $name: ErrorCode = ErrorCode($value);)*

            /// Every code this version defines, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];

            /// The symbolic name (`"FRAME_TOO_LARGE"`), or `None` for a code
            /// this version does not define.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// A short human-readable description, for logs and messages.
            pub fn description(self) -> &'static str {
                match self.0 {
                    $($value => $text,)*
                    _ => match self.class() {
                        ErrorClass::Application => "application-defined error",
                        _ => "unknown error code",
                    },
                }
            }
        }
    };
}

error_codes! {
    /// Not an error: a graceful close or drain.
    NO_ERROR = 0, "no error";
    /// The sender failed in a way not covered by another code.
    INTERNAL = 1, "internal error";

    /// A protocol rule was broken; no more specific code applies.
    PROTOCOL_VIOLATION = 100, "protocol violation";
    /// The frame header's version is not 1, or HELLO offered no common version.
    UNSUPPORTED_VERSION = 101, "unsupported protocol version";
    /// The frame type is reserved (0x0 or 0xC–0xF).
    RESERVED_TYPE = 102, "reserved frame type";
    /// A flag bit that is undefined for the frame type is set.
    RESERVED_FLAGS = 103, "reserved flag bits set";
    /// The request id breaks the rule for the frame type or the sender's role.
    INVALID_REQUEST_ID = 104, "invalid request id";
    /// The payload is not the MsgPack map its type requires, or a value has the wrong type.
    MALFORMED_PAYLOAD = 105, "malformed payload";
    /// A required payload key is missing.
    MISSING_FIELD = 106, "missing required field";
    /// The frame is valid but not allowed in the current state.
    UNEXPECTED_FRAME = 107, "unexpected frame";
    /// The frame names a request id that is not open.
    UNKNOWN_REQUEST = 108, "unknown request id";
    /// The handshake did not complete in time.
    HANDSHAKE_TIMEOUT = 109, "handshake timeout";
    /// A WebSocket text message arrived (ASP uses binary messages only).
    TEXT_MESSAGE = 110, "text message received";
    /// The transport ended, or a WebSocket message ended, in the middle of a frame.
    TRUNCATED_FRAME = 111, "truncated frame";
    /// The peer stopped answering PING.
    PEER_UNRESPONSIVE = 112, "peer unresponsive";
    /// INVOKE reused a request id that is still open.
    REQUEST_ID_IN_USE = 113, "request id in use";

    /// A frame's declared payload length is over the negotiated maximum.
    FRAME_TOO_LARGE = 200, "frame too large";
    /// INVOKE would exceed the announced concurrent-invocation limit.
    TOO_MANY_INVOCATIONS = 201, "too many concurrent invocations";
    /// STREAM bytes were sent beyond the granted credit, or credit overflowed.
    FLOW_CONTROL = 202, "flow-control violation";
    /// The sender is sending faster than the receiver allows.
    RATE_LIMITED = 203, "rate limited";
    /// The peer announced more tools than the receiver keeps.
    TOO_MANY_TOOLS = 204, "too many tools";

    /// No tool of that name is registered.
    UNKNOWN_TOOL = 300, "unknown tool";
    /// The tool rejected its arguments.
    INVALID_ARGUMENTS = 301, "invalid arguments";
    /// The invoker interrupted the invocation.
    CANCELLED = 302, "cancelled";
    /// The invocation's deadline passed.
    DEADLINE_EXCEEDED = 303, "deadline exceeded";
    /// The tool ran and failed.
    TOOL_FAILED = 304, "tool failed";
    /// The handler is draining (GOAWAY) and takes no new invocations.
    GOING_AWAY = 305, "going away";

    /// Authentication is required and none, or an invalid token, was given.
    UNAUTHENTICATED = 400, "unauthenticated";
    /// The credentials are valid but not allowed to do this.
    FORBIDDEN = 401, "forbidden";
    /// The token has expired.
    TOKEN_EXPIRED = 402, "token expired";

    /// The resume ticket names no session this server knows.
    RESUME_UNKNOWN_SESSION = 500, "unknown session";
    /// The session's resume grace period has passed.
    RESUME_EXPIRED = 501, "session expired";
    /// The frames the peer lacks are no longer buffered.
    RESUME_BUFFER_EXCEEDED = 502, "resume buffer exceeded";
    /// Resume was refused for another reason (bad ticket, resume disabled).
    RESUME_REJECTED = 503, "resume rejected";
    /// The invocation was open when its session was lost and could not be resumed.
    SESSION_LOST = 504, "session lost";

    /// The function could not be reached (connection refused, DNS, TLS).
    BACKEND_UNAVAILABLE = 600, "backend unavailable";
    /// The function did not answer, or stopped sending, in time.
    BACKEND_TIMEOUT = 601, "backend timeout";
    /// The function answered with a non-2xx status.
    BACKEND_STATUS = 602, "backend error status";
    /// The function's response body ended early.
    BACKEND_TRUNCATED = 603, "backend response truncated";
    /// The function's response could not be understood (bad frames, bad state).
    BACKEND_INVALID_RESPONSE = 604, "backend invalid response";
    /// The relay's limit on concurrent function calls was reached.
    BACKEND_OVERLOADED = 605, "backend overloaded";
    /// The function returned connection state over the configured bound.
    STATE_TOO_LARGE = 606, "connection state too large";
    /// The relay node running the invocation was lost; the session moved to
    /// another node (SPEC.md §11.4). Retryable: the call may or may not have
    /// run.
    NODE_LOST = 607, "relay node lost";
}

impl ErrorCode {
    /// True for the invocation errors a caller may simply retry: the
    /// request was refused for a passing reason or lost with a relay node
    /// (SPEC.md §7.1): `RATE_LIMITED`, `GOING_AWAY`, `BACKEND_UNAVAILABLE`,
    /// `BACKEND_OVERLOADED`, `NODE_LOST`. A tool with side effects should
    /// make them idempotent before retrying after `NODE_LOST`, which does
    /// not say whether the call ran.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RATE_LIMITED
                | Self::GOING_AWAY
                | Self::BACKEND_UNAVAILABLE
                | Self::BACKEND_OVERLOADED
                | Self::NODE_LOST
        )
    }

    /// The class this code belongs to, known even for codes this version
    /// does not define.
    pub fn class(self) -> ErrorClass {
        match self.0 {
            0..=99 => ErrorClass::General,
            100..=199 => ErrorClass::Protocol,
            200..=299 => ErrorClass::Limits,
            300..=399 => ErrorClass::Invocation,
            400..=499 => ErrorClass::Auth,
            500..=599 => ErrorClass::Resume,
            600..=699 => ErrorClass::Relay,
            700..=899 => ErrorClass::Reserved,
            _ => ErrorClass::Application,
        }
    }

    /// The WebSocket close code that ends a connection for this error
    /// (SPEC.md §7.2): 1000 for [`NO_ERROR`](Self::NO_ERROR), 1003 for
    /// [`TEXT_MESSAGE`](Self::TEXT_MESSAGE) (RFC 6455 "unsupported data"),
    /// `4000 + code` for codes up to 999, and 4999 for anything larger.
    pub fn close_code(self) -> u16 {
        match self {
            Self::NO_ERROR => 1000,
            Self::TEXT_MESSAGE => 1003,
            ErrorCode(c @ 1..=998) => 4000 + c,
            // 999 and application codes: the ERROR(0) frame before the close
            // carries the code itself (SPEC.md §7.2).
            _ => 4999,
        }
    }

    /// The inverse of [`close_code`](Self::close_code), for the side that
    /// receives a WebSocket close frame. `None` for close codes ASP does not
    /// assign, and for 4999 (code 999 or an application code: the ERROR(0)
    /// before the close says which).
    pub fn from_close_code(close: u16) -> Option<ErrorCode> {
        match close {
            1000 => Some(Self::NO_ERROR),
            1003 => Some(Self::TEXT_MESSAGE),
            4001..=4998 => Some(ErrorCode(close - 4000)),
            _ => None,
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "ErrorCode({})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} {name}", self.0),
            None => write!(f, "{} ({})", self.0, self.description()),
        }
    }
}

impl From<u16> for ErrorCode {
    fn from(code: u16) -> Self {
        ErrorCode(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defined_code_has_a_distinct_name_and_its_own_class() {
        let mut names = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let name = code.name().expect("defined codes are named");
            assert!(names.insert(name), "duplicate name {name}");
            assert_ne!(code.class(), ErrorClass::Reserved, "{name}");
            assert_ne!(code.class(), ErrorClass::Application, "{name}");
        }
        assert!(ErrorCode::ALL.windows(2).all(|w| w[0] < w[1]), "table is sorted and unique");
    }

    #[test]
    fn close_codes_round_trip_for_every_defined_code() {
        for &code in ErrorCode::ALL {
            let close = code.close_code();
            assert!(close == 1000 || close == 1003 || (4000..=4999).contains(&close));
            assert_eq!(ErrorCode::from_close_code(close), Some(code), "{code:?}");
        }
        assert_eq!(ErrorCode::FRAME_TOO_LARGE.close_code(), 4200);
        assert_eq!(ErrorCode(50_000).close_code(), 4999);
        assert_eq!(ErrorCode(999).close_code(), 4999);
        assert_eq!(ErrorCode(998).close_code(), 4998);
        assert_eq!(ErrorCode::from_close_code(4999), None, "4999 names no single code");
        assert_eq!(ErrorCode::from_close_code(1006), None);
    }

    #[test]
    fn unknown_codes_keep_their_class_and_print_usefully() {
        assert_eq!(ErrorCode(250).class(), ErrorClass::Limits);
        assert_eq!(ErrorCode(250).name(), None);
        assert_eq!(ErrorCode(950).class(), ErrorClass::Application);
        assert_eq!(format!("{}", ErrorCode(950)), "950 (application-defined error)");
        assert_eq!(format!("{:?}", ErrorCode::CANCELLED), "CANCELLED(302)");
    }
}
