//! The scenarios with server and client on smol.
asp_scenarios::scenario_tests!(asp_async_std::Smol, asp_async_std::Smol, smol::block_on);
