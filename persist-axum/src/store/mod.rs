//! The web-session store (placeholder until written).

/// A `tower_sessions::SessionStore` kept by persist.
#[derive(Debug, Clone)]
pub struct PersistSessionStore;
