//! Across runtimes over real loopback sockets with TLS: a Tokio client
//! against an async-std server, and an async-std client against a Tokio
//! server. The test body runs on Tokio (the Tokio side spawns there); the
//! async-std side spawns on async-std's executor.

mod tokio_client_async_std_server {
    asp_scenarios::scenario_tests!(asp_async_std::AsyncStd, asp_tokio::TokioRuntime, asp_scenarios::tokio_block_on);
}

mod async_std_client_tokio_server {
    asp_scenarios::scenario_tests!(asp_tokio::TokioRuntime, asp_async_std::AsyncStd, asp_scenarios::tokio_block_on);
}
