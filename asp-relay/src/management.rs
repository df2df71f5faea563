//! The management API's HTTP server (hyper). The core decides every answer;
//! this only turns HTTP into [`ManagementRequest`]s and back.

use std::convert::Infallible;

use asp_relay_proto::ManagementRequest;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::messages::Input;

/// Largest request body (frames pushed to a client).
const MAX_BODY: usize = 1 << 20;

pub(crate) async fn serve(listener: TcpListener, core: mpsc::Sender<Input>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let core = core.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(request, core.clone()));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

async fn handle(request: Request<Incoming>, core: mpsc::Sender<Input>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
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
