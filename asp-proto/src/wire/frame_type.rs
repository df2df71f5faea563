//! The eleven frame types, their flag bits and their request-id rules.

use std::fmt;

/// Flag bits, per frame type (SPEC.md §4.3). A bit not listed for a type is
/// reserved and must be zero.
pub mod flags {
    /// HELLO: this is the server's (or relay's) answer, not the client's offer.
    pub const HELLO_REPLY: u8 = 0x01;
    /// STREAM: the payload is a MsgPack progress update, not output bytes.
    pub const STREAM_PROGRESS: u8 = 0x01;
}

/// What a frame type requires of the header's request id.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RequestIdRule {
    /// Must be 0: the frame concerns the connection.
    Connection,
    /// Must not be 0: the frame concerns one invocation.
    Invocation,
    /// Either: 0 for the connection, otherwise one invocation.
    Either,
}

/// The 4-bit frame type of the header (SPEC.md §4.2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FrameType {
    /// Handshake: the client's offer, or (flag `HELLO_REPLY`) the server's answer.
    Hello = 0x1,
    /// Open an invocation.
    Invoke = 0x2,
    /// One chunk of an invocation's output, or (flag `STREAM_PROGRESS`) a progress update.
    Stream = 0x3,
    /// The invoker asks the handler to stop.
    Interrupt = 0x4,
    /// Add, remove or replace the sender's tools.
    ToolDef = 0x5,
    /// Ends one invocation with an error, or (request id 0) the connection.
    Error = 0x6,
    /// Ends one invocation with its result and metrics.
    Complete = 0x7,
    /// Liveness probe and acknowledgement.
    Ping = 0x8,
    /// Answer to PING.
    Pong = 0x9,
    /// Flow-control credit.
    Window = 0xA,
    /// Graceful drain.
    GoAway = 0xB,
}

impl FrameType {
    /// All types, in numeric order.
    pub const ALL: [FrameType; 11] = [
        FrameType::Hello,
        FrameType::Invoke,
        FrameType::Stream,
        FrameType::Interrupt,
        FrameType::ToolDef,
        FrameType::Error,
        FrameType::Complete,
        FrameType::Ping,
        FrameType::Pong,
        FrameType::Window,
        FrameType::GoAway,
    ];

    /// The type for a 4-bit code, or `None` for the reserved codes 0x0 and 0xC–0xF.
    pub fn from_code(code: u8) -> Option<FrameType> {
        Some(match code {
            0x1 => FrameType::Hello,
            0x2 => FrameType::Invoke,
            0x3 => FrameType::Stream,
            0x4 => FrameType::Interrupt,
            0x5 => FrameType::ToolDef,
            0x6 => FrameType::Error,
            0x7 => FrameType::Complete,
            0x8 => FrameType::Ping,
            0x9 => FrameType::Pong,
            0xA => FrameType::Window,
            0xB => FrameType::GoAway,
            _ => return None,
        })
    }

    /// The 4-bit code on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The name SPEC.md uses (`"TOOL_DEF"`).
    pub fn name(self) -> &'static str {
        match self {
            FrameType::Hello => "HELLO",
            FrameType::Invoke => "INVOKE",
            FrameType::Stream => "STREAM",
            FrameType::Interrupt => "INTERRUPT",
            FrameType::ToolDef => "TOOL_DEF",
            FrameType::Error => "ERROR",
            FrameType::Complete => "COMPLETE",
            FrameType::Ping => "PING",
            FrameType::Pong => "PONG",
            FrameType::Window => "WINDOW",
            FrameType::GoAway => "GOAWAY",
        }
    }

    /// The type whose [`name`](Self::name) this is.
    pub fn from_name(name: &str) -> Option<FrameType> {
        FrameType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The flag bits defined for this type; all others are reserved.
    pub fn defined_flags(self) -> u8 {
        match self {
            FrameType::Hello => flags::HELLO_REPLY,
            FrameType::Stream => flags::STREAM_PROGRESS,
            _ => 0,
        }
    }

    /// What this type requires of the request id.
    pub fn request_id_rule(self) -> RequestIdRule {
        match self {
            FrameType::Hello | FrameType::ToolDef | FrameType::Ping | FrameType::Pong | FrameType::GoAway => {
                RequestIdRule::Connection
            }
            FrameType::Invoke | FrameType::Stream | FrameType::Interrupt | FrameType::Complete => {
                RequestIdRule::Invocation
            }
            FrameType::Error | FrameType::Window => RequestIdRule::Either,
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_reserved_values_agree() {
        for t in FrameType::ALL {
            assert_eq!(FrameType::from_code(t.code()), Some(t));
            assert_eq!(FrameType::from_name(t.name()), Some(t));
        }
        for reserved in [0x0, 0xC, 0xD, 0xE, 0xF, 0x10, 0xFF] {
            assert_eq!(FrameType::from_code(reserved), None);
        }
    }
}
