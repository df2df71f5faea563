//! The management API's HTTP server (hyper). The core decides every answer;
//! this only turns HTTP into [`ManagementRequest`]s and back.

use std::convert::Infallible;

use asp_relay_proto::{management_authorized, ManagementRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::messages::Input;

/// Largest request body (frames pushed to a client).
const MAX_BODY: usize = 1 << 20;

/// How long a management client may take to send its request head.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) async fn serve(listener: TcpListener, core: mpsc::Sender<Input>, secret: Option<String>) {
    let secret: std::sync::Arc<Option<String>> = std::sync::Arc::new(secret);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (core, secret) = (core.clone(), secret.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(request, core.clone(), secret.clone()));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    core: mpsc::Sender<Input>,
    secret: std::sync::Arc<Option<String>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // The secret first: an unauthenticated request's body is never read.
    if !management_authorized(secret.as_deref(), authorization.as_deref()) {
        let body = r#"{"error":"a valid `Authorization: Bearer <management secret>` is required"}"#;
        return Ok(json(StatusCode::UNAUTHORIZED, body.into()));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(json(StatusCode::PAYLOAD_TOO_LARGE, r#"{"error":"body over 1 MiB"}"#.into())),
    };
    let (reply, answer) = oneshot::channel();
    let request = ManagementRequest { method, path, authorization, body };
    if core.send(Input::Manage(request, reply)).await.is_err() {
        return Ok(json(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"the relay is stopping"}"#.into()));
    }
    Ok(match answer.await {
        Ok(response) => {
            let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json(status, response.body)
        }
        Err(_) => json(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"the relay is stopping"}"#.into()),
    })
}

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    }
    response
}
