//! Login throttling as a pure decision: given what is known about an attempt before its
//! credentials are checked, check it, ask for the second factor first, or make it wait?
//!
//! The rule it keeps: **failures an attacker causes never keep the real person out.**
//!
//! - Guessing is slowed **per account and address** (the pair): an address that keeps
//!   failing on one account waits, exponentially longer; the same account from another
//!   address is not slowed by it.
//! - An address that fails on many accounts (spraying) makes *its* attempts on accounts
//!   that have not logged in from it recently wait too; accounts that have (colleagues
//!   behind the same office NAT) are exempt, so a neighbour's spraying never blocks them.
//! - An account failing from many addresses (a distributed guess) is **guarded**: from an
//!   address it has not logged in from recently, only an attempt that carries a TOTP or
//!   recovery code is checked, under a separate, slower limit per pair, and the right password
//!   with the right code is accepted. An attempt without a code is answered "second factor
//!   required" without checking the password, so a botnet learns nothing more about the
//!   password while the person still gets in.
//!
//! Nothing here depends on whether the account exists: failures are counted for every email
//! typed, so the answers are the same for an unknown address.

use std::net::IpAddr;

/// Recent failed attempts for one key, within its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    pub count: u32,
    /// Time of the latest of them, in Unix milliseconds.
    pub last_at_ms: i64,
}

/// What is known about one login attempt before its credentials are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempt {
    /// Failures of this account from this address, within [`Policy::window_seconds`].
    pub pair: Failures,
    /// Failures of this account from every address, within
    /// [`Policy::account_window_seconds`].
    pub account: Failures,
    /// Failures from this address on every account, within [`Policy::window_seconds`].
    pub address: Failures,
    /// The account logged in successfully from this address within
    /// [`Policy::known_address_days`].
    pub known_address: bool,
    /// The attempt carries a TOTP code or a recovery code.
    pub second_factor: bool,
}

/// What to do with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Check the credentials as usual.
    Check,
    /// The account is guarded: check the credentials, and accept only with a valid second
    /// factor (an account without TOTP cannot log in this way).
    CheckWithSecondFactor,
    /// The account is guarded and the attempt has no code: answer "second factor required"
    /// without checking the password. Not a failure.
    SecondFactorRequired,
    /// Refuse without checking; try again after this many seconds (`Retry-After`).
    Wait(u64),
}

/// The throttling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Only failures younger than this count for the pair and the address.
    pub window_seconds: u64,
    /// Failures of one account from one address before that pair waits.
    pub free_per_pair: u32,
    /// The first wait; each further failure doubles it.
    pub first_wait_seconds: u64,
    /// The longest wait.
    pub max_wait_seconds: u64,
    /// Failures from one address (all accounts) before it waits on accounts that have not
    /// logged in from it recently.
    pub free_per_address: u32,
    /// The longest wait of an address, so that a new colleague behind a spraying NAT waits
    /// minutes, not hours.
    pub max_address_wait_seconds: u64,
    /// Only failures younger than this count for the account as a whole.
    pub account_window_seconds: u64,
    /// Failures of one account (all addresses) that make it guarded.
    pub guard_after_account_failures: u32,
    /// While guarded: checked attempts (with a code) per pair before the slower waits.
    pub free_guarded_per_pair: u32,
    /// While guarded: the first wait of a pair; it doubles like the others.
    pub first_guarded_wait_seconds: u64,
    /// How long a successful login makes its address known to the account.
    pub known_address_days: u32,
}

impl Policy {
    /// Five failures per account and address, then 30 s, 60 s, … up to 15 minutes; thirty
    /// per address on accounts new to it, then waits up to 5 minutes; twenty per account
    /// from anywhere within an hour guard it (a code is needed from new places, two tries,
    /// then 60 s, 120 s, …); an address is known for 30 days after a login.
    pub const DEFAULT: Policy = Policy {
        window_seconds: 15 * 60,
        free_per_pair: 5,
        first_wait_seconds: 30,
        max_wait_seconds: 15 * 60,
        free_per_address: 30,
        max_address_wait_seconds: 5 * 60,
        account_window_seconds: 60 * 60,
        guard_after_account_failures: 20,
        free_guarded_per_pair: 2,
        first_guarded_wait_seconds: 60,
        known_address_days: 30,
    };

    /// Seconds still to wait for `failures` with `free` tries, a first wait and a cap.
    fn wait_for(failures: Failures, free: u32, first: u64, max: u64, now_ms: i64) -> u64 {
        if failures.count < free {
            return 0;
        }
        let doublings = (failures.count - free).min(30);
        let wait_ms = first
            .saturating_mul(1u64 << doublings)
            .min(max)
            .saturating_mul(1000);
        let elapsed_ms = now_ms.saturating_sub(failures.last_at_ms).max(0) as u64;
        wait_ms.saturating_sub(elapsed_ms).div_ceil(1000)
    }

