//! `OutputQueue`: output waiting for credit, with its end behind it, over a
//! real session pair.

use asp_proto::*;
use asp_testkit::{Pair, Side};
use bytes::Bytes;

fn pair() -> Pair {
    let server = SessionConfig { tools: vec![ToolSpec::named("big")].into(), ..SessionConfig::default() };
    let client = SessionConfig { invocation_window: 16 * 1024, ..SessionConfig::default() };
    Pair::connected(client, server, 3)
}

fn invoke(p: &mut Pair) -> RequestId {
    let id = p.client.invoke(p.now, Invoke::new("big", Value::Nil)).unwrap();
    p.drive();
    assert!(!p.take_events(Side::Server, |e| matches!(e, Event::Invoked { .. })).is_empty());
    id
}

fn received(p: &mut Pair, id: RequestId) -> (Vec<u8>, Option<Event>) {
    let mut data = Vec::new();
    let mut end = None;
    for e in p.take_events(Side::Client, |_| true) {
        match e {
            Event::Chunk { id: i, data: d } if i == id => data.extend_from_slice(&d),
            e @ (Event::Completed { .. } | Event::Failed { .. }) => end = Some(e),
            _ => {}
        }
    }
    (data, end)
}

#[test]
fn the_end_waits_behind_output_blocked_by_credit() {
    let mut p = pair();
    let id = invoke(&mut p);
    let mut queue = OutputQueue::new();
    let body: Vec<u8> = (0..40 * 1024).map(|i| (i % 251) as u8).collect();
    queue.push(Output::Data(Bytes::from(body.clone())), body.len());
    queue.push(Output::Complete { result: Value::from("done"), cpu_us: Some(7) }, 0);
    assert!(queue.has_end());

    let flushed = queue.flush(&mut p.server, p.now, id);
    assert_eq!(flushed, Flushed { released: 16 * 1024, state: QueueState::Open });
    p.drive();
    let (first, end) = received(&mut p, id);
    assert_eq!(first, body[..16 * 1024]);
    assert!(end.is_none(), "COMPLETE overtook blocked output");

    // The reader hands back what it read; the queue goes on as credit comes.
    let mut all = first;
    let mut released = flushed.released;
    let mut end = None;
    for _ in 0..10 {
        p.client.grant(id, 16 * 1024);
        p.drive();
        let flushed = queue.flush(&mut p.server, p.now, id);
        released += flushed.released;
        p.drive();
        let (more, e) = received(&mut p, id);
        all.extend_from_slice(&more);
        if flushed.state == QueueState::Ended {
            end = e;
            break;
        }
        assert!(e.is_none(), "COMPLETE overtook blocked output");
    }
    assert_eq!(all, body);
    assert_eq!(released, body.len());
    assert!(queue.is_empty());
    match end {
        Some(Event::Completed { result, metrics, .. }) => {
            assert_eq!(result, Value::from("done"));
            assert_eq!(metrics.cpu_us, Some(7));
        }
        other => panic!("expected Completed, got {other:?}"),
    }
}

#[test]
fn a_gone_invocation_drops_the_queue_and_releases_everything() {
    let mut p = pair();
    let id = invoke(&mut p);
    let mut queue = OutputQueue::new();
    queue.push(Output::Data(Bytes::from(vec![1u8; 20 * 1024])), 20 * 1024);
    let first = queue.flush(&mut p.server, p.now, id);
    assert_eq!(first.state, QueueState::Open);
    queue.push(Output::Progress(Progress { progress: 0.5, total: None, message: None }), 3);
    queue.push(Output::Fail(ErrorInfo::failed("late")), 0);

    p.client.interrupt(id, None).unwrap();
    p.drive();
    let flushed = queue.flush(&mut p.server, p.now, id);
    assert_eq!(flushed.state, QueueState::Gone);
    assert_eq!(first.released + flushed.released, 20 * 1024 + 3, "every byte is released exactly once");
    assert!(queue.is_empty());
    let (_, end) = received(&mut p, id);
    assert!(matches!(end, Some(Event::Failed { error, .. }) if error.code == ErrorCode::CANCELLED));
}

#[test]
fn a_resume_index_finds_sessions_by_the_key_of_their_ticket() {
    let mut index = ResumeIndex::new();
    let ticket = Bytes::from(vec![9u8; 32]);
    let key = ResumeKey::of(&ticket).unwrap();
    index.insert(key, "old session");
    let request = ResumeRequest { ticket: ticket.to_vec().into(), recv: 0 };
    assert_eq!(index.find(&request), Some(&"old session"));
    let short = ResumeRequest { ticket: b"short".to_vec().into(), recv: 0 };
    assert_eq!(index.find(&short), None, "a ticket too short to have a key");
    assert_eq!(index.remove(&key), Some("old session"));
    assert!(index.find(&request).is_none() && index.is_empty());
}
