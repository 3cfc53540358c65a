//! Which router issued a decision: a random 64-bit id per router.
//!
//! Two routers with the same models issue the same decision ids (both count from 0), so without
//! an identity one would accept the other's decisions and learn from the wrong query. Every
//! router draws its own id, seeded ones included: the id never touches the decision generator,
//! so seeded runs stay identical. A snapshot keeps the id, so the restored router is the same
//! router, byte for byte, and the decisions pending in the snapshot stay redeemable; two routers
//! restored from one snapshot therefore share an id (as copies of one router do).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 64 random bits that differ between routers of one process and between processes, forked
/// ones included. Std's `RandomState` is seeded from the OS once per thread and then only
/// counts up, and a forked child inherits it, so the process id, the clock and a counter are
/// hashed in too. Not for cryptography: it keeps routers apart, it does not authenticate.
#[must_use]
pub fn fresh() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_router_gets_its_own_id() {
        let ids: std::collections::HashSet<u64> = (0..10_000).map(|_| super::fresh()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
