//! `asp conformance URL`: checks any ASP/1 server against the MUSTs of
//! SPEC.md that can be observed from the wire, in the manner of h2spec.
//!
//! Every check opens its own WebSocket, speaks raw frames (encoded and
//! decoded by `asp-proto`, so the runner never re-implements the codec),
//! and compares what comes back with what the cited section requires. The
//! checks assume nothing about the server's tools: they invoke a tool name
//! no server has.

use std::sync::Arc;
use std::time::Duration;

use asp_driver::tungstenite::Message;
use asp_proto::{
    decode_all, ClientHello, ErrorCode, Frame, GoAway, Interrupt, Invoke, Ping, RequestId, ResumeRequest, ServerHello,
    ToolDef, ToolOp, ToolSpec, Value, Window,
};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::time::timeout;

/// How long one step may wait for the server.
const STEP: Duration = Duration::from_secs(3);

/// A tool name no server offers.
const NO_SUCH_TOOL: &str = "asp-conformance-no-such-tool";

/// Where and how to connect.
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) token: Option<String>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

/// One check's outcome.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) section: &'static str,
    pub(crate) name: &'static str,
    pub(crate) result: Result<(), String>,
}

/// What the server did after a step.
#[derive(Debug)]
enum Seen {
    Frames(Vec<Frame>),
    Close(Option<u16>),
    Silence,
}

struct Conn {
    ws: asp_driver::BoxTransport,
}

impl Conn {
    async fn open(target: &Target) -> Result<Conn, String> {
        let net = asp_tokio::TokioRuntime;
        let ws = asp_driver::net::dial_raw(&net, &target.url, target.token.as_deref(), target.tls.clone())
            .await
            .map_err(|e| format!("could not connect: {e}"))?;
        Ok(Conn { ws })
    }

    /// Opens a connection and completes the handshake.
    async fn ready(target: &Target, hello: ClientHello) -> Result<(Conn, ServerHello), String> {
        let mut conn = Conn::open(target).await?;
        let hello = ClientHello { token: target.token.clone(), ..hello };
        conn.send(Frame::Hello(hello)).await?;
        loop {
            match conn.next().await? {
                Seen::Frames(frames) => {
                    if let Some(Frame::HelloReply(reply)) =
                        frames.into_iter().find(|f| matches!(f, Frame::HelloReply(_)))
                    {
                        return Ok((conn, reply));
                    }
                }
                other => return Err(format!("no server HELLO: {other:?}")),
            }
        }
    }

    async fn send(&mut self, frame: Frame) -> Result<(), String> {
        let bytes = frame.to_bytes().map_err(|e| e.to_string())?;
        self.send_raw(bytes).await
    }

    async fn send_raw(&mut self, bytes: Bytes) -> Result<(), String> {
        self.ws.send(Message::Binary(bytes)).await.map_err(|e| format!("write failed: {e}"))
    }

    /// The next thing the server does: frames, a close, or nothing for a while.
    async fn next(&mut self) -> Result<Seen, String> {
        loop {
            return match timeout(STEP, self.ws.next()).await {
                Err(_) => Ok(Seen::Silence),
                Ok(None) => Ok(Seen::Close(None)),
                Ok(Some(Err(_))) => Ok(Seen::Close(None)),
                Ok(Some(Ok(Message::Binary(bytes)))) => decode_all(bytes, u32::MAX)
                    .map(Seen::Frames)
                    .map_err(|e| format!("the server sent an invalid frame: {e}")),
                Ok(Some(Ok(Message::Close(frame)))) => Ok(Seen::Close(frame.map(|f| u16::from(f.code)))),
                Ok(Some(Ok(Message::Text(_)))) => Err("the server sent a text message (§3.2)".into()),
                Ok(Some(Ok(_))) => continue,
            };
        }
    }

    /// Reads until the server sends ERROR(0, `code`) and closes with the
    /// matching WebSocket code (§4.4, §7.2, §13).
    async fn expect_fatal(&mut self, code: ErrorCode) -> Result<(), String> {
        let mut error_seen = false;
        for _ in 0..64 {
            match self.next().await? {
                Seen::Frames(frames) => {
                    for frame in frames {
                        if let Frame::Error(id, e) = frame {
                            if id.is_connection() {
                                if e.code != code {
                                    return Err(format!("ERROR(0) with {:?}, expected {code:?}", e.code));
                                }
                                error_seen = true;
                            }
                        }
                    }
                }
                Seen::Close(close) => {
                    if !error_seen {
                        return Err(format!("closed ({close:?}) without ERROR(0, {code:?})"));
                    }
                    return match close {
                        Some(c) if c == code.close_code() => Ok(()),
                        Some(c) => Err(format!("close code {c}, expected {}", code.close_code())),
                        None => Err(format!("no close frame, expected close code {}", code.close_code())),
                    };
                }
                Seen::Silence => {
                    return Err(format!("nothing for {} s; expected ERROR(0, {code:?}) and a close", STEP.as_secs()))
                }
            }
        }
        Err("too many frames before the error".into())
    }

