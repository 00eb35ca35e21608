//! Nothing: the measurement is `benches/sqlite_begin.rs`.
