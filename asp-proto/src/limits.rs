//! Protocol limits and their defaults (SPEC.md §12).
//!
//! Each limit is a constant here so that SPEC.md, the codec and the session
//! core quote one number. Sizes are in bytes, durations in milliseconds, as
//! they travel on the wire.

/// Largest payload a peer accepts unless it announces otherwise in HELLO.
pub const DEFAULT_MAX_FRAME_PAYLOAD: u32 = 1 << 20;

/// The smallest `limits.max_frame` a peer may announce. Every control frame
/// this version defines fits comfortably, so no peer can make another unable
/// to send an ERROR.
pub const MIN_MAX_FRAME_PAYLOAD: u32 = 16 * 1024;

/// Largest payload accepted before the handshake completes, whatever the
/// configured maximum: an unauthenticated peer cannot make a server buffer
/// more than this.
pub const HANDSHAKE_MAX_FRAME_PAYLOAD: u32 = 64 * 1024;

/// Default limit on invocations a peer may have open towards us at once.
pub const DEFAULT_MAX_CONCURRENT_INVOCATIONS: u16 = 100;

/// Default initial credit, in STREAM payload bytes, for each invocation.
pub const DEFAULT_INVOCATION_WINDOW: u32 = 256 * 1024;

/// Default initial credit, in STREAM payload bytes, for the whole connection.
pub const DEFAULT_CONNECTION_WINDOW: u32 = 1 << 20;

/// Largest credit a window may hold (as HTTP/2: 2^31 - 1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Default PING interval the server announces in HELLO (`hb`).
pub const DEFAULT_HEARTBEAT_MS: u32 = 15_000;

/// Default number of unanswered PINGs after which the peer is declared dead.
pub const DEFAULT_MISSED_PINGS: u32 = 2;

/// Default time for the handshake to complete after the transport opens.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u32 = 10_000;

/// Default time a session outlives its transport, waiting to be resumed.
pub const DEFAULT_RESUME_GRACE_MS: u32 = 60_000;

/// Default bound on the bytes of sent-but-unacknowledged frames kept for replay.
pub const DEFAULT_REPLAY_BUFFER_BYTES: usize = 1 << 20;

/// Shortest resume ticket (128 bits).
pub const MIN_RESUME_TICKET_LEN: usize = 16;

/// Longest resume ticket.
pub const MAX_RESUME_TICKET_LEN: usize = 64;

/// Longest connection id (`cid`), in bytes of UTF-8.
pub const MAX_CONNECTION_ID_LEN: usize = 64;

/// Deepest nesting of arrays and maps inside a MsgPack payload. Decoding
/// recurses, so an unbounded depth would let 1 MiB of `0x91` bytes overflow
/// the stack.
pub const MAX_NESTING_DEPTH: usize = 32;

/// Length of the resume tickets this implementation issues: 8 bytes of
/// lookup key and 24 of secret (SPEC.md §11.2).
pub const TICKET_LEN: usize = 32;

/// A receiver acknowledges sequenced frames at least every this many frames
/// (or every half replay bound of bytes, whichever comes first).
pub const ACK_EVERY_FRAMES: u64 = 64;

/// Default bound on the tools kept for the peer (`TOO_MANY_TOOLS` past it).
pub const DEFAULT_MAX_PEER_TOOLS: usize = 1024;

/// Default bound on the size of the tools kept for the peer, about their
/// MsgPack size (`TOO_MANY_TOOLS` past it).
pub const DEFAULT_MAX_PEER_TOOLS_BYTES: usize = 1 << 20;

/// An ERROR whose message (or `data`) would make the frame larger than the
/// peer accepts goes out with the message cut to this many bytes and no
/// `data` (SPEC.md §5.2): an invocation always gets its terminal frame.
pub const MAX_FITTED_ERROR_MESSAGE: usize = 1024;

/// Longest WebSocket close reason, in bytes (RFC 6455: a control frame's
/// payload is at most 125 bytes, two of which are the code).
pub const CLOSE_REASON_MAX: usize = 123;

/// Cuts `reason` to [`CLOSE_REASON_MAX`] bytes on a character boundary, as
/// every adapter must before it writes a WebSocket close frame.
pub fn truncate_close_reason(mut reason: String) -> String {
    if reason.len() > CLOSE_REASON_MAX {
        let mut cut = CLOSE_REASON_MAX;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_on_a_char_boundary() {
        assert_eq!(truncate_close_reason("short".into()), "short");
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate_close_reason(long);
        assert!(cut.len() <= CLOSE_REASON_MAX && cut.len() >= CLOSE_REASON_MAX - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
