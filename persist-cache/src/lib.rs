//! # persist-cache
//!
//! Shared second-level cache and query cache providers for persist:
//! in-process, Redis, and a near-cache in front of Redis.
//!
//! This crate is a skeleton for now: the cache interface it will implement
//! lives in `persist-core` (which never depends on this crate), and the
//! providers arrive with the cache work. Until then persist reads and writes
//! the database directly, which is always correct.
