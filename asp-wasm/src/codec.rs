//! The frame codec, for tools and for running SPEC.md §14's conformance
//! vectors through the same decoder the session uses.

use asp_proto::{decode_all, flags, ErrorCode, FrameHeader, FrameType};
use bytes::Bytes;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::values::to_js;

#[derive(Serialize)]
struct DecodedFrame {
    #[serde(rename = "type")]
    frame_type: &'static str,
    flags: u8,
    request_id: u16,
    /// The frame encoded again by asp-proto's encoder (canonical bytes).
    #[serde(with = "serde_bytes")]
    canonical: Vec<u8>,
}

#[derive(Serialize)]
struct DecodeError {
    code: u16,
    name: Option<&'static str>,
    message: String,
}

/// Decodes every frame in `bytes` (at most `max_payload` bytes of payload
/// each): `[{ type, flags, request_id, canonical }]`, or throws
/// `{ code, name, message }` with the SPEC's error code.
#[wasm_bindgen(js_name = decodeFrames)]
pub fn decode_frames(bytes: &[u8], max_payload: u32) -> Result<JsValue, JsValue> {
    let error = |code: ErrorCode, message: String| to_js(&DecodeError { code: code.0, name: code.name(), message });
    let frames = decode_all(Bytes::copy_from_slice(bytes), max_payload).map_err(|e| error(e.code(), e.to_string()))?;
    let mut out = Vec::with_capacity(frames.len());
    let mut rest = bytes;
    for frame in frames {
        let header = FrameHeader::parse(rest[..FrameHeader::LEN].try_into().expect("8 bytes"), u32::MAX)
            .map_err(|e| error(e.code(), e.to_string()))?;
        rest = &rest[FrameHeader::LEN + header.payload_len as usize..];
        let canonical = frame.to_bytes().map_err(|e| error(ErrorCode::INTERNAL, e.to_string()))?.to_vec();
        out.push(DecodedFrame {
            frame_type: header.frame_type.name(),
            flags: header.flags,
            request_id: header.request_id.0,
            canonical,
        });
    }
    Ok(to_js(&out))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeaderSummary {
    #[serde(rename = "type")]
    frame_type: &'static str,
    flags: u8,
    request_id: u16,
    payload_bytes: u32,
    /// The type with its flags spelled out: `STREAM+PROGRESS`, `HELLO+REPLY`.
    label: String,
}

/// The headers of the frames in one WebSocket message, without decoding
/// payloads (cheap enough for a live frame log): `[{ type, flags,
/// requestId, payloadBytes, label }]`. Stops at the first header that does not
/// parse or a payload that is cut short.
#[wasm_bindgen(js_name = frameHeaders)]
pub fn frame_headers(bytes: &[u8]) -> JsValue {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(head) = rest.get(..FrameHeader::LEN) {
        let Ok(header) = FrameHeader::parse(head.try_into().expect("8 bytes"), u32::MAX) else { break };
        let len = FrameHeader::LEN + header.payload_len as usize;
        if rest.len() < len {
            break;
        }
        let label = match (header.frame_type, header.flags) {
            (FrameType::Stream, f) if f & flags::STREAM_PROGRESS != 0 => "STREAM+PROGRESS".to_owned(),
            (FrameType::Hello, f) if f & flags::HELLO_REPLY != 0 => "HELLO+REPLY".to_owned(),
            (t, _) => t.name().to_owned(),
        };
        out.push(HeaderSummary {
            label,
            frame_type: header.frame_type.name(),
            flags: header.flags,
            request_id: header.request_id.0,
            payload_bytes: header.payload_len,
        });
        rest = &rest[len..];
    }
    to_js(&out)
}

/// Decodes one frame and encodes it again (the canonical form).
#[wasm_bindgen(js_name = encodeFrameAgain)]
pub fn encode_frame_again(bytes: &[u8]) -> Result<Vec<u8>, JsValue> {
    let frames = decode_all(Bytes::copy_from_slice(bytes), u32::MAX).map_err(|e| JsValue::from_str(&e.to_string()))?;
    match frames.as_slice() {
        [frame] => frame.to_bytes().map(|b| b.to_vec()).map_err(|e| JsValue::from_str(&e.to_string())),
        _ => Err(JsValue::from_str("expected exactly one frame")),
    }
}

/// The SPEC name of an error code (`UNKNOWN_TOOL` for 300), if it has one.
#[wasm_bindgen(js_name = errorName)]
pub fn error_name(code: u16) -> Option<String> {
    ErrorCode(code).name().map(str::to_owned)
}