    /// Reads until ERROR(id) or COMPLETE(id) arrives; returns the ERROR's code.
    async fn expect_terminal(&mut self, id: RequestId) -> Result<Option<ErrorCode>, String> {
        for _ in 0..64 {
            match self.next().await? {
                Seen::Frames(frames) => {
                    for frame in frames {
                        match frame {
                            Frame::Error(i, e) if i == id => return Ok(Some(e.code)),
                            Frame::Complete(i, _) if i == id => return Ok(None),
                            Frame::Error(i, e) if i.is_connection() => {
                                return Err(format!("the session ended: ERROR(0, {:?}) {}", e.code, e.message))
                            }
                            _ => {}
                        }
                    }
                }
                other => return Err(format!("no terminal frame for {id}: {other:?}")),
            }
        }
        Err(format!("no terminal frame for {id}"))
    }

    /// Sends a PING and waits for its PONG: the session is alive (§9).
    async fn alive(&mut self, seq: u32) -> Result<(), String> {
        self.send(Frame::Ping(Ping { seq, recv: None })).await?;
        for _ in 0..64 {
            match self.next().await? {
                Seen::Frames(frames) => {
                    if frames.iter().any(|f| matches!(f, Frame::Pong(p) if p.seq == seq)) {
                        return Ok(());
                    }
                    if let Some(Frame::Error(_, e)) =
                        frames.iter().find(|f| matches!(f, Frame::Error(i, _) if i.is_connection()))
                    {
                        return Err(format!("the session ended: ERROR(0, {:?}) {}", e.code, e.message));
                    }
                }
                other => return Err(format!("no PONG for PING {seq}: {other:?}")),
            }
        }
        Err(format!("no PONG for PING {seq}"))
    }
}

/// A frame header and payload as bytes, for frames the codec refuses to write.
fn raw(first: u8, flags: u8, id: u16, payload: &[u8]) -> Bytes {
    let mut out = vec![first, flags];
    out.extend(id.to_be_bytes());
    out.extend((payload.len() as u32).to_be_bytes());
    out.extend(payload);
    out.into()
}

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

fn unexpected(what: &str, seen: Seen) -> String {
    format!("{what}: {seen:?}")
}

