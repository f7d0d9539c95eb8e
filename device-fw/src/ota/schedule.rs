//! When a device with nobody at its console checks for updates and tries them.
//!
//! The rules, from the profile's `[update]` table ([`UpdatePolicy`]):
//!
//! - **Checks**: one within `jitter` of boot (after the start duties), then every
//!   `check_every` plus a fresh draw from `[0, jitter)`. The draws come from a generator
//!   seeded by the device id, so two devices that booted in the same second (a village's
//!   power coming back) drift apart at once, and the same device is reproducible on the
//!   bench.
//! - **Backoff**: after a failed attempt the next one waits `retry_after`, doubling per
//!   consecutive failure up to `retry_max`. The failure count is kept in the journal
//!   ([`ScheduleRecord`]), so a device that crashes while it downloads starts its next life
//!   already backed off: a crash loop cannot become a download loop. The device has no
//!   clock that runs while it is off, so after a reboot the wait starts again from boot:
//!   the error is always towards waiting longer.
//! - **Attempts per day**: at most `max_attempts_per_day` attempts within a day of awake
//!   time (again kept in the journal; time the device was off does not count, so a "day"
//!   can only last longer).
//! - **The app's say**: an attempt also needs the app's [`Permission`] (battery, user
//!   activity, the app's own server), asked at the moment of the attempt.
//!
//! A version that failed its self-test here is never tried again: that is the policy's
//! [`super::policy::Rejection::PreviouslyFailed`], decided from the journal's failed-version
//! record before any of this.
//!
//! This is a state machine that does no I/O (as the planner): the app loop and the fleet
//! bench drive the same code, the bench for ten thousand devices in virtual time.

/// The profile's `[update]` settings, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdatePolicy {
    /// Time between scheduled checks; 0 turns them off (updates only from the console).
    pub check_every_us: u64,
    /// Upper bound of the random delay added to each check, and of the first after boot.
    pub jitter_us: u64,
    /// Wait after the first failed attempt; doubles per consecutive failure.
    pub retry_after_us: u64,
    /// Longest wait between failed attempts.
    pub retry_max_us: u64,
    /// Attempts allowed per day of awake time; 0: no limit.
    pub max_attempts_per_day: u8,
}

/// A day of awake time.
pub const DAY_US: u64 = 24 * 3600 * 1_000_000;

impl Default for UpdatePolicy {
    /// Every 6 h ± 30 min, 15 min after a first failure up to 24 h, 4 attempts a day.
    fn default() -> Self {
        UpdatePolicy {
            check_every_us: 6 * 3600 * 1_000_000,
            jitter_us: 30 * 60 * 1_000_000,
            retry_after_us: 15 * 60 * 1_000_000,
            retry_max_us: DAY_US,
            max_attempts_per_day: 4,
        }
    }
}

/// What the journal keeps of the schedule across reboots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleRecord {
    /// Attempts ever made (it numbers the outcome reports).
    pub attempts: u32,
    /// Consecutive failed attempts; 0 after a success.
    pub failures: u16,
    /// Attempts within the current day window.
    pub day_attempts: u8,
    /// Awake seconds that passed in the current day window before the last save.
    pub day_awake_s: u32,
}

/// Bytes of an encoded [`ScheduleRecord`].
pub const SCHEDULE_RECORD_LEN: usize = 12;

impl ScheduleRecord {
    /// Little-endian: attempts u32, failures u16, day_attempts u8, a reserved 0xFF byte,
    /// day_awake_s u32.
    pub fn encode(&self) -> [u8; SCHEDULE_RECORD_LEN] {
        let mut out = [0xFF; SCHEDULE_RECORD_LEN];
        out[0..4].copy_from_slice(&self.attempts.to_le_bytes());
        out[4..6].copy_from_slice(&self.failures.to_le_bytes());
        out[6] = self.day_attempts;
        out[8..12].copy_from_slice(&self.day_awake_s.to_le_bytes());
        out
    }

