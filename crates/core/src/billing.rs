//! Usage billing as pure decisions: which billing period an observation belongs to, the
//! period's high-water mark, and what one client's sync should write to the PSA.
//!
//! The vendor reports counts (users, devices) per client whenever it likes; the MSP bills its
//! client the **highest** count seen in the billing period, so a dip on the last day does not
//! lose a month's revenue. A period is a calendar month in the partner's time zone, optionally
//! starting on another day of the month (the anchor), because MSPs bill on the day their
//! contracts renew.
//!
//! The sync is economical by construction: [`decide`] answers [`SyncDecision::Unchanged`] when the
//! PSA already holds the right units and cost, so a second run with nothing new writes nothing.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

/// Latest day a period may start on: every month has it.
pub const MAX_ANCHOR_DAY: u8 = 28;

/// Why a billing calendar cannot be built from settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("unknown time zone {0:?} (use an IANA name such as Europe/Berlin)")]
    UnknownTimeZone(String),
    #[error("anchor day must be between 1 and {MAX_ANCHOR_DAY}, not {0}")]
    AnchorDay(u8),
}

/// How a partner's billing periods are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingCalendar {
    tz: Tz,
    anchor_day: u8,
}

/// One billing period: `[start, end)` in UTC, and a stable key naming it (the local year and
/// month in which it starts, `2026-12`), used as part of the high-water mark's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub key: String,
}

impl BillingCalendar {
    /// A calendar from an IANA zone name and the day of the month periods start on.
    pub fn new(time_zone: &str, anchor_day: u8) -> Result<Self, CalendarError> {
        let tz: Tz = time_zone
            .parse()
            .map_err(|_| CalendarError::UnknownTimeZone(time_zone.to_string()))?;
        if !(1..=MAX_ANCHOR_DAY).contains(&anchor_day) {
            return Err(CalendarError::AnchorDay(anchor_day));
        }
        Ok(BillingCalendar { tz, anchor_day })
    }

    /// The default: calendar months in UTC.
    pub fn utc_months() -> Self {
        BillingCalendar {
            tz: Tz::UTC,
            anchor_day: 1,
        }
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    pub fn anchor_day(&self) -> u8 {
        self.anchor_day
    }

    /// The period an instant falls in.
    pub fn period_of(&self, at: DateTime<Utc>) -> Period {
        let local = at.with_timezone(&self.tz);
        let (mut year, mut month) = (local.year(), local.month());
        if local.day() < u32::from(self.anchor_day) {
            (year, month) = previous_month(year, month);
        }
        let mut start = self.local_midnight(year, month);
        if start > at {
            // Only possible when the anchor's midnight is moved forward by a DST gap past `at`.
            (year, month) = previous_month(year, month);
            start = self.local_midnight(year, month);
        }
        let (next_year, next_month) = next_month(year, month);
        Period {
            start,
            end: self.local_midnight(next_year, next_month),
            key: format!("{year:04}-{month:02}"),
        }
    }

    /// The period after `period`.
    pub fn next_period(&self, period: &Period) -> Period {
        self.period_of(period.end)
    }

    /// Start of the anchor day of a month, local time. Where a DST change skips midnight, the
    /// first instant that exists that day; where it repeats, the earlier one.
    fn local_midnight(&self, year: i32, month: u32) -> DateTime<Utc> {
        let date = NaiveDate::from_ymd_opt(year, month, u32::from(self.anchor_day))
            .expect("anchor day exists in every month");
        let mut time = date.and_hms_opt(0, 0, 0).expect("midnight is a time");
        // A gap is at most a few hours; step through it a quarter hour at a time.
        for _ in 0..(4 * 24) {
            match self.tz.from_local_datetime(&time) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(earlier, _) => return earlier.with_timezone(&Utc),
                LocalResult::None => time += Duration::minutes(15),
            }
        }
        unreachable!("no time zone skips a whole day at midnight")
    }
}

