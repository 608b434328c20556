//! Failed sign-ins, counted per client id: after `limit` failures within a window the client id
//! is locked for a while, and every sign-in with it — right secret or wrong — gets 429 with
//! `Retry-After` until the lock ends, so that a secret cannot be guessed at the server's speed.
//! Unknown client ids are counted the same way (the answers do not tell whether one exists),
//! within a bounded table. Time is an input (`now`); the handler reads the clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most client ids tracked at once; the table never grows past it.
const MAX_TRACKED: usize = 100_000;

/// The failures of one client id.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Failures since `since`.
    failures: u32,
    /// When the first of them happened.
    since: Instant,
    /// Until when the client id is locked.
    locked_until: Option<Instant>,
}

/// The sign-in guard.
#[derive(Debug)]
pub(crate) struct SignInGuard {
    limit: u32,
    window: Duration,
    lockout: Duration,
    records: Mutex<HashMap<String, Record>>,
}

impl SignInGuard {
    /// `limit` failures within `window` lock a client id for `lockout`.
    pub(crate) fn new(limit: u32, window: Duration, lockout: Duration) -> Self {
        SignInGuard { limit: limit.max(1), window, lockout, records: Mutex::new(HashMap::new()) }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long the client id stays locked, if it is.
    pub(crate) fn locked(&self, client_id: &str, now: Instant) -> Option<Duration> {
        let until = self.records().get(&client_id.to_ascii_lowercase())?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failed sign-in; returns the lock it starts, if it reaches the limit.
    pub(crate) fn failed(&self, client_id: &str, now: Instant) -> Option<Duration> {
        let mut records = self.records();
        let key = client_id.to_ascii_lowercase();
        if !records.contains_key(&key) && records.len() >= MAX_TRACKED {
            let (window, lockout) = (self.window, self.lockout);
            records.retain(|_, r| now.duration_since(r.since) < window.max(lockout));
            // Still full of live records: the oldest tenth makes room at once, so that a flood
            // costs one sort per many sign-ins (a lock goes only after most of a table's worth
            // of newer client ids failed).
            if records.len() >= MAX_TRACKED {
                let mut by_age: Vec<(Instant, String)> = records.iter().map(|(k, r)| (r.since, k.clone())).collect();
                let cut = (MAX_TRACKED / 10).max(1);
                by_age.select_nth_unstable(cut - 1);
                for (_, k) in &by_age[..cut] {
                    records.remove(k);
                }
            }
        }
        let r = records.entry(key).or_insert(Record { failures: 0, since: now, locked_until: None });
        if now.duration_since(r.since) >= self.window || r.locked_until.is_some_and(|u| u <= now) {
            *r = Record { failures: 0, since: now, locked_until: None };
        }
        r.failures += 1;
        if r.failures >= self.limit {
            r.locked_until = Some(now + self.lockout);
            return Some(self.lockout);
        }
        None
    }

    /// Forgets a client id's failures after a successful sign-in.
    pub(crate) fn succeeded(&self, client_id: &str) {
        self.records().remove(&client_id.to_ascii_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> SignInGuard {
        SignInGuard::new(3, Duration::from_secs(60), Duration::from_secs(30))
    }

    #[test]
    fn the_limit_within_the_window_locks_until_the_lockout_ends() {
        let (g, t0) = (guard(), Instant::now());
        assert_eq!(g.failed("A", t0), None);
        assert_eq!(g.failed("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(g.failed("A", t0 + Duration::from_secs(2)), Some(Duration::from_secs(30)));
        assert_eq!(g.locked("a", t0 + Duration::from_secs(12)), Some(Duration::from_secs(20)));
        assert_eq!(g.locked("a", t0 + Duration::from_secs(32)), None, "the lock ends");
        assert_eq!(g.failed("a", t0 + Duration::from_secs(33)), None, "and counting starts again");
        assert_eq!(g.locked("b", t0), None, "other client ids are not affected");
    }

    #[test]
    fn failures_spread_beyond_the_window_and_successes_do_not_lock() {
        let (g, t0) = (guard(), Instant::now());
        for i in 0..10u64 {
            assert_eq!(g.failed("a", t0 + Duration::from_secs(i * 40)), None, "failure {i}");
        }
        g.failed("b", t0);
        g.failed("b", t0);
        g.succeeded("B");
        assert_eq!(g.failed("b", t0), None, "a success forgets the failures");
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_locks_of_all_but_the_oldest() {
        let (g, t0) = (SignInGuard::new(1, Duration::from_secs(60), Duration::from_secs(30)), Instant::now());
        let t1 = t0 + Duration::from_secs(1);
        assert!(g.failed("victim", t1).is_some());
        assert!(g.failed("oldest", t0).is_some());
        let noise = t0 + Duration::from_millis(500);
        for i in 0..MAX_TRACKED - 1 {
            g.failed(&format!("noise-{i}"), noise);
        }
        assert!(g.records().len() <= MAX_TRACKED, "bounded");
        assert!(g.locked("victim", t1).is_some(), "the victim's lock is kept");
        assert!(g.locked("oldest", t1).is_none(), "the oldest record made room");
    }
}
