//! Login throttling as a pure decision: given the recent failures for an account and for a
//! client address, may another attempt be checked now, or must it wait?
//!
//! Both counts matter: per account stops guessing one person's password from many addresses;
//! per address stops one client spraying many accounts. Waiting grows exponentially after a
//! few free failures, so a person who mistypes is barely slowed and a script is stopped.

/// Recent failed attempts for one key (an account or a client address), within the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    /// Failures within [`Policy::window_seconds`].
    pub count: u32,
    /// Time of the latest of them, in Unix milliseconds.
    pub last_at_ms: i64,
}

/// What to do with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Check the credentials.
    Allowed,
    /// Refuse without checking; try again after this many seconds (`Retry-After`).
    Wait(u64),
}

/// The throttling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Only failures younger than this count.
    pub window_seconds: u64,
    /// Failures per account before waiting starts.
    pub free_per_account: u32,
    /// Failures per client address before waiting starts.
    pub free_per_address: u32,
    /// The first wait; each further failure doubles it.
    pub first_wait_seconds: u64,
    /// The longest wait.
    pub max_wait_seconds: u64,
}

impl Policy {
    /// Five tries per account and twenty per address in fifteen minutes, then 30 s, 60 s, …
    /// up to fifteen minutes.
    pub const DEFAULT: Policy = Policy {
        window_seconds: 15 * 60,
        free_per_account: 5,
        free_per_address: 20,
        first_wait_seconds: 30,
        max_wait_seconds: 15 * 60,
    };

    fn wait_for(&self, failures: Failures, free: u32, now_ms: i64) -> u64 {
        if failures.count < free {
            return 0;
        }
        let doublings = (failures.count - free).min(30);
        let wait = self
            .first_wait_seconds
            .saturating_mul(1u64 << doublings)
            .min(self.max_wait_seconds);
        let elapsed_ms = now_ms.saturating_sub(failures.last_at_ms).max(0) as u64;
        let wait_ms = wait * 1000;
        if elapsed_ms >= wait_ms {
            0
        } else {
            (wait_ms - elapsed_ms).div_ceil(1000)
        }
    }

    /// Decide for an attempt at `now_ms`.
    pub fn decide(&self, account: Failures, address: Failures, now_ms: i64) -> Decision {
        let wait = self
            .wait_for(account, self.free_per_account, now_ms)
            .max(self.wait_for(address, self.free_per_address, now_ms));
        if wait == 0 {
            Decision::Allowed
        } else {
            Decision::Wait(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: Policy = Policy::DEFAULT;

    fn f(count: u32, last_at_ms: i64) -> Failures {
        Failures { count, last_at_ms }
    }

    #[test]
    fn a_few_mistakes_are_free() {
        assert_eq!(P.decide(f(4, 1000), f(4, 1000), 1000), Decision::Allowed);
    }

    #[test]
    fn the_fifth_account_failure_makes_the_next_attempt_wait() {
        assert_eq!(P.decide(f(5, 1000), f(5, 1000), 1000), Decision::Wait(30));
        assert_eq!(P.decide(f(5, 1000), f(5, 1000), 11_000), Decision::Wait(20));
        assert_eq!(P.decide(f(5, 1000), f(5, 1000), 31_000), Decision::Allowed);
        assert_eq!(P.decide(f(6, 0), f(0, 0), 0), Decision::Wait(60));
        assert_eq!(P.decide(f(100, 0), f(0, 0), 0), Decision::Wait(900));
    }

    #[test]
    fn an_address_spraying_accounts_waits_too() {
        assert_eq!(P.decide(f(0, 0), f(19, 0), 0), Decision::Allowed);
        assert_eq!(P.decide(f(0, 0), f(20, 0), 0), Decision::Wait(30));
    }

    proptest! {
        #[test]
        fn waits_never_exceed_the_maximum_and_grow_with_failures(
            a in 0u32..1000, b in 0u32..1000, elapsed in 0i64..2_000_000
        ) {
            let now = 10_000_000;
            let wait = |n: u32| match P.decide(f(n, now - elapsed), f(0, 0), now) {
                Decision::Allowed => 0,
                Decision::Wait(s) => s,
            };
            prop_assert!(wait(a) <= P.max_wait_seconds);
            if a <= b {
                prop_assert!(wait(a) <= wait(b));
            }
        }
    }
}
