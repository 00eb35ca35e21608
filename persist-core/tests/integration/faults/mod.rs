//! Guarantees under faults: every public async operation cut at every
//! poll, abandoned sessions, a process SIGKILLed mid-flush, the server
//! killing the session's connection, and Redis going away during commits.
//!
//! The floor (DESIGN.md, "Guarantees under faults"): a dropped future never
//! writes twice, never leaves half a flush committed, never hands an open
//! transaction to another session, never lets the cache serve what the
//! database does not hold; the session stays usable with its registered
//! work intact, or answers `SessionFailed` until `rollback()`.

mod cancel;
mod connkill;
pub(crate) mod cut;
pub(crate) mod harness;
mod model;
mod process;
mod redis;
mod regress;

pub use cancel::*;
pub use connkill::*;
pub use process::*;
pub use redis::*;
pub use regress::*;
