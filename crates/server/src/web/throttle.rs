//! Wrong passwords, counted per email (known or not, so the count itself tells nothing): after
//! a few the answer is slowed, after more the email is locked out for a while. Kept in the
//! memory of one server process; a restart forgets the counts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How sign-in failures are slowed and locked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures answered at once; each one after this waits [`ThrottlePolicy::slow_down`].
    pub free_failures: u32,
    /// The wait added to each failure past the free ones.
    pub slow_down: Duration,
    /// Failures that lock the email.
    pub lock_after: u32,
    /// How long a lock lasts; failures older than this are forgotten.
    pub lock_for: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            free_failures: 2,
            slow_down: Duration::from_secs(1),
            lock_after: 5,
            lock_for: Duration::from_secs(15 * 60),
        }
    }
}

/// What a failure leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// Wait this long before answering.
    pub slow_down: Duration,
    /// The email is locked for this long now.
    pub locked_for: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Failure counts by email.
#[derive(Debug)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    by_email: Mutex<HashMap<String, Failures>>,
}

/// Above this many emails tracked, stale ones are dropped.
const MAX_TRACKED: usize = 10_000;

impl LoginThrottle {
    /// No failures yet.
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            by_email: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.by_email
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long the email stays locked, if it is.
    pub fn locked(&self, email: &str) -> Option<Duration> {
        let now = Instant::now();
        self.map()
            .get(email)
            .and_then(|f| f.locked_until)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Counts a wrong password for `email`.
    pub fn failed(&self, email: &str) -> Failed {
        let now = Instant::now();
        let mut map = self.map();
        if map.len() >= MAX_TRACKED {
            let keep = self.policy.lock_for;
            map.retain(|_, f| now.duration_since(f.last) < keep);
        }
        let entry = map.entry(email.to_string()).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        // A lock that ran out, or failures long ago, start the count again.
        let lock_over = entry.locked_until.is_some_and(|until| until <= now);
        if lock_over || now.duration_since(entry.last) >= self.policy.lock_for {
            *entry = Failures {
                count: 0,
                last: now,
                locked_until: None,
            };
        }
        entry.count += 1;
        entry.last = now;
        if entry.count >= self.policy.lock_after {
            entry.locked_until = Some(now + self.policy.lock_for);
            return Failed {
                slow_down: Duration::ZERO,
                locked_for: Some(self.policy.lock_for),
            };
        }
        Failed {
            slow_down: if entry.count > self.policy.free_failures {
                self.policy.slow_down
            } else {
                Duration::ZERO
            },
            locked_for: None,
        }
    }

    /// A right password: the count starts again.
    pub fn succeeded(&self, email: &str) {
        self.map().remove(email);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_slowed_then_locked_per_email() {
        let throttle = LoginThrottle::new(ThrottlePolicy::default());
        let first = throttle.failed("a@x.test");
        assert_eq!(first.slow_down, Duration::ZERO);
        throttle.failed("a@x.test");
        assert_eq!(
            throttle.failed("a@x.test").slow_down,
            Duration::from_secs(1)
        );
        assert!(throttle.locked("a@x.test").is_none());
        throttle.failed("a@x.test");
        let fifth = throttle.failed("a@x.test");
        assert!(fifth.locked_for.is_some());
        assert!(throttle.locked("a@x.test").is_some());
        // Another email is not touched.
        assert!(throttle.locked("b@x.test").is_none());
        assert_eq!(throttle.failed("b@x.test").locked_for, None);
    }

    #[test]
    fn a_lock_ends_by_itself_and_success_clears_the_count() {
        let throttle = LoginThrottle::new(ThrottlePolicy {
            lock_for: Duration::ZERO,
            ..ThrottlePolicy::default()
        });
        for _ in 0..5 {
            throttle.failed("a@x.test");
        }
        assert!(throttle.locked("a@x.test").is_none());
        let throttle = LoginThrottle::new(ThrottlePolicy::default());
        for _ in 0..4 {
            throttle.failed("a@x.test");
        }
        throttle.succeeded("a@x.test");
        assert_eq!(throttle.failed("a@x.test").slow_down, Duration::ZERO);
    }
}
