//! The relay as a cluster on Redis (SPEC.md §15.4): what the cluster costs
//! and how fast it heals. Two relays (in this process) share a real
//! `redis-server` started for the run.
//!
//! - management push latency, POST to the client seeing the tool, through
//!   the node that holds the connection and through another node;
//! - relay echo round trip with and without `--cluster`;
//! - Redis memory per connection (`INFO memory`, `used_memory`);
//! - 100 clients resuming on the other node after theirs stopped at once
//!   (its tasks aborted, as a crash would: no GOAWAY), each timed from the
//!   stop to its first completed call;
//! - calls/s with 100 concurrent clients on one relay with one core task
//!   and with two (`RelayBuilder::shards`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use asp_proto::{Frame, ToolDef, ToolOp, ToolSpec, Value};
use asp_relay::{RelayBuilder, RelayConfig, RelayHandle};
use asp_scenarios::{Proxy, RedisServer};
use asp_tokio::{Client, ClientBuilder};
use futures::StreamExt;

use crate::echo::{percentiles, Latency};
use crate::relay::RelayEcho;
use crate::{Tls, PAYLOAD};

const SECRET: &str = "bench-secret";

/// What the cluster rows report.
pub(crate) struct Figures {
    pub(crate) push_same_node: Latency,
    pub(crate) push_cross_node: Latency,
    pub(crate) echo_single: Latency,
    pub(crate) echo_cluster: Latency,
    pub(crate) redis_bytes_per_connection: f64,
    pub(crate) connections_measured: usize,
    pub(crate) resume_after_crash: Latency,
    pub(crate) concurrent_1_shard: Latency,
    pub(crate) concurrent_2_shards: Latency,
}

async fn node(tls: &Tls, function: &str, redis: Option<&str>) -> RelayHandle {
    sharded(tls, function, redis, 1).await
}

async fn sharded(tls: &Tls, function: &str, redis: Option<&str>, shards: usize) -> RelayHandle {
    let mut builder = RelayBuilder::new("127.0.0.1:0".parse().expect("address"), function)
        .shards(shards)
        .tls_pem(tls.cert_pem.as_bytes(), tls.key_pem.as_bytes())
        .expect("tls")
        .config(RelayConfig::default())
        .management("127.0.0.1:0".parse().expect("address"), SECRET);
    if let Some(url) = redis {
        builder = builder.cluster(url);
    }
    builder.bind().await.expect("relay").spawn()
}

async fn client(url: &str, tls: &Tls) -> Client {
    ClientBuilder::new(url).trust_pem(tls.cert_pem.as_bytes()).expect("tls").connect().await.expect("connect")
}

/// `calls` pushes (add, then remove, a tool) through `management`, each
/// timed until the client has seen it.
async fn pushes(client: &Client, management: &str, calls: usize) -> Latency {
    let http = reqwest::Client::new();
    let cid = client.connection_id().expect("connected");
    let url = format!("{management}/v1/connections/{cid}/frames");
    let mut changes = client.tool_changes();
    let mut samples = Vec::with_capacity(calls);
    let started = Instant::now();
    for i in 0..calls {
        let op = if i % 2 == 0 { ToolOp::Add } else { ToolOp::Remove };
        let frame = Frame::ToolDef(ToolDef { op, tools: vec![ToolSpec::named("bench_pushed")] });
        let t = Instant::now();
        let response = http.post(&url).bearer_auth(SECRET).body(frame.to_bytes().expect("frame")).send().await;
        assert_eq!(response.expect("push").status(), 202);
        changes.next().await.expect("the push arrived");
        samples.push(t.elapsed());
    }
    percentiles(samples, started.elapsed())
}

/// Bytes Redis uses, from `INFO memory`.
fn redis_used_memory(redis: &RedisServer) -> f64 {
    let info = redis.command("INFO memory");
    let line = info.lines().find(|l| l.starts_with("used_memory:")).expect("used_memory");
    line.trim_start_matches("used_memory:").trim().parse().expect("a number")
}

