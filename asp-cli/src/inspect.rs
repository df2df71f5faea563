//! `asp inspect`: serves the ASP Inspector, a web page on the TypeScript
//! client (`clients/js`) and asp-proto compiled to WebAssembly, from assets
//! embedded in this binary.
//!
//! The page runs the protocol in the browser; this server only hands out
//! files and `/config.json` (the URL and token given on the command line).
//! The embedded copies in `asp-cli/inspector/` are written by
//! `scripts/build-web.sh`, and `scripts/test.sh` fails when they differ from
//! a fresh build.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One embedded file.
struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $mime:expr) => {
        Asset { path: $path, mime: $mime, body: include_bytes!(concat!("../inspector", $path)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("/index.html", "text/html; charset=utf-8"),
    asset!("/inspector.js", JS),
    asset!("/dist/index.js", JS),
    asset!("/dist/client.js", JS),
    asset!("/dist/core.js", JS),
    asset!("/dist/errors.js", JS),
    asset!("/dist/invocation.js", JS),
    asset!("/wasm/asp_wasm.js", JS),
    asset!("/wasm/asp_wasm_bg.wasm", "application/wasm"),
];

/// What `/config.json` tells the page.
#[derive(Clone)]
pub(crate) struct PageConfig {
    /// The server to fill in (and connect to at once).
    pub(crate) url: Option<String>,
    pub(crate) token: Option<String>,
}

/// Serves the inspector on `listen` until the process is stopped.
pub(crate) async fn run(listen: SocketAddr, config: PageConfig) -> Result<(), String> {
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("--listen {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if !addr.ip().is_loopback() {
        eprintln!("asp: warning: the inspector on {addr} is reachable from other machines, and so is its --token");
    }
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
    // The first stdout line is the page's address (scripts and tests read it).
    println!("asp inspect: open http://{host}:{}/", addr.port());
    let config_json = Bytes::from(
        serde_json::json!({ "url": config.url, "token": config.token, "autoConnect": config.url.is_some() })
            .to_string(),
    );
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait, and go on serving.
                eprintln!("asp: inspector: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let config_json = config_json.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(request, config_json.clone()));
            // A browser that goes away mid-request is nothing to report.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

async fn respond(request: Request<Incoming>, config_json: Bytes) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", Bytes::from_static(b"GET only\n")));
    }
    let path = match request.uri().path() {
        "/" => "/index.html",
        p => p,
    };
    if path == "/config.json" {
        return Ok(reply(StatusCode::OK, "application/json", config_json));
    }
    Ok(match ASSETS.iter().find(|a| a.path == path) {
        Some(asset) => reply(StatusCode::OK, asset.mime, Bytes::from_static(asset.body)),
        None => reply(StatusCode::NOT_FOUND, "text/plain", Bytes::from(format!("{path}: no such file\n"))),
    })
}

fn reply(status: StatusCode, mime: &str, body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, mime)
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(body))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        // Relative imports in the embedded JS must resolve to embedded files,
        // or the page fails in the browser with a 404.
        let import = relative_imports();
        let mut checked = 0;
        for asset in ASSETS.iter().filter(|a| a.mime == JS) {
            let text = std::str::from_utf8(asset.body).expect("UTF-8");
            for target in import(text) {
                let base = asset.path.rsplit_once('/').expect("absolute").0;
                let resolved = normalize(&format!("{base}/{target}"));
                assert!(
                    ASSETS.iter().any(|a| a.path == resolved),
                    "{} imports {target} ({resolved}), not embedded",
                    asset.path
                );
                checked += 1;
            }
        }
        // inspector.js → dist/index.js → client.js, core.js, … → wasm glue.
        assert!(checked >= 8, "only {checked} imports found: has the bundle's shape changed?");
    }

    /// Relative targets of `from "./x.js"` and `import("./x.js")`.
    fn relative_imports() -> impl Fn(&str) -> Vec<String> {
        |text: &str| {
            let mut out = Vec::new();
            for opener in ["from \"", "from '", "import(\"", "import('"] {
                for rest in text.split(opener).skip(1) {
                    let target = &rest[..rest.find(['"', '\'']).unwrap_or(0)];
                    if target.starts_with('.') {
                        out.push(target.to_owned());
                    }
                }
            }
            out
        }
    }

    fn normalize(path: &str) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        format!("/{}", parts.join("/"))
    }
}