    pub fn decode(value: &[u8]) -> Option<Self> {
        if value.len() != SCHEDULE_RECORD_LEN {
            return None;
        }
        let u32_at = |at: usize| u32::from_le_bytes([value[at], value[at + 1], value[at + 2], value[at + 3]]);
        Some(ScheduleRecord {
            attempts: u32_at(0),
            failures: u16::from_le_bytes([value[4], value[5]]),
            day_attempts: value[6],
            day_awake_s: u32_at(8),
        })
    }
}

/// The app's answer to "may I update now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Now,
    /// Not now; ask again at the next check (or at this time, in the app's clock, if sooner).
    Later {
        retry_at_us: Option<u64>,
    },
}

/// Why an attempt is not made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Backing off after failed attempts, until the time given.
    Backoff { until_us: u64, failures: u16 },
    /// The day's attempts are used up, until the time given.
    DailyLimit { until_us: u64, attempts: u8 },
    /// The app said not now.
    Deferred { until_us: Option<u64> },
}

impl Hold {
    pub fn code(&self) -> &'static str {
        match self {
            Hold::Backoff { .. } => "backoff",
            Hold::DailyLimit { .. } => "daily-limit",
            Hold::Deferred { .. } => "deferred",
        }
    }
}

/// SplitMix64: small, fast and good enough to spread check times; not for secrets.
#[derive(Debug, Clone, Copy)]
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, bound)`; 0 when `bound` is 0.
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }
}

/// The schedule of one device since its boot. Times are the app clock's microseconds.
#[derive(Debug, Clone)]
pub struct Schedule {
    policy: UpdatePolicy,
    record: ScheduleRecord,
    draws: Draws,
    /// When this boot began, and when the day window's awake time was last accounted.
    accounted_at: u64,
    next_check_at: Option<u64>,
    /// No attempt before this (backoff).
    retry_at: u64,
    /// The day window ends at this time.
    day_ends_at: u64,
}

impl Schedule {
    /// The schedule of a device that booted at `now_us`, with what its journal kept.
    /// `seed`: from the device id ([`seed_from_id`]).
    pub fn new(policy: UpdatePolicy, record: ScheduleRecord, seed: u64, now_us: u64) -> Self {
        let mut draws = Draws(seed);
        let next_check_at = (policy.check_every_us > 0).then(|| now_us + draws.below(policy.jitter_us));
        let used_us = u64::from(record.day_awake_s) * 1_000_000;
        let mut s = Schedule {
            policy,
            record,
            draws,
            accounted_at: now_us,
            next_check_at,
            retry_at: now_us,
            day_ends_at: now_us + DAY_US.saturating_sub(used_us),
        };
        s.retry_at = now_us + s.backoff_us();
        s
    }

    pub fn policy(&self) -> &UpdatePolicy {
        &self.policy
    }

    pub fn record(&self) -> ScheduleRecord {
        self.record
    }

    /// When the next scheduled check is due (`None`: scheduled checks are off).
    pub fn next_check_at(&self) -> Option<u64> {
        self.next_check_at
    }

    /// A scheduled check starts now: the next is drawn from this one's start, so a check
    /// that takes long (it updated for a minute) does not push the fleet's phase.
    pub fn check_started(&mut self, now_us: u64) {
        if self.policy.check_every_us > 0 {
            self.next_check_at = Some(now_us + self.policy.check_every_us + self.draws.below(self.policy.jitter_us));
        }
    }

    /// The wait the current failure count calls for.
    fn backoff_us(&self) -> u64 {
        match self.record.failures {
            0 => 0,
            n => {
                let doublings = u32::from(n - 1).min(32);
                self.policy
                    .retry_after_us
                    .saturating_mul(1u64 << doublings)
                    .min(self.policy.retry_max_us)
            }
        }
    }

    fn roll_day(&mut self, now_us: u64) {
        if now_us >= self.day_ends_at {
            self.record.day_attempts = 0;
            self.record.day_awake_s = 0;
            self.day_ends_at = now_us + DAY_US;
            self.accounted_at = now_us;
        }
    }

    /// Whether the schedule allows an attempt now (the app's permission is asked after).
    pub fn may_attempt(&mut self, now_us: u64) -> Result<(), Hold> {
        self.roll_day(now_us);
        if now_us < self.retry_at {
            return Err(Hold::Backoff {
                until_us: self.retry_at,
                failures: self.record.failures,
            });
        }
        let max = self.policy.max_attempts_per_day;
        if max > 0 && self.record.day_attempts >= max {
            return Err(Hold::DailyLimit {
                until_us: self.day_ends_at,
                attempts: self.record.day_attempts,
            });
        }
        Ok(())
    }

    /// Folds the awake time since the last save into the day window.
    fn account(&mut self, now_us: u64) {
        let awake_s = (now_us.saturating_sub(self.accounted_at) / 1_000_000) as u32;
        self.record.day_awake_s = self.record.day_awake_s.saturating_add(awake_s);
        self.accounted_at += u64::from(awake_s) * 1_000_000;
    }

    /// An attempt starts: returns its number and the record to save *before* the first
    /// byte is fetched, so that a crash during the attempt still counts it.
    pub fn attempt_started(&mut self, now_us: u64) -> (u32, ScheduleRecord) {
        self.roll_day(now_us);
        self.account(now_us);
        self.record.attempts = self.record.attempts.wrapping_add(1);
        self.record.day_attempts = self.record.day_attempts.saturating_add(1);
        // Until it ends, the attempt counts as failed: a reset mid-download is a failure.
        self.record.failures = self.record.failures.saturating_add(1);
        (self.record.attempts, self.record)
    }

    /// The attempt failed (download, checks, modem): back off. Returns the record to save,
    /// which [`Schedule::attempt_started`] has mostly saved already.
    pub fn attempt_failed(&mut self, now_us: u64) -> ScheduleRecord {
        self.account(now_us);
        self.retry_at = now_us + self.backoff_us();
        self.record
    }

    /// The attempt succeeded (activated, or confirmed after the reboot): the failure count
    /// goes back to 0. Returns the record to save.
    pub fn attempt_succeeded(&mut self, now_us: u64) -> ScheduleRecord {
        self.account(now_us);
        self.record.failures = 0;
        self.retry_at = now_us;
        self.record
    }
}

/// A generator seed from a device id (FNV-1a; any stable mix will do, this one is tiny).
pub fn seed_from_id(device_id: &str) -> u64 {
    device_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;
    const H: u64 = 3600 * S;

    fn policy() -> UpdatePolicy {
        UpdatePolicy::default()
    }

    #[test]
    fn checks_come_every_period_plus_jitter_and_the_first_within_jitter_of_boot() {
        let mut s = Schedule::new(policy(), ScheduleRecord::default(), seed_from_id("a"), 100 * S);
        let first = s.next_check_at().unwrap();
        assert!((100 * S..100 * S + 30 * 60 * S).contains(&first));
        let mut at = first;
        for _ in 0..50 {
            s.check_started(at);
            let next = s.next_check_at().unwrap();
            assert!(next >= at + 6 * H && next < at + 6 * H + 30 * 60 * S, "{next}");
            at = next;
        }
        // Two devices booted together do not check together.
        let other = Schedule::new(policy(), ScheduleRecord::default(), seed_from_id("b"), 100 * S);
        assert_ne!(other.next_check_at(), Some(first));
        // The same device draws the same times (the bench is reproducible).
        let again = Schedule::new(policy(), ScheduleRecord::default(), seed_from_id("a"), 100 * S);
        assert_eq!(again.next_check_at(), Some(first));
        let off = UpdatePolicy {
            check_every_us: 0,
            ..policy()
        };
        assert_eq!(
            Schedule::new(off, ScheduleRecord::default(), 1, 0).next_check_at(),
            None
        );
    }

    #[test]
    fn failures_back_off_doubling_and_survive_a_reboot() {
        let mut s = Schedule::new(policy(), ScheduleRecord::default(), 7, 0);
        assert_eq!(s.may_attempt(0), Ok(()));
        let (n, saved) = s.attempt_started(0);
        assert_eq!((n, saved.failures), (1, 1));
        s.attempt_failed(10 * S);
        assert!(matches!(s.may_attempt(11 * S), Err(Hold::Backoff { failures: 1, .. })));
        let t = 10 * S + 15 * 60 * S;
        assert_eq!(s.may_attempt(t), Ok(()));
        s.attempt_started(t);
        s.attempt_failed(t);
        assert!(s.may_attempt(t + 29 * 60 * S).is_err());
        assert_eq!(s.may_attempt(t + 30 * 60 * S), Ok(()));
        // A crash during the third attempt: the next boot is already backed off by it.
        let (_, on_flash) = s.attempt_started(t + 30 * 60 * S);
        assert_eq!(on_flash.failures, 3);
        let mut rebooted = Schedule::new(policy(), on_flash, 7, 0);
        assert!(matches!(
            rebooted.may_attempt(59 * 60 * S),
            Err(Hold::Backoff {
                until_us,
                failures: 3
            }) if until_us == 60 * 60 * S
        ));
        // Capped at retry_max.
        let many = ScheduleRecord {
            failures: 40,
            ..on_flash
        };
        let mut capped = Schedule::new(policy(), many, 7, 0);
        assert!(capped.may_attempt(DAY_US - 1).is_err());
        // A success resets the count.
        let mut s = Schedule::new(policy(), many, 7, 0);
        assert_eq!(s.attempt_succeeded(S).failures, 0);
        assert_eq!(s.may_attempt(S), Ok(()));
    }

    #[test]
    fn attempts_per_day_are_limited_across_reboots() {
        let p = UpdatePolicy {
            retry_after_us: 0,
            max_attempts_per_day: 2,
            ..policy()
        };
        let mut s = Schedule::new(p, ScheduleRecord::default(), 1, 0);
        s.attempt_started(0);
        s.attempt_failed(H);
        let (_, saved) = s.attempt_started(2 * H);
        assert_eq!(saved.day_attempts, 2);
        assert_eq!(saved.day_awake_s, 2 * 3600);
        assert!(matches!(
            s.may_attempt(3 * H),
            Err(Hold::DailyLimit { attempts: 2, .. })
        ));
        // Rebooted after 2 h awake: the window still has 22 h to run.
        let mut r = Schedule::new(p, saved, 1, 0);
        assert!(matches!(r.may_attempt(21 * H), Err(Hold::DailyLimit { until_us, .. }) if until_us == 22 * H));
        assert_eq!(r.may_attempt(22 * H), Ok(()));
        let unlimited = UpdatePolicy {
            max_attempts_per_day: 0,
            ..p
        };
        let mut u = Schedule::new(unlimited, saved, 1, 0);
        assert_eq!(u.may_attempt(0), Ok(()));
    }

    #[test]
    fn the_schedule_is_a_few_words_of_ram() {
        // What the app keeps for it between checks (README, "A device in the field").
        assert!(
            core::mem::size_of::<Schedule>() <= 112,
            "{}",
            core::mem::size_of::<Schedule>()
        );
        assert_eq!(core::mem::size_of::<ScheduleRecord>(), 12);
    }

    #[test]
    fn the_record_round_trips_and_refuses_other_lengths() {
        let r = ScheduleRecord {
            attempts: 0xDEAD_BEEF,
            failures: 513,
            day_attempts: 3,
            day_awake_s: 86_399,
        };
        assert_eq!(ScheduleRecord::decode(&r.encode()), Some(r));
        assert_eq!(ScheduleRecord::decode(&r.encode()[..11]), None);
    }
}