fn previous_month(year: i32, month: u32) -> (i32, u32) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

fn next_month(year: i32, month: u32) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

/// When a nightly sync at `hour` (local time of `calendar`'s zone) is next due after `now`.
/// Where DST skips that hour, the first instant after the gap; where it repeats, the first.
pub fn next_sync_at(calendar: &BillingCalendar, hour: u8, now: DateTime<Utc>) -> DateTime<Utc> {
    let local = now.with_timezone(&calendar.tz);
    let mut date = local.date_naive();
    loop {
        let mut time = date
            .and_hms_opt(u32::from(hour.min(23)), 0, 0)
            .expect("an hour of the day is a time");
        let at = loop {
            match calendar.tz.from_local_datetime(&time) {
                LocalResult::Single(t) => break t.with_timezone(&Utc),
                LocalResult::Ambiguous(earlier, _) => break earlier.with_timezone(&Utc),
                LocalResult::None => time += Duration::minutes(15),
            }
        };
        if at > now {
            return at;
        }
        date = date.succ_opt().expect("dates go on");
    }
}

/// The high-water mark after one more observation: counts only ever rise within a period.
pub fn raise_high_water(current: Option<u64>, observed: u64) -> u64 {
    current.map_or(observed, |c| c.max(observed))
}

/// What the mapping says about billing one client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientBilling {
    /// The PSA contract to bill on; `None` when the mapping names none.
    pub contract_id: Option<String>,
    /// Whether the product may add the service to the contract when it is not on it.
    pub add_service: bool,
    /// Per-client overrides of the connection's defaults.
    pub unit_cost: Option<Decimal>,
    pub unit_price: Option<Decimal>,
}

/// The connection's default contract service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDefaults {
    pub name: String,
    pub unit_cost: Decimal,
    pub unit_price: Decimal,
}

/// What the PSA said of the mapped contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractState {
    /// The PSA has no contract with that id (or not for this company).
    Missing,
    /// It exists, but cannot carry usage: `active` false, or `billable_type` false (Autotask:
    /// not a Recurring Service contract; elsewhere: not a recurring agreement/contract).
    Found { active: bool, billable_type: bool },
}

/// The service's line on the contract as the PSA holds it for the current period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLine {
    pub units: u64,
    pub unit_cost: Decimal,
}

/// Everything the decision needs for one client, gathered by the sync job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFacts {
    /// `None`: the client has no mapping (or the mapping has billing off).
    pub billing: Option<ClientBilling>,
    /// `None` when no contract was looked up (the mapping names none).
    pub contract: Option<ContractState>,
    /// The service on the contract, when it is there.
    pub line: Option<ServiceLine>,
    /// The period's high-water mark; `None` when no usage was reported in the period.
    pub high_water: Option<u64>,
}

/// Why a client was not synced; shown in the sync report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    NoMapping,
    NoUsage,
    NoContract,
    ContractMissing,
    ContractInactive,
    ContractWrongType,
    ServiceMissing,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoMapping => "no_mapping",
            SkipReason::NoUsage => "no_usage",
            SkipReason::NoContract => "no_contract",
            SkipReason::ContractMissing => "contract_not_found",
            SkipReason::ContractInactive => "contract_inactive",
            SkipReason::ContractWrongType => "contract_wrong_type",
            SkipReason::ServiceMissing => "service_missing_and_not_allowed_to_add",
        }
    }

    /// A sentence for the report.
    pub fn explain(self) -> &'static str {
        match self {
            SkipReason::NoMapping => "the client is not mapped to a PSA company with billing",
            SkipReason::NoUsage => "no usage was reported for this period",
            SkipReason::NoContract => "the mapping names no contract",
            SkipReason::ContractMissing => "the PSA has no such contract for this company",
            SkipReason::ContractInactive => "the contract is not active",
            SkipReason::ContractWrongType => "the contract cannot carry recurring services",
            SkipReason::ServiceMissing => {
                "the service is not on the contract and the mapping does not allow adding it"
            }
        }
    }
}

