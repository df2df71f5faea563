//! The scenarios with server and client on async-std.
asp_scenarios::scenario_tests!(asp_async_std::AsyncStd, asp_async_std::AsyncStd, async_std::task::block_on);
