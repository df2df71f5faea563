//! One task per function call: the HTTP request (reqwest, keep-alive pool),
//! then the response body handed to the core no faster than it returns
//! credit.

use std::error::Error as _;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use asp_relay_proto::{CallFailure, CallKind, FunctionCall, ResponseHead};
use tokio::sync::{mpsc, Semaphore};
use tracing::Instrument;

use crate::messages::Input;

/// How the relay reaches its function.
#[derive(Clone)]
pub(crate) struct FunctionClient {
    http: reqwest::Client,
    base: Arc<str>,
    body_window: usize,
}

/// Lifecycle response bodies are read (so the connection is reused) up to this.
const LIFECYCLE_BODY_LIMIT: usize = 64 * 1024;

impl FunctionClient {
    pub(crate) fn new(base: &str, extra_ca_pem: Option<&[u8]>, body_window: usize) -> io::Result<Self> {
        let tls = asp_driver::tls::client_config(extra_ca_pem)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(io::Error::other)?;
        Ok(FunctionClient { http, base: base.into(), body_window: body_window.max(1) })
    }

    pub(crate) fn body_window(&self) -> usize {
        self.body_window
    }
}

/// Runs one call and reports it to the core. Aborting the task drops the
/// request, which closes its connection: that is how the function learns
/// of an INTERRUPT.
pub(crate) async fn run(fc: FunctionClient, call: FunctionCall, credit: Arc<Semaphore>, core: mpsc::Sender<Input>) {
    let header = |name: &str| call.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let span = tracing::info_span!(
        "function_call",
        path = call.kind.path(),
        cid = header("x-asp-connection-id"),
        request = header("x-asp-request-id"),
        trace = header("traceparent"),
    );
    call_function(fc, call, credit, core).instrument(span).await
}

async fn call_function(fc: FunctionClient, call: FunctionCall, credit: Arc<Semaphore>, core: mpsc::Sender<Input>) {
    let id = call.call;
    let mut request = fc.http.post(format!("{}{}", fc.base, call.kind.path()));
    for (name, value) in &call.headers {
        request = request.header(*name, value.as_str());
    }
    let mut response = match request.body(call.body).send().await {
        Ok(response) => response,
        Err(e) => {
            let _ = core.send(Input::Failed(id, failure(&e, CallFailure::Unavailable))).await;
            return;
        }
    };
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let head = ResponseHead {
        status: response.status().as_u16(),
        content_type: header("content-type"),
        cpu_time: header("x-cpu-time"),
        state: header("x-asp-state"),
    };
    let success = response.status().is_success();
    if !success {
        tracing::warn!(status = head.status, "the function answered {}", response.status());
    }
    if core.send(Input::Head(id, head)).await.is_err() || (!success && call.kind == CallKind::Invoke) {
        // A failed status ends the invocation at the core, which aborts this task.
        return;
    }
    if call.kind != CallKind::Invoke {
        let mut read = 0;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            if read > LIFECYCLE_BODY_LIMIT {
                break;
            }
        }
        let _ = core.send(Input::End(id)).await;
        return;
    }
    loop {
        match response.chunk().await {
            Ok(Some(mut bytes)) => {
                while !bytes.is_empty() {
                    let piece = bytes.split_to(bytes.len().min(fc.body_window));
                    let permits = u32::try_from(piece.len()).expect("the body window fits u32");
                    match credit.acquire_many(permits).await {
                        Ok(permit) => permit.forget(),
                        Err(_) => return,
                    }
                    if core.send(Input::Chunk(id, piece)).await.is_err() {
                        return;
                    }
                }
            }
            Ok(None) => {
                let _ = core.send(Input::End(id)).await;
                return;
            }
            Err(e) => {
                let _ = core.send(Input::Failed(id, failure(&e, CallFailure::Truncated))).await;
                return;
            }
        }
    }
}

/// A timeout, or else `otherwise` (which depends on how far the call got).
/// The client is told only the failure's class; the detail goes to the log.
fn failure(error: &reqwest::Error, otherwise: fn(String) -> CallFailure) -> CallFailure {
    let detail = describe(error);
    tracing::warn!(error = %detail, "function call failed");
    if error.is_timeout() {
        CallFailure::Timeout(detail)
    } else {
        otherwise(detail)
    }
}

/// The error and its causes: reqwest's own message alone rarely says which
/// of refused, reset or cut short it was.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