/// What to write for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncDecision {
    Skip(SkipReason),
    /// The PSA already holds the period's high-water mark and cost.
    Unchanged,
    /// Put the service on the contract with these units.
    AddService {
        units: u64,
        unit_cost: Decimal,
        unit_price: Decimal,
    },
    /// Change what differs; a `None` part is already right.
    Update {
        units: Option<(u64, u64)>,
        unit_cost: Option<(Decimal, Decimal)>,
    },
}

/// Decide one client's sync. Pure; the sync job gathers [`ClientFacts`] and acts on the answer.
pub fn decide(facts: &ClientFacts, defaults: &ServiceDefaults) -> SyncDecision {
    let Some(billing) = &facts.billing else {
        return SyncDecision::Skip(SkipReason::NoMapping);
    };
    let Some(units) = facts.high_water else {
        return SyncDecision::Skip(SkipReason::NoUsage);
    };
    if billing.contract_id.is_none() {
        return SyncDecision::Skip(SkipReason::NoContract);
    }
    match facts.contract {
        None | Some(ContractState::Missing) => {
            return SyncDecision::Skip(SkipReason::ContractMissing);
        }
        Some(ContractState::Found { active: false, .. }) => {
            return SyncDecision::Skip(SkipReason::ContractInactive);
        }
        Some(ContractState::Found {
            billable_type: false,
            ..
        }) => return SyncDecision::Skip(SkipReason::ContractWrongType),
        Some(ContractState::Found { .. }) => {}
    }
    let unit_cost = billing.unit_cost.unwrap_or(defaults.unit_cost);
    let unit_price = billing.unit_price.unwrap_or(defaults.unit_price);
    let Some(line) = &facts.line else {
        return if billing.add_service {
            SyncDecision::AddService {
                units,
                unit_cost,
                unit_price,
            }
        } else {
            SyncDecision::Skip(SkipReason::ServiceMissing)
        };
    };
    let units_change = (line.units != units).then_some((line.units, units));
    let cost_change = (line.unit_cost != unit_cost).then_some((line.unit_cost, unit_cost));
    if units_change.is_none() && cost_change.is_none() {
        SyncDecision::Unchanged
    } else {
        SyncDecision::Update {
            units: units_change,
            unit_cost: cost_change,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn utc_calendar_months() {
        let cal = BillingCalendar::utc_months();
        let p = cal.period_of(utc("2026-12-04T08:00:00Z"));
        assert_eq!(p.start, utc("2026-12-01T00:00:00Z"));
        assert_eq!(p.end, utc("2027-01-01T00:00:00Z"));
        assert_eq!(p.key, "2026-12");
    }

    #[test]
    fn local_months_follow_the_partners_zone() {
        let cal = BillingCalendar::new("America/New_York", 1).unwrap();
        // 03:00 UTC on the 1st is still the 30th of November in New York.
        let p = cal.period_of(utc("2026-12-01T03:00:00Z"));
        assert_eq!(p.key, "2026-11");
        assert_eq!(p.start, utc("2026-11-01T04:00:00Z")); // EDT until 1 Nov 2026
        assert_eq!(p.end, utc("2026-12-01T05:00:00Z")); // EST
    }

    #[test]
    fn anchor_day_moves_the_start() {
        let cal = BillingCalendar::new("Europe/Berlin", 15).unwrap();
        let p = cal.period_of(utc("2026-12-04T08:00:00Z"));
        assert_eq!(p.key, "2026-11");
        assert_eq!(p.start, utc("2026-11-14T23:00:00Z"));
        assert_eq!(p.end, utc("2026-12-14T23:00:00Z"));
        let january = cal.period_of(utc("2027-01-20T00:00:00Z"));
        assert_eq!(january.key, "2027-01");
    }

    #[test]
    fn midnight_skipped_by_dst_starts_at_the_first_real_instant() {
        // Santiago moves clocks from 00:00 to 01:00 on the first Sunday of September 2026 (6th).
        let cal = BillingCalendar::new("America/Santiago", 6).unwrap();
        let p = cal.period_of(utc("2026-09-10T12:00:00Z"));
        assert_eq!(p.key, "2026-09");
        assert!(p.start <= utc("2026-09-10T12:00:00Z"));
        assert_eq!(p.start, utc("2026-09-06T04:00:00Z")); // 01:00 -03
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(
            BillingCalendar::new("Mars/Olympus", 1),
            Err(CalendarError::UnknownTimeZone("Mars/Olympus".into()))
        );
        assert_eq!(
            BillingCalendar::new("UTC", 29),
            Err(CalendarError::AnchorDay(29))
        );
        assert_eq!(
            BillingCalendar::new("UTC", 0),
            Err(CalendarError::AnchorDay(0))
        );
    }

    #[test]
    fn nightly_sync_is_next_due_at_the_local_hour() {
        let berlin = BillingCalendar::new("Europe/Berlin", 1).unwrap();
        // 08:00 UTC is 09:00 in Berlin: 02:00 has passed today, so tomorrow.
        assert_eq!(
            next_sync_at(&berlin, 2, utc("2026-12-04T08:00:00Z")),
            utc("2026-12-05T01:00:00Z")
        );
        assert_eq!(
            next_sync_at(&berlin, 2, utc("2026-12-04T00:30:00Z")),
            utc("2026-12-04T01:00:00Z")
        );
        // 02:00 does not exist on 29 March 2026 in Berlin: the first instant after the gap.
        assert_eq!(
            next_sync_at(&berlin, 2, utc("2026-03-28T12:00:00Z")),
            utc("2026-03-29T01:00:00Z")
        );
    }

    #[test]
    fn high_water_only_rises() {
        assert_eq!(raise_high_water(None, 7), 7);
        assert_eq!(raise_high_water(Some(9), 7), 9);
        assert_eq!(raise_high_water(Some(9), 12), 12);
    }

    fn defaults() -> ServiceDefaults {
        ServiceDefaults {
            name: "Security seats".into(),
            unit_cost: dec("2.50"),
            unit_price: dec("4.00"),
        }
    }

    fn billable(units: Option<u64>, line: Option<ServiceLine>) -> ClientFacts {
        ClientFacts {
            billing: Some(ClientBilling {
                contract_id: Some("K1".into()),
                add_service: true,
                unit_cost: None,
                unit_price: None,
            }),
            contract: Some(ContractState::Found {
                active: true,
                billable_type: true,
            }),
            line,
            high_water: units,
        }
    }

    #[test]
    fn each_skip_reason() {
        let d = defaults();
        let mut f = billable(Some(5), None);
        f.billing = None;
        assert_eq!(decide(&f, &d), SyncDecision::Skip(SkipReason::NoMapping));
        let f = billable(None, None);
        assert_eq!(decide(&f, &d), SyncDecision::Skip(SkipReason::NoUsage));
        let mut f = billable(Some(5), None);
        f.billing.as_mut().unwrap().contract_id = None;
        assert_eq!(decide(&f, &d), SyncDecision::Skip(SkipReason::NoContract));
        let mut f = billable(Some(5), None);
        f.contract = Some(ContractState::Missing);
        assert_eq!(
            decide(&f, &d),
            SyncDecision::Skip(SkipReason::ContractMissing)
        );
        f.contract = Some(ContractState::Found {
            active: false,
            billable_type: true,
        });
        assert_eq!(
            decide(&f, &d),
            SyncDecision::Skip(SkipReason::ContractInactive)
        );
        f.contract = Some(ContractState::Found {
            active: true,
            billable_type: false,
        });
        assert_eq!(
            decide(&f, &d),
            SyncDecision::Skip(SkipReason::ContractWrongType)
        );
        let mut f = billable(Some(5), None);
        f.billing.as_mut().unwrap().add_service = false;
        assert_eq!(
            decide(&f, &d),
            SyncDecision::Skip(SkipReason::ServiceMissing)
        );
    }

    #[test]
    fn adds_the_service_with_overrides() {
        let mut f = billable(Some(5), None);
        f.billing.as_mut().unwrap().unit_price = Some(dec("3.75"));
        assert_eq!(
            decide(&f, &defaults()),
            SyncDecision::AddService {
                units: 5,
                unit_cost: dec("2.50"),
                unit_price: dec("3.75"),
            }
        );
    }

    #[test]
    fn writes_only_what_differs() {
        let d = defaults();
        let line = |units, cost: &str| ServiceLine {
            units,
            unit_cost: dec(cost),
        };
        assert_eq!(
            decide(&billable(Some(5), Some(line(5, "2.5"))), &d),
            SyncDecision::Unchanged
        );
        assert_eq!(
            decide(&billable(Some(8), Some(line(5, "2.50"))), &d),
            SyncDecision::Update {
                units: Some((5, 8)),
                unit_cost: None
            }
        );
        assert_eq!(
            decide(&billable(Some(5), Some(line(5, "2.00"))), &d),
            SyncDecision::Update {
                units: None,
                unit_cost: Some((dec("2.00"), dec("2.50")))
            }
        );
    }

    proptest! {
        /// Every instant lies in its period, the next period starts where this one ends, and
        /// periods are between 27 and 32 days long (DST shifts included).
        #[test]
        fn periods_tile_time(
            secs in 946_684_800i64..4_102_444_800i64,
            zone in prop::sample::select(vec![
                "UTC", "Europe/Berlin", "America/New_York", "America/Santiago",
                "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham",
            ]),
            anchor in 1u8..=MAX_ANCHOR_DAY,
        ) {
            let cal = BillingCalendar::new(zone, anchor).unwrap();
            let at = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let p = cal.period_of(at);
            prop_assert!(p.start <= at && at < p.end, "{at} not in {p:?}");
            let days = (p.end - p.start).num_hours() as f64 / 24.0;
            prop_assert!((27.0..=32.0).contains(&days), "{days} days");
            let next = cal.next_period(&p);
            prop_assert_eq!(next.start, p.end);
            prop_assert_ne!(next.key, p.key);
        }

        /// The next sync is always in the future, within a day and a bit (DST).
        #[test]
        fn next_sync_is_soon_and_ahead(secs in 946_684_800i64..4_102_444_800i64, hour in 0u8..24) {
            let cal = BillingCalendar::new("America/Santiago", 1).unwrap();
            let now = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let next = next_sync_at(&cal, hour, now);
            prop_assert!(next > now);
            prop_assert!(next - now <= Duration::hours(26), "{now} -> {next}");
        }

        /// A second sync after a successful one writes nothing.
        #[test]
        fn sync_is_idempotent(units in 0u64..100_000, had in proptest::option::of(0u64..100_000)) {
            let d = defaults();
            let facts = billable(Some(units), had.map(|u| ServiceLine { units: u, unit_cost: dec("1") }));
            let after = match decide(&facts, &d) {
                SyncDecision::AddService { units, unit_cost, .. } => ServiceLine { units, unit_cost },
                SyncDecision::Update { units: u, unit_cost: c } => {
                    let line = facts.line.clone().unwrap();
                    ServiceLine {
                        units: u.map_or(line.units, |(_, to)| to),
                        unit_cost: c.map_or(line.unit_cost, |(_, to)| to),
                    }
                }
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            prop_assert_eq!(decide(&billable(Some(units), Some(after)), &d), SyncDecision::Unchanged);
        }
    }
}