    /// Whether the account is guarded for an attempt from this address.
    pub fn guarded(&self, a: &Attempt) -> bool {
        !a.known_address && a.account.count >= self.guard_after_account_failures
    }

    /// Decide for an attempt at `now_ms`.
    pub fn decide(&self, a: &Attempt, now_ms: i64) -> Decision {
        let guarded = self.guarded(a);
        let pair_wait = if guarded {
            Self::wait_for(
                a.pair,
                self.free_guarded_per_pair,
                self.first_guarded_wait_seconds,
                self.max_wait_seconds,
                now_ms,
            )
        } else {
            Self::wait_for(
                a.pair,
                self.free_per_pair,
                self.first_wait_seconds,
                self.max_wait_seconds,
                now_ms,
            )
        };
        let address_wait = if a.known_address {
            0
        } else {
            Self::wait_for(
                a.address,
                self.free_per_address,
                self.first_wait_seconds,
                self.max_address_wait_seconds,
                now_ms,
            )
        };
        match pair_wait.max(address_wait) {
            0 if !guarded => Decision::Check,
            0 if a.second_factor => Decision::CheckWithSecondFactor,
            0 => Decision::SecondFactorRequired,
            wait => Decision::Wait(wait),
        }
    }
}

/// The client of a request that reached us from `peer`: `peer` itself, unless it is one of
/// the operator's `trusted` proxies; then the right-most address of `X-Forwarded-For` that is
/// not a trusted proxy (everything left of it may have been written by the client). An entry
/// that is not an address stops the walk at the last hop that could be trusted.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if !is_trusted(&client) {
        return client;
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            return client;
        };
        client = ip;
        if !is_trusted(&client) {
            return client;
        }
    }
    client
}

