//! The providers against their contract: in-process, Redis (the machine's
//! Redis on 127.0.0.1:6379, a unique key prefix per test, cleaned up after)
//! and the near-cache; plus outages of a `redis-server` each test starts on
//! a spare port and kills.
//!
//! Without a reachable Redis the Redis tests are skipped loudly — except
//! under `CI=true`, where they fail.

mod common;
mod huge_durations;
mod in_process;
mod near;
mod outage;
mod redis;
