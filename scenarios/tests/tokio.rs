//! The scenarios with server and client on Tokio.
asp_scenarios::scenario_tests!(asp_tokio::TokioRuntime, asp_tokio::TokioRuntime, asp_scenarios::tokio_block_on);
