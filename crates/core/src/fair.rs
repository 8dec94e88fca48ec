//! Sharing a node's free delivery slots among connections fairly.
//!
//! Each connection (a *lane*: one PSA connection, or the email channel) may take only as many
//! slots as it has room for: its own concurrency cap minus what it already has in flight, and
//! nothing while its breaker is open or its request budget is spent. Within that, slots are
//! dealt round-robin, one at a time, starting from a rotating position. So one partner's burst
//! or one slow PSA takes at most its cap, and every other lane with due work gets a slot in the
//! same claim.

/// A lane as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// The connection id (0: the email channel).
    pub id: i64,
    /// Slots it may still take now (0 when paused, full, or known to have nothing due).
    pub room: usize,
}

/// How many of `free` slots each lane gets, in the order of `lanes`, dealing one slot at a
/// time round-robin from `lanes[start % len]`.
///
/// Guarantees: no lane gets more than its room; the total is `min(free, total room)` (no slot
/// is left idle while a lane has room); and the shares of two lanes that both could take more
/// differ by at most one.
pub fn shares(free: usize, lanes: &[Lane], start: usize) -> Vec<usize> {
    let mut out = vec![0usize; lanes.len()];
    if lanes.is_empty() {
        return out;
    }
    let total_room: usize = lanes.iter().map(|l| l.room).sum();
    let mut left = free.min(total_room);
    // Whole rounds first (every lane with room gets the same), then one slot each from
    // `start` for the remainder: the same result as dealing one at a time, in O(lanes²) at
    // worst instead of O(free).
    while left > 0 {
        let open: Vec<usize> = (0..lanes.len())
            .filter(|&i| out[i] < lanes[i].room)
            .collect();
        let round = left / open.len();
        if round == 0 {
            let n = lanes.len();
            for k in 0..n {
                let i = (start + k) % n;
                if left == 0 {
                    break;
                }
                if out[i] < lanes[i].room {
                    out[i] += 1;
                    left -= 1;
                }
            }
            break;
        }
        let step = open
            .iter()
            .map(|&i| lanes[i].room - out[i])
            .min()
            .unwrap_or(0)
            .min(round);
        for &i in &open {
            out[i] += step;
        }
        left -= step * open.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lanes(rooms: &[usize]) -> Vec<Lane> {
        rooms
            .iter()
            .enumerate()
            .map(|(i, &room)| Lane {
                id: i as i64 + 1,
                room,
            })
            .collect()
    }

    #[test]
    fn a_burst_lane_takes_only_its_room_and_the_others_get_theirs() {
        // Lane 1 has a huge backlog but a cap of 4; lanes 2 and 3 have one event each.
        let got = shares(16, &lanes(&[4, 1, 1]), 0);
        assert_eq!(got, vec![4, 1, 1]);
    }

    #[test]
    fn the_remainder_goes_round_robin_from_start() {
        assert_eq!(shares(2, &lanes(&[5, 5, 5]), 0), vec![1, 1, 0]);
        assert_eq!(shares(2, &lanes(&[5, 5, 5]), 1), vec![0, 1, 1]);
        assert_eq!(shares(2, &lanes(&[5, 5, 5]), 2), vec![1, 0, 1]);
    }

    #[test]
    fn paused_lanes_get_nothing() {
        assert_eq!(shares(10, &lanes(&[0, 3, 0]), 0), vec![0, 3, 0]);
        assert_eq!(shares(10, &[], 0), Vec::<usize>::new());
    }

    proptest! {
        #[test]
        fn shares_are_bounded_work_conserving_and_even(
            rooms in proptest::collection::vec(0usize..40, 0..30),
            free in 0usize..200,
            start in 0usize..50,
        ) {
            let l = lanes(&rooms);
            let got = shares(free, &l, start);
            prop_assert_eq!(got.len(), l.len());
            for (g, lane) in got.iter().zip(&l) {
                prop_assert!(*g <= lane.room);
            }
            let total: usize = got.iter().sum();
            prop_assert_eq!(total, free.min(rooms.iter().sum()));
            for i in 0..l.len() {
                for j in 0..l.len() {
                    if got[i] < l[i].room {
                        // Lane i could take more, so nobody got more than one over it.
                        prop_assert!(got[j] <= got[i] + 1, "{:?} {:?}", rooms, got);
                    }
                }
            }
        }

        #[test]
        fn equals_dealing_one_slot_at_a_time(
            rooms in proptest::collection::vec(0usize..10, 1..12),
            free in 0usize..80,
            start in 0usize..20,
        ) {
            let l = lanes(&rooms);
            let mut slow = vec![0usize; l.len()];
            let mut left = free;
            let mut k = start;
            let mut idle = 0;
            while left > 0 && idle < l.len() {
                let i = k % l.len();
                k += 1;
                if slow[i] < l[i].room {
                    slow[i] += 1;
                    left -= 1;
                    idle = 0;
                } else {
                    idle += 1;
                }
            }
            prop_assert_eq!(shares(free, &l, start), slow);
        }
    }
}
