//! ASP on a route of an existing axum application, beside its HTTP routes:
//! the application does the upgrade, a [`Service`] serves
//! the WebSocket. (Feature `axum`, on by default.)
//!
//! ```no_run
//! use asp_tokio::{ServerBuilder, ToolContext, ToolError};
//! use asp_tokio::proto::{ToolSpec, Value};
//! use axum::routing::get;
//!
//! # async fn run() -> std::io::Result<()> {
//! let service = ServerBuilder::new("127.0.0.1:0".parse().unwrap())
//!     .tool(ToolSpec::named("echo"), |_ctx: ToolContext, args: Value| async move { Ok::<_, ToolError>(args) })
//!     .into_service();
//! let app = axum::Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .route("/v1/agent-socket", asp_tokio::axum::route(service));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use asp_driver::tungstenite::{self, Message};
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use futures::{Sink, Stream};

use crate::{Service, SUBPROTOCOL};

/// A `GET` route that upgrades to ASP/1 and serves the connection on
/// `service`. An upgrade without the `asp-v1` subprotocol is refused with
/// 400 naming it (SPEC.md §2); `Authorization: Bearer` reaches the auth
/// hook as the token; with [`ServerBuilder::pka_key`](crate::ServerBuilder::pka_key)
/// the `101` carries the AID PKA proof a client asks for (SPEC.md §16.1).
/// TLS, upgrade timeouts and `Origin` checks are the application's here
/// (the builder's `allowed_origins` and timeouts apply to its own
/// listener): add them as the application's layers.
pub fn route<S: Clone + Send + Sync + 'static>(service: Service) -> MethodRouter<S> {
    get(move |upgrade: WebSocketUpgrade, uri: Uri, headers: HeaderMap| {
        let service = service.clone();
        async move {
            let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
            let proof = service.pka_headers(&path, &headers);
            let mut response = upgrade_to_asp(upgrade, &headers, service);
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                response.headers_mut().extend(proof);
            }
            response
        }
    })
}

/// The handler behind [`route`], for an application that routes itself:
/// answers the upgrade and serves the connection in the background.
pub fn upgrade_to_asp(upgrade: WebSocketUpgrade, headers: &HeaderMap, service: Service) -> Response {
    if !asp_driver::net::offers_subprotocol(headers) {
        let body = format!("ASP/1 needs the {SUBPROTOCOL} subprotocol (Sec-WebSocket-Protocol: {SUBPROTOCOL})\n");
        return (StatusCode::BAD_REQUEST, body).into_response();
    }
    let token = asp_driver::net::bearer_token(headers);
    upgrade
        .protocols([SUBPROTOCOL])
        // The session bounds frames itself (SPEC.md §12); no compression (§2).
        .max_message_size(64 << 20)
        .on_upgrade(move |socket| async move { service.serve_transport(AxumSocket(socket), token).await })
}

/// axum's WebSocket as the driver's transport.
struct AxumSocket(WebSocket);

fn io_error(e: axum::Error) -> tungstenite::Error {
    tungstenite::Error::Io(std::io::Error::other(e))
}

impl Stream for AxumSocket {
    type Item = Result<Message, tungstenite::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0).poll_next(cx).map(|m| {
            m.map(|m| {
                m.map(|m| match m {
                    ws::Message::Binary(b) => Message::Binary(b),
                    ws::Message::Text(t) => Message::Text(t.as_str().into()),
                    ws::Message::Ping(b) => Message::Ping(b),
                    ws::Message::Pong(b) => Message::Pong(b),
                    ws::Message::Close(_) => Message::Close(None),
                })
                .map_err(io_error)
            })
        })
    }
}

impl Sink<Message> for AxumSocket {
    type Error = tungstenite::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0).poll_ready(cx).map_err(io_error)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        let message = match item {
            Message::Binary(b) => ws::Message::Binary(b),
            Message::Text(t) => ws::Message::Text(t.as_str().into()),
            Message::Ping(b) => ws::Message::Ping(b),
            Message::Pong(b) => ws::Message::Pong(b),
            Message::Close(frame) => ws::Message::Close(
                frame.map(|f| ws::CloseFrame { code: f.code.into(), reason: f.reason.as_str().into() }),
            ),
            Message::Frame(_) => return Ok(()),
        };
        Pin::new(&mut self.0).start_send(message).map_err(io_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(io_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0).poll_close(cx).map_err(io_error)
    }
}
