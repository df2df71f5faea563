//! The management API's HTTP server (hyper). The core decides every answer;
//! this only turns HTTP into [`ManagementRequest`]s and back, and, on a node
//! of a cluster, asks the node that holds a connection this one does not,
//! and every node for a broadcast push.

use std::convert::Infallible;

use std::sync::Arc;

use asp_relay_proto::{management_authorized, ManagementRequest, ManagementResponse};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::cluster::Cluster;
use crate::shards::Shards;

/// Largest request body (frames pushed to a client).
const MAX_BODY: usize = 1 << 20;

/// How long a management client may take to send its request head.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the management server needs.
pub(crate) struct Served {
    pub(crate) shards: Arc<Shards>,
    pub(crate) secret: Option<String>,
    pub(crate) cluster: Option<Arc<Cluster>>,
    pub(crate) metrics: Option<crate::MetricsRender>,
}

pub(crate) async fn serve(listener: TcpListener, served: Served) {
    let served = Arc::new(served);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let served = served.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(request, served.clone()));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn handle(request: Request<Incoming>, served: Arc<Served>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Served { shards, secret, cluster, metrics } = &*served;
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // Probes for load balancers and orchestrators, and the metrics: no
    // secret (the listener is private), no body.
    if method == "GET" && (path == "/healthz" || path == "/readyz") {
        return Ok(probe(&path, shards, cluster.as_deref()).await);
    }
    if let (true, Some(render)) = (method == "GET" && path == "/metrics", metrics) {
        let mut response = Response::new(Full::new(Bytes::from(render())));
        let text = header::HeaderValue::from_static("text/plain; version=0.0.4");
        response.headers_mut().insert(header::CONTENT_TYPE, text);
        return Ok(response);
    }
    // The secret first: an unauthenticated request's body is never read.
    if !management_authorized(secret.as_deref(), authorization.as_deref()) {
        let body = r#"{"error":"a valid `Authorization: Bearer <management secret>` is required"}"#;
        return Ok(json(StatusCode::UNAUTHORIZED, body.into()));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(json(StatusCode::PAYLOAD_TOO_LARGE, r#"{"error":"body over 1 MiB"}"#.into())),
    };
    let request = ManagementRequest { method, path, authorization, body };
    let Some(mut response) = shards.manage(request.clone()).await else {
        return Ok(json(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"the relay is stopping"}"#.into()));
    };
    if let Some(cluster) = cluster {
        response = across_cluster(cluster, &request, response).await;
    }
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(json(status, response.body))
}

/// On a node of a cluster: a connection this node does not hold is asked
/// of its owner; a broadcast push also goes to every other node, and the
/// answer counts the connections of the whole cluster.
async fn across_cluster(
    cluster: &Cluster,
    request: &ManagementRequest,
    local: ManagementResponse,
) -> ManagementResponse {
    cluster.record_push(request, &local).await;
    if local.status == 404 {
        if let Some(cid) =
            request.path.strip_prefix("/v1/connections/").map(|rest| rest.split('/').next().unwrap_or(rest))
        {
            return cluster.forward(cid, request).await.unwrap_or(local);
        }
    }
    if request.path == "/v1/frames" && local.status == 202 {
        let mut total: serde_json::Value = serde_json::from_slice(&local.body).unwrap_or_default();
        return match cluster.broadcast(request).await {
            Ok(replies) => {
                let count = |body: &[u8]| {
                    serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| v["connections"].as_u64())
                };
                let elsewhere: u64 = replies.iter().filter_map(|r| count(&r.body)).sum();
                let connections = total["connections"].as_u64().unwrap_or(0) + elsewhere;
                total["connections"] = connections.into();
                total["nodes"] = (replies.len() + 1).into();
                ManagementResponse { status: 202, body: total.to_string().into() }
            }
            Err(e) => ManagementResponse {
                status: 503,
                body: serde_json::json!({ "error": format!("pushed on this node only: {e}") }).to_string().into(),
            },
        };
    }
    local
}

/// `/healthz`: the process serves HTTP. `/readyz`: it takes new clients
/// (not draining) and, on a cluster node, its store answers.
async fn probe(path: &str, shards: &Shards, cluster: Option<&Cluster>) -> Response<Full<Bytes>> {
    if path == "/healthz" {
        return json(StatusCode::OK, r#"{"status":"ok"}"#.into());
    }
    let not_ready = if shards.is_draining() {
        Some("draining".to_owned())
    } else if let Some(cluster) = cluster {
        cluster.store_reachable().await.err().map(|e| e.to_string())
    } else {
        None
    };
    match not_ready {
        None => json(StatusCode::OK, r#"{"ready":true}"#.into()),
        Some(reason) => {
            let body = serde_json::json!({ "ready": false, "reason": reason }).to_string();
            json(StatusCode::SERVICE_UNAVAILABLE, body.into())
        }
    }
}

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    }
    response
}
