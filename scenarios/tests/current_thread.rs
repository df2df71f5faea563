//! The scenarios with server and client on smol, every task of both on one
//! `asp_async_std::CurrentThread` (the caller's thread), and what that
//! executor promises: connection tasks outlive one `block_on` and end with
//! the executor.

use asp_async_std::{CurrentThread, Smol};
use asp_proto::Value;
use asp_scenarios::{client, server, within, Counters, Tls};

fn on_current_thread<F: std::future::Future>(future: F) -> F::Output {
    CurrentThread::new().block_on(future)
}

asp_scenarios::scenario_tests!(Smol, Smol, on_current_thread);

#[test]
fn connection_tasks_outlive_a_block_on_and_end_with_the_executor() {
    let tls = Tls::new();
    // The server outside any CurrentThread: on smol's global executor.
    let server = smol::block_on(server::<Smol>(&tls, &Counters::default()));
    let rt = CurrentThread::new();
    let client = rt.block_on(client::<Smol>(&tls, server.url()).connect()).unwrap();
    // The client's connection task was started by the first block_on and
    // runs again in this one.
    for word in ["one", "two"] {
        let done = rt.block_on(within(10, async {
            client.invoke("echo", Value::from(word)).await.unwrap().result().await.unwrap()
        }));
        assert_eq!(done.result, Value::from(word));
    }
    drop(rt);
    // The executor took the connection task with it: the handle says so.
    let after = smol::block_on(within(10, client.invoke("echo", Value::from("three"))));
    assert!(after.is_err(), "the connection outlived its executor");
}
