//! An ASP relay function in Rust (hyper): what `asp-relay` calls for each
//! INVOKE (SPEC.md §15.2). The benchmark and the tests run it in-process.
//!
//! Tools: `echo` (the arguments back as JSON), `stream` (`{"chunks", "size",
//! "tag"}`: that many chunks, each its own HTTP chunk, written only as fast
//! as the relay reads; bytes written are counted under `tag`), `frames` (frames mode: progress, output and a result),
//! `stream_frames` (`{"chunks", "size", "batch"}`: frames mode, `batch`
//! STREAM frames per HTTP chunk, so small tokens stream without one HTTP
//! chunk each), `count` (a counter in the connection's state), `sleep`
//! (`{"ms"}`: answers after that long).
//!
//! ```text
//! cargo run -p asp-relay --example function -- 8080
//! cargo run -p asp-relay -- --function http://127.0.0.1:8080 --self-signed relay.pem
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// Bytes the `stream` tool has handed to hyper so far, per `tag`: tests
/// read it to see backpressure reach the function.
static STREAMED: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// Bytes the `stream` calls tagged `tag` have written so far.
pub fn streamed_bytes(tag: &str) -> u64 {
    STREAMED.lock().expect("lock").as_ref().and_then(|m| m.get(tag).copied()).unwrap_or(0)
}

type Body = BoxBody<Bytes, Infallible>;

/// Serves the function on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service_fn(handle)).await;
        });
    }
}

async fn handle(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if request.uri().path() != "/invoke" {
        // `/connect` and `/disconnect` (when the relay makes them): nothing to do.
        return Ok(text(StatusCode::OK, ""));
    }
    let Ok(body) = request.into_body().collect().await else {
        return Ok(text(StatusCode::BAD_REQUEST, "unreadable body"));
    };
    let Ok(call) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
        return Ok(text(StatusCode::BAD_REQUEST, "the body is not JSON"));
    };
    let args = &call["args"];
    Ok(match call["tool"].as_str().unwrap_or_default() {
        "echo" => text(StatusCode::OK, args.to_string()),
        "stream" => stream(
            args["chunks"].as_u64().unwrap_or(10),
            args["size"].as_u64().unwrap_or(32) as usize,
            args["tag"].as_str().unwrap_or_default().to_owned(),
        ),
        "frames" => frames(call["request_id"].as_u64().unwrap_or(0) as u16),
        "stream_frames" => stream_frames(
            call["request_id"].as_u64().unwrap_or(0) as u16,
            args["chunks"].as_u64().unwrap_or(10),
            args["size"].as_u64().unwrap_or(32) as usize,
            args["batch"].as_u64().unwrap_or(256),
        ),
        "count" => count(call["state"].as_str()),
        "sleep" => {
            let ms = args["ms"].as_u64().unwrap_or(100);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            text(StatusCode::OK, ms.to_string())
        }
        other => text(StatusCode::NOT_FOUND, format!("no tool {other}")),
    })
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
}

/// `chunks` chunks of `size` bytes. The channel holds one chunk: the
/// producer waits whenever hyper (and so the relay) is not reading.
fn stream(chunks: u64, size: usize, tag: String) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'x'; size]);
        for _ in 0..chunks {
            if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                return; // the relay aborted the call
            }
            *STREAMED.lock().expect("lock").get_or_insert_with(HashMap::new).entry(tag.clone()).or_default() +=
                size as u64;
        }
    });
    let body = StreamBody::new(tokio_stream(rx));
    Response::new(BodyExt::boxed(body))
}

/// Frames mode for many small chunks: `batch` STREAM frames per HTTP chunk,
/// then COMPLETE.
fn stream_frames(request_id: u16, chunks: u64, size: usize, batch: u64) -> Response<Body> {
    use asp_relay::proto::{Complete, Frame as AspFrame, Metrics, RequestId, Value as V};
    let id = RequestId(request_id);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'x'; size]);
        let mut sent = 0;
        while sent < chunks {
            let n = batch.max(1).min(chunks - sent);
            let mut body = BytesMut::with_capacity(n as usize * (size + 8));
            for _ in 0..n {
                AspFrame::Stream(id, chunk.clone()).encode(&mut body).expect("valid frame");
            }
            if tx.send(Ok(Frame::data(body.freeze()))).await.is_err() {
                return;
            }
            sent += n;
        }
        let mut end = BytesMut::new();
        let complete = Complete { result: V::Nil, metrics: Metrics::default() };
        AspFrame::Complete(id, complete).encode(&mut end).expect("valid frame");
        let _ = tx.send(Ok(Frame::data(end.freeze()))).await;
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(tokio_stream(rx))));
    response.headers_mut().insert("content-type", "application/vnd.asp.frames".parse().expect("header"));
    response
}

fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Frames mode: the function writes ASP/1 frames itself, here with
/// asp-proto's encoder.
fn frames(request_id: u16) -> Response<Body> {
    use asp_relay::proto::{Complete, Frame as AspFrame, Metrics, Progress, RequestId, Value as V};
    let id = RequestId(request_id);
    let mut body = BytesMut::new();
    let progress = Progress { progress: 1.0, total: Some(2.0), message: Some("thinking".into()) };
    let result = V::Map(vec![(V::from("answer"), V::from(42))]);
    for frame in [
        AspFrame::Progress(id, progress),
        AspFrame::Stream(id, Bytes::from_static(b"partial answer")),
        AspFrame::Complete(id, Complete { result, metrics: Metrics { wall_us: 0, cpu_us: Some(7) } }),
    ] {
        frame.encode(&mut body).expect("valid frames");
    }
    let mut response = text(StatusCode::OK, body.freeze());
    response.headers_mut().insert("content-type", "application/vnd.asp.frames".parse().expect("header"));
    response
}

/// A counter in the connection's state: the relay sends the state with each
/// call and keeps what `X-Asp-State` returns.
fn count(state: Option<&str>) -> Response<Body> {
    let previous = state
        .and_then(|s| asp_relay::relay_proto::decode_state(s).ok())
        .and_then(|s| String::from_utf8(s).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let next = previous + 1;
    let mut response = text(StatusCode::OK, next.to_string());
    let state = asp_relay::relay_proto::encode_state(next.to_string().as_bytes());
    response.headers_mut().insert("x-asp-state", state.parse().expect("base64url is a valid header"));
    response
}

#[allow(dead_code)] // the tests include this file as a module and use `serve`
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening http://{}", listener.local_addr()?);
    serve(listener).await;
    Ok(())
}
