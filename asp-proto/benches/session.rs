//! Both session cores in one thread, joined back to back in memory: how many
//! invoke → COMPLETE cycles, and how many 32-byte STREAM chunks, they get
//! through per second. Every byte goes through the encoder, the decoder and
//! both state machines (flow control, acknowledgements, events); only the
//! socket is missing.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::time::Instant;

use asp_proto::{Event, Invoke, Session, SessionConfig, ToolSpec, Value};
use asp_testkit::TestEntropy;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

struct Link {
    client: Session,
    server: Session,
    now: Instant,
}

impl Link {
    fn new() -> Link {
        let now = Instant::now();
        let config = SessionConfig { tools: vec![ToolSpec::named("echo")].into(), ..SessionConfig::default() };
        let mut link = Link {
            client: Session::client(config.clone(), now),
            server: Session::server(config, now, Box::new(TestEntropy(1))),
            now,
        };
        link.pump();
        while let Some(e) = link.server.poll_event() {
            if let Event::HelloReceived(_) = e {
                link.server.accept(now).unwrap();
            }
        }
        link.pump();
        while link.client.poll_event().is_some() {}
        while link.server.poll_event().is_some() {}
        link
    }

    /// Moves every pending transmit across, both ways, until quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit() {
                self.server.handle_message(self.now, t);
                moved = true;
            }
            while let Some(t) = self.server.poll_transmit() {
                self.client.handle_message(self.now, t);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }
}

fn invoke_complete(c: &mut Criterion) {
    let mut link = Link::new();
    let invoke = Invoke::new("echo", Value::from("ping"));
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(1));
    group.bench_function("invoke_complete_cycle", |b| {
        b.iter(|| {
            let now = link.now;
            let id = link.client.invoke(now, invoke.clone()).unwrap();
            link.pump();
            while let Some(e) = link.server.poll_event() {
                if let Event::Invoked { id, invoke } = e {
                    link.server.complete(now, id, invoke.args, None).unwrap();
                }
            }
            link.pump();
            let mut done = false;
            while let Some(e) = link.client.poll_event() {
                done |= matches!(e, Event::Completed { id: i, .. } if i == id);
            }
            assert!(done);
        })
    });
    group.finish();
}

const CHUNKS: usize = 4096;
const BURST: usize = 32;

fn stream_chunks(c: &mut Criterion) {
    let mut link = Link::new();
    let now = link.now;
    let id = link.client.invoke(now, Invoke::new("echo", Value::Nil)).unwrap();
    link.pump();
    while link.server.poll_event().is_some() {}
    let chunk = Bytes::from_static(&[b't'; 32]);
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(CHUNKS as u64));
    group.bench_function("stream_32B_chunks", |b| {
        b.iter(|| {
            let mut received = 0;
            for _ in 0..CHUNKS / BURST {
                for _ in 0..BURST {
                    let mut data = chunk.clone();
                    link.server.send_chunk(id, &mut data).expect("credit is granted as consumed");
                }
                // An adapter writes whatever is ready as one message.
                link.pump();
                while let Some(e) = link.client.poll_event() {
                    if let Event::Chunk { data, .. } = e {
                        received += data.len();
                        link.client.grant(id, black_box(data).len());
                    }
                }
                while link.server.poll_event().is_some() {}
            }
            link.pump();
            assert_eq!(received, CHUNKS * 32);
        })
    });
    group.finish();
}

/// Applying a TOOL_DEF of many tools in descending name order: the shape
/// that made per-tool insertion quadratic (6.3 s for 87,000 tools). Rows
/// for 1,000 and 87,000 tools show the cost growing about linearly.
fn tool_def_descending(c: &mut Criterion) {
    use asp_proto::{ToolOp, ToolSet, ToolSpec};
    let mut group = c.benchmark_group("tools");
    for n in [1_000usize, 87_000] {
        let mut names: Vec<String> = (0..n).map(|i| format!("{i:05x}")).collect();
        names.sort();
        names.reverse();
        let tools: Vec<ToolSpec> = names.into_iter().map(ToolSpec::named).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("tool_def_add_{n}_descending"), |b| {
            b.iter(|| {
                let mut set = ToolSet::default();
                set.apply(ToolOp::Add, tools.clone());
                set.len()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = session;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = invoke_complete, stream_chunks, tool_def_descending
}
criterion_main!(session);
