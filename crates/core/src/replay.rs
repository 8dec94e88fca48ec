//! The replay window: after a long outage (a connection broken for days), old events must not
//! flood the PSA with tickets about things long over. Deliveries of events older than the
//! window are kept and listed as `expired`; someone may replay them on purpose, and the window
//! then counts from the replay.

use std::time::Duration;

/// Is this delivery too old to send now?
///
/// Times are milliseconds since the epoch. A delivery that may already have sent a create or
/// a note (`sent_something`) is never held back: it must finish what it began, or the PSA
/// would keep a ticket we do not know about.
pub fn outside_replay_window(
    received_at: i64,
    replayed_at: Option<i64>,
    now: i64,
    window: Duration,
    sent_something: bool,
) -> bool {
    if sent_something {
        return false;
    }
    let from = replayed_at.map_or(received_at, |r| r.max(received_at));
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    now.saturating_sub(from) > window_ms
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const H: i64 = 3_600_000;
    const WINDOW: Duration = Duration::from_secs(48 * 3600);

    #[test]
    fn the_window_in_examples() {
        let t0 = 1_800_000_000_000;
        assert!(!outside_replay_window(t0, None, t0 + 47 * H, WINDOW, false));
        assert!(!outside_replay_window(t0, None, t0 + 48 * H, WINDOW, false));
        assert!(outside_replay_window(t0, None, t0 + 49 * H, WINDOW, false));
        // Begun work always finishes.
        assert!(!outside_replay_window(t0, None, t0 + 100 * H, WINDOW, true));
        // A replay opens a fresh window.
        let replay = t0 + 100 * H;
        assert!(!outside_replay_window(
            t0,
            Some(replay),
            replay + H,
            WINDOW,
            false
        ));
        assert!(outside_replay_window(
            t0,
            Some(replay),
            replay + 49 * H,
            WINDOW,
            false
        ));
    }

    proptest! {
        #[test]
        fn a_replay_never_shortens_the_window(
            received in 0i64..4_000_000_000_000,
            replay_after in proptest::option::of(0i64..1_000_000_000),
            age in 0i64..1_000_000_000,
        ) {
            let replayed = replay_after.map(|a| received + a);
            let now = replayed.unwrap_or(received) + age;
            let with = outside_replay_window(received, replayed, now, WINDOW, false);
            let without = outside_replay_window(received, None, now, WINDOW, false);
            prop_assert!(!with || without);
        }
    }
}
