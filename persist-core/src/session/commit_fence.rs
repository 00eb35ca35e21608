//! The commit fence: from `COMMIT` until the shared cache has heard of it.

use std::sync::Arc;

use crate::cache::ChangeSet;
use crate::session::shared::Shared;

/// Held from just before `COMMIT` until the cache has heard of the commit.
/// While it is held, this process's sessions do not answer reads of the
/// regions it names from the cache (the database may already hold what the
/// cache does not). Dropped without [`CommitFence::disarm`] — the commit's
/// future was cut, and the `COMMIT` may have landed — it invalidates them in
/// a task of its own, so the cache never keeps serving what the transaction
/// replaced.
pub(crate) struct CommitFence {
    pub(super) db: Option<Arc<Shared>>,
    pub(super) changes: ChangeSet,
}

impl CommitFence {
    /// What the transaction changed, for the cache to hear after `COMMIT`
    /// (empty without a cache).
    pub(crate) fn changes(&self) -> &ChangeSet {
        &self.changes
    }

    /// The commit was answered and the cache told: lifts the fence.
    pub(crate) fn disarm(mut self) {
        if let Some(layer) = self.db.take().as_ref().and_then(|db| db.cache.as_ref()) {
            layer.end_commit(&self.changes);
        }
    }
}

impl Drop for CommitFence {
    fn drop(&mut self) {
        let Some(db) = self.db.take() else {
            return;
        };
        let changes = std::mem::take(&mut self.changes);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Some(layer) = db.cache.as_ref() {
                        if let Err(e) = layer.provider.after_commit(&changes).await {
                            layer.failed("after_commit", &e);
                        }
                        layer.end_commit(&changes);
                    }
                });
            }
            Err(_) => {
                if let Some(layer) = db.cache.as_ref() {
                    tracing::warn!(
                        "a cut commit's cache invalidation has no runtime to run on; cached rows of {:?} may be stale until their TTL",
                        changes.regions
                    );
                    layer.end_commit(&changes);
                }
            }
        }
    }
}
