//! Counters shared by the providers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use persist_core::cache::CacheMetrics;

/// The counters behind [`CacheMetrics`], updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    puts: AtomicU64,
    rejected_puts: AtomicU64,
    invalidations: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Relaxed);
    }
    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Relaxed);
    }
    /// Counts a batched lookup's hits and misses.
    pub(crate) fn lookups(&self, hits: usize, misses: usize) {
        self.hits.fetch_add(hits as u64, Relaxed);
        self.misses.fetch_add(misses as u64, Relaxed);
    }
    pub(crate) fn put(&self) {
        self.puts.fetch_add(1, Relaxed);
    }
    pub(crate) fn rejected(&self) {
        self.rejected_puts.fetch_add(1, Relaxed);
    }
    pub(crate) fn invalidated(&self, n: usize) {
        self.invalidations.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }
    pub(crate) fn snapshot(&self) -> CacheMetrics {
        CacheMetrics {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            puts: self.puts.load(Relaxed),
            rejected_puts: self.rejected_puts.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }
}