/// The key an address is throttled under: an IPv4 address as is (an IPv4-mapped IPv6 one as
/// IPv4), an IPv6 address by its /64 network, since one client holds a whole /64.
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: Policy = Policy::DEFAULT;
    const NOW: i64 = 10_000_000_000;

    fn f(count: u32, last_at_ms: i64) -> Failures {
        Failures { count, last_at_ms }
    }

    fn attempt(pair: u32, account: u32, address: u32) -> Attempt {
        Attempt {
            pair: f(pair, NOW),
            account: f(account, NOW),
            address: f(address, NOW),
            known_address: false,
            second_factor: false,
        }
    }

    #[test]
    fn a_few_mistakes_are_free() {
        assert_eq!(P.decide(&attempt(4, 4, 4), NOW), Decision::Check);
    }

    #[test]
    fn a_pair_waits_after_its_free_failures_and_the_wait_doubles() {
        assert_eq!(P.decide(&attempt(5, 5, 5), NOW), Decision::Wait(30));
        assert_eq!(
            P.decide(&attempt(5, 5, 5), NOW + 10_000),
            Decision::Wait(20)
        );
        assert_eq!(P.decide(&attempt(5, 5, 5), NOW + 30_000), Decision::Check);
        assert_eq!(P.decide(&attempt(6, 6, 6), NOW), Decision::Wait(60));
        assert_eq!(P.decide(&attempt(19, 19, 19), NOW), Decision::Wait(900));
    }

    #[test]
    fn another_address_is_not_slowed_by_a_pair_that_failed() {
        // 19 failures on the account, all from elsewhere: this pair is clean.
        assert_eq!(P.decide(&attempt(0, 19, 0), NOW), Decision::Check);
    }

    #[test]
    fn an_address_spraying_accounts_waits_on_accounts_new_to_it() {
        assert_eq!(P.decide(&attempt(0, 0, 29), NOW), Decision::Check);
        assert_eq!(P.decide(&attempt(0, 0, 30), NOW), Decision::Wait(30));
        assert_eq!(P.decide(&attempt(0, 0, 500), NOW), Decision::Wait(300));
        // A colleague who logs in from that address is not held up by it.
        let colleague = Attempt {
            known_address: true,
            ..attempt(0, 0, 500)
        };
        assert_eq!(P.decide(&colleague, NOW), Decision::Check);
    }

    #[test]
    fn a_widely_attacked_account_needs_the_code_from_new_places() {
        let new_place = attempt(0, 20, 0);
        assert_eq!(P.decide(&new_place, NOW), Decision::SecondFactorRequired);
        let with_code = Attempt {
            second_factor: true,
            ..new_place
        };
        assert_eq!(P.decide(&with_code, NOW), Decision::CheckWithSecondFactor);
        // The slower limit: two tries per pair, then 60 s, 120 s…
        let tried = Attempt {
            pair: f(2, NOW),
            ..with_code
        };
        assert_eq!(P.decide(&tried, NOW), Decision::Wait(60));
        let tried = Attempt {
            pair: f(3, NOW),
            ..with_code
        };
        assert_eq!(P.decide(&tried, NOW), Decision::Wait(120));
        // From a place the person logged in from, nothing changes.
        let home = Attempt {
            known_address: true,
            ..new_place
        };
        assert_eq!(P.decide(&home, NOW), Decision::Check);
    }

    #[test]
    fn addresses_are_keyed_by_ipv4_or_ipv6_network() {
        let k = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(k("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(k("2001:db8:1:2:ffff::1"), k("2001:db8:1:2::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
    }

    #[test]
    fn the_client_behind_trusted_proxies_is_the_right_most_untrusted_hop() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // Not through a trusted proxy: the header is the client's own writing, ignored.
        assert_eq!(
            client_ip(ip("198.51.100.9"), &["1.2.3.4"], &trusted),
            ip("198.51.100.9")
        );
        // Through the proxy: the address it saw, not what the client prepended.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["6.6.6.6, 203.0.113.7"], &trusted),
            ip("203.0.113.7")
        );
        // Two trusted hops, over two headers.
        assert_eq!(
            client_ip(
                ip("10.0.0.2"),
                &["6.6.6.6, 203.0.113.7", "10.0.0.3"],
                &trusted
            ),
            ip("203.0.113.7")
        );
        // No header, or garbage: the last hop that could be trusted.
        assert_eq!(client_ip(ip("10.0.0.2"), &[], &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["203.0.113.7, unknown"], &trusted),
            ip("10.0.0.2")
        );
        // Nothing trusted: the peer, always.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["203.0.113.7"], &[]),
            ip("10.0.0.2")
        );
    }

    fn failures() -> impl Strategy<Value = Failures> {
        (0u32..2000, 0i64..4_000_000).prop_map(|(count, ago)| f(count, NOW - ago))
    }

    fn attempts() -> impl Strategy<Value = Attempt> {
        (
            failures(),
            failures(),
            failures(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(pair, account, address, known_address, second_factor)| Attempt {
                    pair,
                    account,
                    address,
                    known_address,
                    second_factor,
                },
            )
    }

    fn wait(d: Decision) -> u64 {
        match d {
            Decision::Wait(s) => s,
            _ => 0,
        }
    }

    proptest! {
        /// Nobody else's failures keep a person out of a place they log in from: a clean pair
        /// at a known address is checked, whatever the account and address counts.
        #[test]
        fn others_failures_never_block_a_known_place(a in attempts()) {
            let a = Attempt { pair: Failures::default(), known_address: true, ..a };
            prop_assert_eq!(P.decide(&a, NOW), Decision::Check);
        }

        /// From a new place, whatever the account's failures elsewhere, an attempt with a code
        /// on a clean pair is checked unless its own address is spraying.
        #[test]
        fn the_code_gets_a_person_in_from_a_new_place(a in attempts()) {
            let a = Attempt {
                pair: Failures::default(),
                known_address: false,
                second_factor: true,
                address: f(a.address.count % P.free_per_address, a.address.last_at_ms),
                ..a
            };
            let d = P.decide(&a, NOW);
            prop_assert!(matches!(d, Decision::Check | Decision::CheckWithSecondFactor), "{:?}", d);
        }

        /// A pair's own failures are never free for long: past its free tries a pair waits,
        /// guarded or not, and waits are capped.
        #[test]
        fn a_guessing_pair_waits_and_waits_are_capped(a in attempts()) {
            let a = Attempt { pair: f(a.pair.count + P.free_per_pair, NOW), ..a };
            let d = P.decide(&a, NOW);
            prop_assert!(wait(d) > 0);
            prop_assert!(wait(d) <= P.max_wait_seconds);
        }

        /// More failures never mean less waiting.
        #[test]
        fn waits_grow_with_failures(a in attempts(), more in 0u32..100) {
            let worse = Attempt {
                pair: f(a.pair.count + more, a.pair.last_at_ms),
                account: f(a.account.count + more, a.account.last_at_ms),
                address: f(a.address.count + more, a.address.last_at_ms),
                ..a
            };
            prop_assert!(wait(P.decide(&a, NOW)) <= wait(P.decide(&worse, NOW)));
        }

        /// An unguarded attempt without a code is never told to bring one, and a guarded one
        /// is never checked without one.
        #[test]
        fn the_second_factor_is_asked_for_only_when_guarded(a in attempts()) {
            match P.decide(&a, NOW) {
                Decision::SecondFactorRequired => {
                    prop_assert!(P.guarded(&a) && !a.second_factor)
                }
                Decision::CheckWithSecondFactor => {
                    prop_assert!(P.guarded(&a) && a.second_factor)
                }
                Decision::Check => prop_assert!(!P.guarded(&a)),
                Decision::Wait(_) => {}
            }
        }
    }
}
