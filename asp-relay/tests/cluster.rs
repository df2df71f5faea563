//! A relay cluster end to end (SPEC.md §15.4): `asp-relay --cluster`
//! processes sharing a real `redis-server` on loopback, with the Python
//! example function and the Rust one.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use asp_relay::proto::{ErrorCode, Frame, ToolDef, ToolOp, ToolSpec, Value};
use asp_scenarios::{within, Proxy, RedisServer, Tls};
use asp_tokio::{Client, ClientBuilder};
use futures::StreamExt;

mod common;

use common::{http, rust_function, PyFunction};

const SECRET: &str = "cluster-management-secret";

/// One `asp-relay --cluster` process; killed on drop.
struct Node {
    child: Child,
    url: String,
    management: String,
    id: String,
    cert: Vec<u8>,
    dir: PathBuf,
}

impl Node {
    /// A node calling `function`, sharing `redis`, with its management API
    /// on `management` (any free port when `None`), serving `tls`'s
    /// certificate (the same on every node, as behind one load balancer).
    fn start(function: &str, redis: &str, management: Option<SocketAddr>, tls: &Tls) -> Node {
        let dir = std::env::temp_dir().join(format!("asp-cluster-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &tls.cert_pem).unwrap();
        std::fs::write(&key, &tls.key_pem).unwrap();
        let management = management.map_or("127.0.0.1:0".to_owned(), |a| a.to_string());
        let mut child = Command::new(env!("CARGO_BIN_EXE_asp-relay"))
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .args(["--function", function, "--cluster", redis, "--management-listen", &management])
            .env("ASP_RELAY_MANAGEMENT_SECRET", SECRET)
            // Clients acknowledge what they received with every PONG: often,
            // so that delivered pushes leave the store within a test.
            .env("ASP_RELAY_HEARTBEAT_MS", "200")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map(|l| l.unwrap());
        let mut field = |name: &str| {
            let line = lines.next().unwrap_or_else(|| panic!("the relay printed no `{name}` line"));
            line.strip_prefix(&format!("{name} "))
                .unwrap_or_else(|| panic!("expected `{name} …`, got {line}"))
                .to_owned()
        };
        let (url, management, _function, id) = (field("relay"), field("management"), field("function"), field("node"));
        Node { child, url, management, id, cert: tls.cert_pem.as_bytes().to_vec(), dir }
    }

    /// Where clients connect.
    fn addr(&self) -> SocketAddr {
        self.url.trim_start_matches("wss://").split('/').next().unwrap().parse().unwrap()
    }

    async fn client(&self) -> Client {
        ClientBuilder::new(&self.url).trust_pem(&self.cert).unwrap().connect().await.unwrap()
    }

    fn connection(&self, cid: &str) -> String {
        format!("{}/v1/connections/{cid}", self.management)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

fn args(json: serde_json::Value) -> Value {
    serde_json::from_value(json).unwrap()
}

/// The function's `echo` answers its arguments as JSON output.
async fn echo_works(client: &Client) {
    let output = within(10, async {
        let mut inv = client.invoke("echo", Value::from("hi")).await.unwrap();
        let mut output = Vec::new();
        while let Some(chunk) = inv.next().await {
            output.extend_from_slice(&chunk);
        }
        inv.result().await.unwrap();
        output
    })
    .await;
    assert_eq!(output, b"\"hi\"");
}

fn tool_def(name: &str) -> Vec<u8> {
    let def = ToolDef { op: ToolOp::Add, tools: vec![ToolSpec::named(name)] };
    Frame::ToolDef(def).to_bytes().unwrap().to_vec()
}

/// Waits until `client` sees a tool named `name`.
async fn sees_tool(client: &Client, name: &str) {
    within(10, async {
        while !client.peer_tools().iter().any(|t| t.name == name) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_of_any_node_reaches_every_connection() {
    let redis = RedisServer::start();
    // The function pushes through node B's management API.
    let management_b: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let function = PyFunction::start(&format!("http://{management_b}"), SECRET);
    let tls = Tls::new();
    let a = Node::start(&function.url, &redis.url(), None, &tls);
    let b = Node::start(&function.url, &redis.url(), Some(management_b), &tls);
    let c = Node::start(&function.url, &redis.url(), None, &tls);
    assert!(a.id != b.id && b.id != c.id && a.id.starts_with("n-"), "one id per node");

    // A client of node A calls a tool whose function, after the call, pushes
    // a TOOL_DEF through node B: B forwards it to A.
    let client = a.client().await;
    let cid = client.connection_id().unwrap();
    let mut inv = client.invoke("push_tool", args(serde_json::json!({"name": "late_tool"}))).await.unwrap();
    while within(10, inv.next()).await.is_some() {}
    within(10, inv.result()).await.unwrap();
    sees_tool(&client, "late_tool").await;

    // Every node answers for it.
    let http = http();
    for node in [&a, &b, &c] {
        let info = http.get(node.connection(&cid)).bearer_auth(SECRET).send().await.unwrap();
        assert_eq!(info.status(), 200, "GET through {}", node.id);
        let info: serde_json::Value = info.json().await.unwrap();
        assert_eq!(info["connection_id"], cid.as_str());
        assert_eq!(info["tools"], serde_json::json!(["late_tool"]));
        // Unknown connections are 404 everywhere, a wrong secret 401.
        assert_eq!(status(http.get(node.connection("c-0000000000000000")).bearer_auth(SECRET)).await, 404);
        assert_eq!(status(http.get(node.connection(&cid)).bearer_auth("wrong")).await, 401);
        assert_eq!(status(http.post(format!("{}/v1/frames", node.management)).bearer_auth("wrong")).await, 401);
    }
    let garbage = http.post(format!("{}/frames", c.connection(&cid))).bearer_auth(SECRET).body("no frames");
    assert_eq!(status(garbage).await, 400, "the owner's answer comes back");

    // A broadcast through node C reaches the clients of every node.
    let (client_b, client_c) = (b.client().await, c.client().await);
    let pushed = http
        .post(format!("{}/v1/frames", c.management))
        .bearer_auth(SECRET)
        .body(tool_def("everywhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 202);
    let counts: serde_json::Value = pushed.json().await.unwrap();
    assert_eq!((counts["connections"].as_u64(), counts["nodes"].as_u64()), (Some(3), Some(3)), "{counts}");
    for client in [&client, &client_b, &client_c] {
        sees_tool(client, "everywhere").await;
    }
    let goaway_only = http
        .post(format!("{}/v1/frames", a.management))
        .bearer_auth(SECRET)
        .body(Frame::GoAway(Default::default()).to_bytes().unwrap().to_vec());
    assert_eq!(status(goaway_only).await, 400, "only TOOL_DEF is broadcast");

    // DELETE through node B closes the client of node A.
    assert_eq!(status(http.delete(b.connection(&cid)).bearer_auth(SECRET)).await, 204);
    let reason = within(10, client.closed()).await;
    assert_eq!(reason.code, ErrorCode::NO_ERROR);
    echo_works(&client_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_costs_only_cross_node_requests_and_nodes_register_again() {
    let mut redis = RedisServer::start();
    let function = rust_function().await;
    let tls = Tls::new();
    let a = Node::start(&function, &redis.url(), None, &tls);
    let b = Node::start(&function, &redis.url(), None, &tls);
    let client = a.client().await;
    let cid = client.connection_id().unwrap();
    let http = http();
    known_to(&http, &b, &cid).await;
    // Load throughout: clients of both nodes calling all the time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for node in [&a, &b, &a, &b] {
        let (client, stop) = (node.client().await, stop.clone());
        load.push(tokio::spawn(async move {
            let mut calls = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                echo_works(&client).await;
                calls += 1;
            }
            (calls, client.connection_id())
        }));
    }

    let probe = |node: &Node, path: &str| http.get(format!("{}{path}", node.management));
    assert_eq!(status(probe(&b, "/readyz")).await, 200, "ready: accepting, store reachable");

    redis.kill();
    assert_eq!(status(probe(&b, "/healthz")).await, 200, "alive without its store");
    let not_ready = probe(&b, "/readyz").send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
    let reason = not_ready.json::<serde_json::Value>().await.unwrap()["reason"].to_string();
    assert!(reason.contains("cluster store"), "{reason}");
    echo_works(&client).await;
    let other = b.client().await;
    echo_works(&other).await;
    let answer = http.get(b.connection(&cid)).bearer_auth(SECRET).send().await.unwrap();
    assert_eq!(answer.status(), 503, "the store is down");
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("cluster store"), "{body}");
    assert_eq!(status(http.get(a.connection(&cid)).bearer_auth(SECRET)).await, 200, "the owner still answers");

    // Back, empty: node A registers its connections again by itself.
    redis.restart();
    within(15, async {
        while status(http.get(b.connection(&cid)).bearer_auth(SECRET)).await != 200 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(redis.command(&format!("GET asp:conn:{cid}")).contains(&a.id));
    assert_eq!(status(probe(&b, "/readyz")).await, 200);
    echo_works(&client).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in load {
        let (calls, cid) = within(20, task).await.unwrap();
        assert!(calls > 10 && cid.is_some(), "every loaded client kept its session and kept calling: {calls} calls");
    }
}

#[test]
fn a_node_without_its_store_exits_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}");
    let out = Command::new(env!("CARGO_BIN_EXE_asp-relay"))
        .args(["--listen", "127.0.0.1:0", "--plaintext", "--function", "http://127.0.0.1:9", "--cluster", &url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains(&url), "the error names the store: {stderr}");
}

/// Waits until `node` knows `cid`: the owner writes its directory entry
/// after the handshake, not before (SPEC §15.3).
async fn known_to(http: &reqwest::Client, node: &Node, cid: &str) {
    within(5, async {
        while status(http.get(node.connection(cid)).bearer_auth(SECRET)).await != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Output and outcome of one invocation.
async fn run(client: &Client, tool: &str, args: Value) -> (Vec<u8>, Result<asp_driver::Completion, ErrorCode>) {
    within(20, async {
        let mut inv = client.invoke(tool, args).await.unwrap();
        let mut output = Vec::new();
        while let Some(chunk) = inv.next().await {
            output.extend_from_slice(&chunk);
        }
        (output, inv.result().await.map_err(|e| e.code))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_node_resumes_on_another_with_its_state_and_tools() {
    let redis = RedisServer::start();
    let function = rust_function().await;
    let tls = Tls::new();
    let a = Node::start(&function, &redis.url(), None, &tls);
    let b = Node::start(&function, &redis.url(), None, &tls);
    // The load balancer: node A until it dies, then node B.
    let balancer = Proxy::start(a.addr());
    let url = format!("wss://{}/v1/agent-socket", balancer.addr);
    let client = ClientBuilder::new(&url).trust_pem(tls.cert_pem.as_bytes()).unwrap().connect().await.unwrap();
    let cid = client.connection_id().unwrap();
    assert_eq!(run(&client, "count", Value::Nil).await.0, b"1");
    assert_eq!(run(&client, "count", Value::Nil).await.0, b"2");
    let http = http();
    known_to(&http, &b, &cid).await;
    let pushed = http.post(format!("{}/frames", b.connection(&cid))).bearer_auth(SECRET).body(tool_def("pushed"));
    assert_eq!(status(pushed).await, 202);
    sees_tool(&client, "pushed").await;
    // A call in flight when A dies: a stream the client stops reading.
    let mut in_flight = client
        .invoke("stream", args(serde_json::json!({"chunks": 1_000_000, "size": 1024, "tag": "killed"})))
        .await
        .unwrap();
    within(10, in_flight.next()).await.unwrap();

    // Nowhere to go for a while: the client stays away.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    balancer.retarget(closed);
    let mut a = a;
    a.child.kill().unwrap(); // SIGKILL: no GOAWAY, nothing saved on the way out
    a.child.wait().unwrap();
    balancer.cut();
    // Pushes made meanwhile wait in the store, in order: the second undoes
    // half of the first.
    let add = Frame::ToolDef(ToolDef { op: ToolOp::Add, tools: vec![ToolSpec::named("meanwhile")] });
    let temporary = Frame::ToolDef(ToolDef { op: ToolOp::Add, tools: vec![ToolSpec::named("temporary")] });
    let remove = Frame::ToolDef(ToolDef { op: ToolOp::Remove, tools: vec![ToolSpec::named("temporary")] });
    let bodies =
        [[add.to_bytes().unwrap(), temporary.to_bytes().unwrap()].concat(), remove.to_bytes().unwrap().to_vec()];
    for body in bodies {
        let queued = http.post(format!("{}/frames", b.connection(&cid))).bearer_auth(SECRET).body(body).send().await;
        let queued = queued.unwrap();
        assert_eq!(queued.status(), 202, "a push for a connection whose node died is kept");
        assert_eq!(queued.json::<serde_json::Value>().await.unwrap()["queued"], true);
    }
    balancer.retarget(b.addr());

    // The client resumes on B by itself: same session, the call is lost.
    let lost = within(20, async {
        while in_flight.next().await.is_some() {}
        in_flight.result().await
    })
    .await;
    assert_eq!(lost.map_err(|e| e.code).err(), Some(ErrorCode::NODE_LOST));
    assert!(ErrorCode::NODE_LOST.is_retryable());
    assert_eq!(client.connection_id().as_deref(), Some(cid.as_str()), "the same session");
    assert_eq!(run(&client, "count", Value::Nil).await.0, b"3", "the function's state survived");
    assert!(client.peer_tools().iter().any(|t| t.name == "pushed"), "the tool set survived");
    sees_tool(&client, "meanwhile").await;
    assert!(!client.peer_tools().iter().any(|t| t.name == "temporary"), "pushes arrive in order");
    within(10, async {
        while !redis.command(&format!("EXISTS asp:pushes:{cid}")).contains(":0") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await; // acknowledged by the client, then dropped
            // B holds it now, for the directory too.
    let info: serde_json::Value =
        http.get(b.connection(&cid)).bearer_auth(SECRET).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["connection_id"], cid.as_str());
    assert!(redis.command(&format!("GET asp:conn:{cid}")).contains(&b.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_finishes_every_call_before_its_clients_move() {
    const CLIENTS: usize = 100;
    let redis = RedisServer::start();
    let function = rust_function().await;
    let tls = Tls::new();
    let a = Node::start(&function, &redis.url(), None, &tls);
    let mut c = Node::start(&function, &redis.url(), None, &tls);
    let balancer = Proxy::start(c.addr());
    let url = format!("wss://{}/v1/agent-socket", balancer.addr);
    let connect = || async { ClientBuilder::new(&url).trust_pem(tls.cert_pem.as_bytes()).unwrap().connect().await };
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(connect().await.unwrap());
    }
    // Every client has a call running on node C when it is told to stop.
    let mut calls = Vec::new();
    for client in &clients {
        calls.push(client.invoke("sleep", args(serde_json::json!({"ms": 1500}))).await.unwrap());
    }
    // Each call has reached node C (an INVOKE still on its way when the
    // drain starts would be refused with the retryable GOING_AWAY).
    let http = http();
    for client in &clients {
        let info = c.connection(&client.connection_id().unwrap());
        within(10, async {
            loop {
                let info: serde_json::Value =
                    http.get(&info).bearer_auth(SECRET).send().await.unwrap().json().await.unwrap();
                if info["calls"] == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
    balancer.retarget(a.addr()); // new connections go elsewhere
    let stopped = Command::new("kill").args(["-TERM", &c.child.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    for mut call in calls {
        let mut output = Vec::new();
        while let Some(chunk) = within(20, call.next()).await {
            output.extend_from_slice(&chunk);
        }
        let result = within(20, call.result()).await;
        assert!(result.is_ok(), "no call fails: {result:?}");
        assert_eq!(output, b"1500");
    }
    for client in &clients {
        let reason = within(20, client.closed()).await;
        assert_eq!(reason.code, ErrorCode::NO_ERROR, "closed cleanly after the drain");
    }
    let exit = within(20, async {
        loop {
            if let Some(status) = c.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(exit.success(), "node C exits 0 once drained: {exit}");
    // The clients connect again, to the rest of the cluster.
    for _ in 0..CLIENTS {
        echo_works(&connect().await.unwrap()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_the_dead_node_had_not_delivered_arrives_from_the_next() {
    let redis = RedisServer::start();
    let function = rust_function().await;
    let tls = Tls::new();
    let mut a = Node::start(&function, &redis.url(), None, &tls);
    let b = Node::start(&function, &redis.url(), None, &tls);
    let balancer = Proxy::start(a.addr());
    let url = format!("wss://{}/v1/agent-socket", balancer.addr);
    let client = ClientBuilder::new(&url).trust_pem(tls.cert_pem.as_bytes()).unwrap().connect().await.unwrap();
    let cid = client.connection_id().unwrap();
    let http = http();
    // Delivered and acknowledged: it leaves the store.
    assert_eq!(
        status(http.post(format!("{}/frames", a.connection(&cid))).bearer_auth(SECRET).body(tool_def("first"))).await,
        202
    );
    sees_tool(&client, "first").await;
    within(10, async {
        while !redis.command(&format!("EXISTS asp:pushes:{cid}")).contains(":0") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // The network goes silent; node A accepts a push it cannot deliver,
    // then dies.
    balancer.freeze(true);
    let pushed = http.post(format!("{}/frames", b.connection(&cid))).bearer_auth(SECRET).body(tool_def("second"));
    assert_eq!(status(pushed).await, 202, "accepted by node A, through node B");
    assert!(redis.command(&format!("LLEN asp:pushes:{cid}")).contains(":1"), "kept until acknowledged");
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    balancer.retarget(b.addr());
    balancer.cut();
    balancer.freeze(false);
    // The client resumes on node B, which sends the push again, and drops
    // it from the store once the client has acknowledged it.
    sees_tool(&client, "second").await;
    assert_eq!(client.connection_id().as_deref(), Some(cid.as_str()));
    assert!(client.peer_tools().iter().any(|t| t.name == "first"));
    within(10, async {
        while !redis.command(&format!("EXISTS asp:pushes:{cid}")).contains(":0") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}