/// Runs every check against `target`, in order.
pub(crate) async fn run(target: &Target) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    macro_rules! checks {
        ($($section:literal, $name:literal => $body:expr;)*) => {
            $( outcomes.push(Outcome { section: $section, name: $name, result: $body.await }); )*
        };
    }
    checks! {
        "§8.1", "HELLO is answered with the server's HELLO, version 1, a connection id" => async {
            let (_, hello) = Conn::ready(target, ClientHello::new()).await?;
            check(hello.version == 1 && !hello.cid.is_empty() && hello.cid.len() <= 64, || format!("{hello:?}"))
        };
        "§9", "PING is answered with a PONG of the same seq" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.alive(7).await
        };
        "§3.2", "a text message is fatal: ERROR(0, TEXT_MESSAGE), close 1003" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.ws.send(Message::Text("hello".into())).await.map_err(|e| e.to_string())?;
            conn.expect_fatal(ErrorCode::TEXT_MESSAGE).await
        };
        "§8.1", "a frame other than HELLO first is UNEXPECTED_FRAME" => async {
            let mut conn = Conn::open(target).await?;
            conn.send(Frame::Ping(Ping { seq: 1, recv: None })).await?;
            conn.expect_fatal(ErrorCode::UNEXPECTED_FRAME).await
        };
        "§8.2", "a HELLO offering only version 2 is UNSUPPORTED_VERSION" => async {
            let mut conn = Conn::open(target).await?;
            conn.send(Frame::Hello(ClientHello { versions: vec![2], ..ClientHello::new() })).await?;
            conn.expect_fatal(ErrorCode::UNSUPPORTED_VERSION).await
        };
        "§4.4", "header version 2 is UNSUPPORTED_VERSION" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send_raw(raw(0x29, 0, 0, b"")).await?;
            conn.expect_fatal(ErrorCode::UNSUPPORTED_VERSION).await
        };
        "§4.4", "a reserved frame type is RESERVED_TYPE" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send_raw(raw(0x1F, 0, 0, b"")).await?;
            conn.expect_fatal(ErrorCode::RESERVED_TYPE).await
        };
        "§4.4", "a declared length over max_frame is FRAME_TOO_LARGE, before the payload" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            let mut header = raw(0x13, 0, 1, b"").to_vec();
            header[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
            conn.send_raw(header.into()).await?;
            conn.expect_fatal(ErrorCode::FRAME_TOO_LARGE).await
        };
        "§3.2", "a message ending inside a frame is TRUNCATED_FRAME" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send_raw(raw(0x13, 0, 1, b"abcde").slice(..11)).await?;
            conn.expect_fatal(ErrorCode::TRUNCATED_FRAME).await
        };
        "§6.1", "a payload that is not a map is MALFORMED_PAYLOAD" => async {
            let mut conn = Conn::open(target).await?;
            conn.send_raw(raw(0x11, 0, 0, &[0x91, 0x01])).await?;
            conn.expect_fatal(ErrorCode::MALFORMED_PAYLOAD).await
        };
        "§6.1", "33 levels of nesting are MALFORMED_PAYLOAD" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            let mut payload = vec![0x82, 0xa4, b't', b'o', b'o', b'l', 0xa1, b't', 0xa4, b'a', b'r', b'g', b's'];
            payload.extend(std::iter::repeat_n(0x91u8, 31));
            payload.push(0x90);
            conn.send_raw(raw(0x12, 0, 1, &payload)).await?;
            conn.expect_fatal(ErrorCode::MALFORMED_PAYLOAD).await
        };
        "§3.1", "an upgrade without the asp-v1 subprotocol is refused with 400" => async {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let request = target.url.as_str().into_client_request().map_err(|e| e.to_string())?;
            let connector = tokio_tungstenite::Connector::Rustls(target.tls.clone());
            match tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector)).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    check(response.status() == 400, || format!("HTTP {}", response.status()))
                }
                Err(e) => Err(format!("expected HTTP 400, got {e}")),
                Ok(_) => Err("the upgrade succeeded without asp-v1".into()),
            }
        };
        "§4.4", "a reserved flag bit is RESERVED_FLAGS" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send_raw(raw(0x18, 0x80, 0, &[0x81, 0xa3, b's', b'e', b'q', 0x01])).await?;
            conn.expect_fatal(ErrorCode::RESERVED_FLAGS).await
        };
        "§4.5", "a PING with a request id other than 0 is INVALID_REQUEST_ID" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send_raw(raw(0x18, 0, 5, &[0x81, 0xa3, b's', b'e', b'q', 0x01])).await?;
            conn.expect_fatal(ErrorCode::INVALID_REQUEST_ID).await
        };
        "§6.1", "a required key that is absent is MISSING_FIELD" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send_raw(raw(0x12, 0, 1, &[0x81, 0xa4, b'a', b'r', b'g', b's', 0xc0])).await?;
            conn.expect_fatal(ErrorCode::MISSING_FIELD).await
        };
        "§5.1", "an INVOKE with the server's parity is INVALID_REQUEST_ID" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send(Frame::Invoke(RequestId(2), Invoke::new(NO_SUCH_TOOL, Value::Nil))).await?;
            conn.expect_fatal(ErrorCode::INVALID_REQUEST_ID).await
        };
        "§5.3", "an unknown tool ends that invocation only (UNKNOWN_TOOL), the id is free again" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            for _ in 0..2 {
                conn.send(Frame::Invoke(RequestId(1), Invoke::new(NO_SUCH_TOOL, Value::Nil))).await?;
                let code = conn.expect_terminal(RequestId(1)).await?;
                check(code == Some(ErrorCode::UNKNOWN_TOOL), || format!("terminal {code:?}, expected UNKNOWN_TOOL"))?;
            }
            conn.alive(1).await
        };
        "§5.3", "STREAM for an id that is not open is UNKNOWN_REQUEST" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send(Frame::Stream(RequestId(2), Bytes::from_static(b"x"))).await?;
            conn.expect_fatal(ErrorCode::UNKNOWN_REQUEST).await
        };
        "§5.3", "INTERRUPT and WINDOW for ids that are not open are ignored" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send(Frame::Interrupt(RequestId(41), Interrupt::default())).await?;
            conn.send(Frame::Window(RequestId(41), Window { credit: 1024 })).await?;
            conn.alive(2).await
        };
        "§10", "WINDOW raising the connection window past 2^31-1 is FLOW_CONTROL" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            let max = asp_proto::limits::MAX_WINDOW;
            conn.send(Frame::Window(RequestId::CONNECTION, Window { credit: max })).await?;
            conn.send(Frame::Window(RequestId::CONNECTION, Window { credit: max })).await?;
            conn.expect_fatal(ErrorCode::FLOW_CONTROL).await
        };
        "§8.1", "a second HELLO is UNEXPECTED_FRAME" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send(Frame::Hello(ClientHello::new())).await?;
            conn.expect_fatal(ErrorCode::UNEXPECTED_FRAME).await
        };
        "§6.5", "a client's TOOL_DEF is accepted" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            let def = ToolDef { op: ToolOp::Add, tools: vec![ToolSpec::named("conformance-client-tool")] };
            conn.send(Frame::ToolDef(def)).await?;
            conn.alive(3).await
        };
        "§13", "after the client's GOAWAY and ERROR(0, NO_ERROR) the server closes with 1000" => async {
            let (mut conn, _) = Conn::ready(target, ClientHello::new()).await?;
            conn.send(Frame::GoAway(GoAway::default())).await?;
            conn.alive(4).await?;
            conn.send(Frame::Error(RequestId::CONNECTION, asp_proto::ErrorInfo::new(ErrorCode::NO_ERROR, "bye"))).await?;
            match conn.next().await? {
                Seen::Close(Some(1000)) | Seen::Close(None) => Ok(()),
                other => Err(unexpected("expected the close", other)),
            }
        };
        "§11.3", "a resume with an unknown ticket starts a new session with resume_error 500" => async {
            let hello = ClientHello {
                caps: vec!["resume".into()],
                resume: Some(ResumeRequest { ticket: vec![0xA5; 32].into(), recv: 0 }),
                ..ClientHello::new()
            };
            let (mut conn, reply) = Conn::ready(target, hello).await?;
            check(reply.resumed.is_none() && reply.resume_error == Some(ErrorCode::RESUME_UNKNOWN_SESSION), || {
                format!("resumed {:?}, resume_error {:?}", reply.resumed, reply.resume_error)
            })?;
            conn.alive(5).await
        };
        "§11.3", "a resume after a lost transport keeps the connection id" => async {
            let hello = ClientHello { caps: vec!["resume".into()], ..ClientHello::new() };
            let (conn, first) = Conn::ready(target, hello.clone()).await?;
            let Some(offer) = first.resume else {
                return Err("the server offers no resume (it may not support it; §11 is optional)".into());
            };
            drop(conn);
            tokio::time::sleep(Duration::from_millis(200)).await;
            // No sequenced frame was received (the HELLO is not sequenced).
            let request = ResumeRequest { ticket: offer.ticket, recv: 0 };
            let (mut conn, again) = Conn::ready(target, ClientHello { resume: Some(request), ..hello }).await?;
            check(again.resumed.is_some() && again.cid == first.cid && again.resume.is_some(), || {
                format!("cid {} → {}, resumed {:?}, resume_error {:?}", first.cid, again.cid, again.resumed, again.resume_error)
            })?;
            conn.alive(6).await
        };
        "§11.3", "a forged ticket (right key, wrong secret) gets 500 and leaves the session alone" => async {
            let hello = ClientHello { caps: vec!["resume".into()], ..ClientHello::new() };
            let (mut victim, first) = Conn::ready(target, hello.clone()).await?;
            let Some(offer) = first.resume else {
                return Err("the server offers no resume (it may not support it; §11 is optional)".into());
            };
            let mut ticket = offer.ticket.to_vec();
            let last = ticket.len() - 1;
            ticket[last] ^= 0x01;
            let forged = ResumeRequest { ticket: ticket.into(), recv: 0 };
            let (_, reply) = Conn::ready(target, ClientHello { resume: Some(forged), ..hello }).await?;
            check(reply.resume_error == Some(ErrorCode::RESUME_UNKNOWN_SESSION) && reply.cid != first.cid, || {
                format!("resume_error {:?}, cid {}", reply.resume_error, reply.cid)
            })?;
            victim.alive(8).await
        };
    }
    outcomes
}

/// Prints the outcomes, one line each, and a summary; JSON with `json`.
pub(crate) fn report(outcomes: &[Outcome], json: bool) -> bool {
    let passed = outcomes.iter().filter(|o| o.result.is_ok()).count();
    if json {
        let checks: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|o| {
                serde_json::json!({
                    "section": o.section,
                    "check": o.name,
                    "ok": o.result.is_ok(),
                    "detail": o.result.as_ref().err(),
                })
            })
            .collect();
        let summary = serde_json::json!({ "checks": checks, "passed": passed, "total": outcomes.len() });
        println!("{summary}");
    } else {
        for o in outcomes {
            match &o.result {
                Ok(()) => println!("PASS {:6} {}", o.section, o.name),
                Err(why) => println!("FAIL {:6} {}\n            {why}", o.section, o.name),
            }
        }
        println!("conformance: {passed} of {} checks passed", outcomes.len());
    }
    passed == outcomes.len()
}