pub(crate) async fn run(tls: &Tls, calls: usize, warmup: usize) -> Figures {
    let redis = RedisServer::start();
    let function = crate::relay::function_url().await;
    // One core task each: the cluster's cost, not the shards' gain.
    let a = node(tls, &function, Some(&redis.url())).await;
    let b = node(tls, &function, Some(&redis.url())).await;
    let single = node(tls, &function, None).await;

    let on_a = client(a.url(), tls).await;
    let pushes_n = (calls / 10).max(100);
    let push_same_node = pushes(&on_a, &a.management_url().expect("management"), pushes_n).await;
    let push_cross_node = pushes(&on_a, &b.management_url().expect("management"), pushes_n).await;

    let echo_single = crate::echo::sequential(&RelayEcho::new(client(single.url(), tls).await), calls, warmup).await;
    let echo_cluster = crate::echo::sequential(&RelayEcho::new(on_a), calls, warmup).await;

    // Redis memory per connection: 1,000 sessions on node B.
    let before = redis_used_memory(&redis);
    const CONNECTIONS: usize = 1000;
    let mut held = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        held.push(client(b.url(), tls).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // the directory writes are asynchronous
    let redis_bytes_per_connection = (redis_used_memory(&redis) - before) / CONNECTIONS as f64;
    drop(held);

    // 100 clients of node A (through a proxy, the load balancer) resume on
    // node B after node A stops at once.
    let balancer = Proxy::start(a.local_addr());
    let url = format!("wss://{}/v1/agent-socket", balancer.addr);
    let mut clients = Vec::new();
    for _ in 0..100 {
        let c = client(&url, tls).await;
        RelayEcho::new(c.clone()).call().await;
        clients.push(Arc::new(c));
    }
    balancer.retarget(b.local_addr());
    let stopped = Instant::now();
    a.shutdown();
    balancer.cut();
    let tasks: Vec<_> = clients
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move {
                let cid = c.connection_id();
                // A call made while the client was away ends with the
                // retryable NODE_LOST once it resumes (SPEC.md §11.4): retry.
                loop {
                    let mut inv = c.invoke("echo", Value::from("x".repeat(PAYLOAD))).await.expect("invoke");
                    while inv.next().await.is_some() {}
                    match inv.result().await {
                        Ok(_) => break,
                        Err(e) if e.code.is_retryable() => continue,
                        Err(e) => panic!("echo after the stop: {e:?}"),
                    }
                }
                assert_eq!(c.connection_id(), cid, "the same session, resumed");
                stopped.elapsed()
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.push(task.await.expect("resumed"));
    }
    let resume_after_crash = percentiles(samples, stopped.elapsed());

    drop(clients);
    b.shutdown();
    let mut concurrent = Vec::new();
    for shards in [1, 2] {
        let relay = sharded(tls, &function, None, shards).await;
        let mut clients = Vec::new();
        for _ in 0..100 {
            clients.push(RelayEcho::new(client(relay.url(), tls).await));
        }
        concurrent.push(crate::echo::concurrent(clients, calls.max(10_000), 10).await);
        relay.shutdown();
    }
    let concurrent_2_shards = concurrent.pop().expect("two runs");
    let concurrent_1_shard = concurrent.pop().expect("two runs");
    single.shutdown();
    Figures {
        push_same_node,
        push_cross_node,
        echo_single,
        echo_cluster,
        redis_bytes_per_connection,
        connections_measured: CONNECTIONS,
        resume_after_crash,
        concurrent_1_shard,
        concurrent_2_shards,
    }
}

/// The rows, as markdown.
pub(crate) fn print(f: &Figures) {
    let us = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e6);
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    println!("| relay cluster (2 nodes, one redis-server, wss://) | p50 | p99 | note |");
    println!("|---|---:|---:|---|");
    println!(
        "| management push → client sees the tool, same node, µs | {} | {} | |",
        us(f.push_same_node.p50),
        us(f.push_same_node.p99)
    );
    println!(
        "| management push → client sees the tool, other node, µs | {} | {} | {:.2}x same node |",
        us(f.push_cross_node.p50),
        us(f.push_cross_node.p99),
        f.push_cross_node.p50.as_secs_f64() / f.push_same_node.p50.as_secs_f64()
    );
    println!(
        "| relay echo ({PAYLOAD} B), single relay, µs | {} | {} | |",
        us(f.echo_single.p50),
        us(f.echo_single.p99)
    );
    println!(
        "| relay echo ({PAYLOAD} B), cluster node, µs | {} | {} | {:.2}x single (aim <= 1.10x) |",
        us(f.echo_cluster.p50),
        us(f.echo_cluster.p99),
        f.echo_cluster.p50.as_secs_f64() / f.echo_single.p50.as_secs_f64()
    );
    println!(
        "| 100 clients resumed on the other node after theirs stopped, ms from the stop | {} | {} | |",
        ms(f.resume_after_crash.p50),
        ms(f.resume_after_crash.p99)
    );
    for (name, l) in [("1 core task", &f.concurrent_1_shard), ("2 core tasks", &f.concurrent_2_shards)] {
        println!(
            "| 100 concurrent clients, relay with {name}, echo µs | {} | {} | {:.0} calls/s |",
            us(l.p50),
            us(l.p99),
            l.rate
        );
    }
    println!(
        "| Redis memory per connection ({} sessions), bytes | {:.0} | | directory entry, snapshot, cid index |",
        f.connections_measured, f.redis_bytes_per_connection
    );
}
