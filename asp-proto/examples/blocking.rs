//! The smallest custom transport: an ASP server and client, each a
//! [`Session`] driven over a blocking `std::net::TcpStream` with synchronous
//! `tungstenite`. No async runtime, no adapter crate: this is the whole
//! contract between the Sans-IO core and the world, in one loop ([`drive`]).
//!
//! Run with `cargo run -p asp-proto --example blocking`. It binds a port on
//! 127.0.0.1, serves one client in a thread, and exits.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use asp_proto::{ErrorCode, Event, Invoke, Session, SessionConfig, ToolSpec, Value};
use bytes::Bytes;
use tungstenite::handshake::server::{Request, Response};
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The Sans-IO loop. After every input, drain transmits (one WebSocket
/// message each) and events; then wait for the next message, but no longer
/// than the session's next deadline. `on_event` is the application: it may
/// call commands on the session, and returns `false` to stop.
fn drive(
    ws: &mut WebSocket<TcpStream>,
    session: &mut Session,
    mut on_event: impl FnMut(&mut Session, Event) -> bool,
) -> Result<(), Error> {
    loop {
        // Outputs: bytes first, then events (which may queue more bytes).
        loop {
            while let Some(bytes) = session.poll_transmit() {
                ws.write(Message::Binary(bytes))?;
            }
            ws.flush()?;
            let Some(event) = session.poll_event() else { break };
            if !on_event(session, event) {
                return Ok(());
            }
        }
        if session.is_closed() {
            return Ok(());
        }
        // Input: a message, or the deadline. Time is an input too: the
        // session never reads a clock.
        let wait = session.poll_timeout().map(|at| at.saturating_duration_since(Instant::now()));
        ws.get_mut().set_read_timeout(wait.map(|d| d.max(Duration::from_millis(1))))?;
        match ws.read() {
            Ok(Message::Binary(bytes)) => session.handle_message(Instant::now(), bytes),
            Ok(Message::Text(_)) => session.handle_text_message(Instant::now()),
            Ok(_) => {} // WebSocket ping/pong/close frames: tungstenite answers them
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                session.handle_timeout(Instant::now())
            }
            Err(_) => session.handle_transport_closed(Instant::now()),
        }
    }
}

/// A server with one tool, `shout`, that streams its argument in capitals
/// word by word and returns the word count.
#[allow(clippy::result_large_err)] // tungstenite's handshake callback returns its HTTP response
fn serve_one(listener: TcpListener) -> Result<(), Error> {
    let (tcp, _) = listener.accept()?;
    let mut ws = tungstenite::accept_hdr(tcp, |_req: &Request, mut resp: Response| {
        resp.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("asp-v1"));
        Ok(resp)
    })?;
    let config = SessionConfig { tools: vec![ToolSpec::named("shout")].into(), ..SessionConfig::default() };
    let mut session = Session::server(config, Instant::now(), Box::new(StdEntropy));
    drive(&mut ws, &mut session, |session, event| {
        match event {
            Event::HelloReceived(_) => session.accept(Instant::now()).is_ok(),
            Event::Invoked { id, invoke } => {
                let text = invoke.args.as_str().unwrap_or_default().to_uppercase();
                let words: Vec<&str> = text.split(' ').collect();
                for word in &words {
                    let mut chunk = Bytes::from(format!("{word} "));
                    // A real handler would queue what does not fit
                    // (asp_proto::OutputQueue); these chunks are tiny.
                    session.send_chunk(id, &mut chunk).expect("within the window");
                }
                session.complete(Instant::now(), id, Value::from(words.len()), None).is_ok()
            }
            Event::Closed(_) => false,
            _ => true,
        }
    })
}

/// A client: invokes `shout`, prints the stream, closes.
fn client(url: &str) -> Result<String, Error> {
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(url)?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("asp-v1"));
    let tcp = TcpStream::connect(request.uri().authority().expect("host:port").as_str())?;
    let (mut ws, _) = tungstenite::client(request, tcp)?;
    let mut session = Session::client(SessionConfig::default(), Instant::now());
    let mut heard = String::new();
    drive(&mut ws, &mut session, |session, event| {
        match event {
            Event::Connected { cid, .. } => {
                println!("connected as {cid}");
                let invoke = Invoke::new("shout", Value::from("agents stream tokens"));
                session.invoke(Instant::now(), invoke).is_ok()
            }
            Event::Chunk { id, data } => {
                heard.push_str(&String::from_utf8_lossy(&data));
                session.grant(id, data.len()); // read: give the credit back
                true
            }
            Event::Completed { result, metrics, .. } => {
                println!("streamed {heard:?}; result {result} in {} µs", metrics.wall_us);
                session.close(ErrorCode::NO_ERROR, "done");
                true
            }
            Event::Failed { error, .. } => panic!("invocation failed: {error}"),
            _ => true,
        }
    })?;
    Ok(heard)
}

fn main() -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("ws://{}/v1/agent-socket", listener.local_addr()?);
    let server = std::thread::spawn(move || serve_one(listener));
    let heard = client(&url)?;
    server.join().expect("server thread")?;
    assert_eq!(heard.trim(), "AGENTS STREAM TOKENS");
    Ok(())
}

/// Randomness for connection ids and resume tickets from std's randomly
/// seeded hasher. An example only: a real server uses the operating
/// system's CSPRNG (`asp_driver::OsEntropy`).
#[derive(Default)]
struct StdEntropy;

impl asp_proto::Entropy for StdEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        use std::hash::{BuildHasher, Hasher};
        for chunk in buf.chunks_mut(8) {
            let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
            chunk.copy_from_slice(&random.to_le_bytes()[..chunk.len()]);
        }
    }
}
