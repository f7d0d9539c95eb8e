//! One device of the fleet: its journal's schedule record, its running and failed versions,
//! and what it does at each wake-up, on the device's own schedule and policy code.
//!
//! An attempt, in virtual time: a manifest check (a `304` when the manifest did not change
//! since the last one the device saw), the policy's decision, the schedule's permission
//! (backoff, attempts per day), the download (cost model; it may fail on the network and then
//! resumes from the journal's offset next time), activation and reboot, the self-test,
//! confirm or roll back, and an outcome report.

use device_fw::ota::policy::{DeviceIdentity, check_manifest};
use device_fw::ota::schedule::{Hold, Schedule, ScheduleRecord, UpdatePolicy, seed_from_id};
use device_fw::wire::report::{MAX_REPORT, Outcome, Report, SCHEMA};
use sha2::{Digest, Sha256};

use super::{BAD, BOARD_B_PERCENT, Ev, RELEASES, World};

/// SplitMix64, one per device: a device's draws do not depend on the order other devices'
/// events run in.
#[derive(Debug, Clone)]
pub(super) struct Rng64(u64);

impl Rng64 {
    pub(super) fn new(seed: u64) -> Self {
        Rng64(seed)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The attempt a device is in the middle of.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    release: usize,
    /// What ran before it (what a rollback returns to).
    from: usize,
    /// The attempt's number from the schedule (it numbers the report).
    number: u32,
    /// Whether the release's rollout admitted this device when it decided, judged by the
    /// bench from the channel's state, not by the device.
    admitted: bool,
    /// The download stops on the network before its end.
    fails: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Device {
    pub(super) id: String,
    /// Board revision B fails the bad release's self-test.
    pub(super) board_b: bool,
    fail_rate: f64,
    rng: Rng64,
    seed: u64,
    /// Virtual time of the current boot: the app clock's zero.
    boot_at: i64,
    schedule: Schedule,
    /// What the journal holds of the schedule.
    saved: ScheduleRecord,
    pub(super) running: usize,
    pub(super) failed: Option<usize>,
    /// The manifest generation whose validators the device keeps (`None`: never fetched).
    known: Option<u32>,
    /// A download that stopped part way: its release and the bytes the journal has.
    resume: Option<(usize, u32)>,
    /// A retry the device waits for after a failed attempt (virtual time).
    retry_at: Option<u64>,
    attempt: Option<InFlight>,
    /// Installs (activations) per release.
    pub(super) installs: [u32; RELEASES.len()],
}

/// Board revision from the device id: its own hash domain, so it is independent of the
/// rollout cohort and of the check times.
fn board_b(id: &str) -> bool {
    let d = Sha256::new()
        .chain_update(b"bench-board-rev\0")
        .chain_update(id.as_bytes())
        .finalize();
    u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]])) % 100 < BOARD_B_PERCENT
}

impl Device {
    /// A device running the first release that booted at `boot_at` (≤ 0) and has checked on
    /// its schedule since, finding nothing new, up to t = 0.
    pub(super) fn new(id: String, fail_rate: f64, rng: Rng64, boot_at: i64, policy: UpdatePolicy) -> Self {
        let seed = seed_from_id(&id);
        let mut schedule = Schedule::new(policy, ScheduleRecord::default(), seed, 0);
        let mut known = None;
        while let Some(at) = schedule.next_check_at()
            && boot_at + (at as i64) < 0
        {
            schedule.check_started(at);
            known = Some(0);
        }
        Device {
            board_b: board_b(&id),
            id,
            fail_rate,
            rng,
            seed,
            boot_at,
            schedule,
            saved: ScheduleRecord::default(),
            running: 0,
            failed: None,
            known,
            resume: None,
            retry_at: None,
            attempt: None,
            installs: [0; RELEASES.len()],
        }
    }

    /// The app clock at virtual time `now`.
    fn local(&self, now: u64) -> u64 {
        (now as i64 - self.boot_at) as u64
    }

    fn global(&self, local: u64) -> u64 {
        (self.boot_at + local as i64).max(0) as u64
    }

    /// A boot at `now`: the app clock restarts and the schedule starts from what the journal
    /// kept, decoded from its on-flash form.
    fn reboot(&mut self, now: u64, policy: UpdatePolicy) {
        self.boot_at = now as i64;
        let record = ScheduleRecord::decode(&self.saved.encode()).expect("a record decodes");
        self.schedule = Schedule::new(policy, record, self.seed, 0);
    }

    /// The next wake-up: the scheduled check, or a retry if one is due sooner.
    fn next_wake(&self) -> Option<u64> {
        let check = self.schedule.next_check_at().map(|c| self.global(c));
        match (check, self.retry_at) {
            (Some(c), Some(r)) => Some(c.min(r)),
            (c, r) => c.or(r),
        }
    }
}

impl World {
    pub(super) fn schedule_wake(&mut self, i: usize) {
        if let Some(at) = self.devices[i].next_wake() {
            self.push(at, Ev::Wake(i));
        }
    }

    /// A scheduled check or a retry: fetch the manifest, decide, and maybe start an attempt.
    pub(super) fn on_wake(&mut self, i: usize, now: u64) {
        let d = &mut self.devices[i];
        let local = d.local(now);
        let check_due = d.schedule.next_check_at().is_some_and(|c| d.global(c) <= now);
        if d.retry_at.is_some_and(|r| r <= now) {
            d.retry_at = None;
            if !check_due {
                self.metrics.retries += 1;
            }
        }
        if check_due {
            d.schedule.check_started(local);
            self.metrics.checks += 1;
        }
        self.metrics.request(now);
        if d.known == Some(self.channel.generation) {
            self.metrics.manifest_unchanged += 1;
        } else {
            self.metrics.manifest_full += 1;
            d.known = Some(self.channel.generation);
        }

        let t = &self.target;
        let release = self.channel.current;
        let manifest = self.channel.manifest(&t.product, &t.channel, t.chip, &t.board);
        let identity = DeviceIdentity {
            product: &t.product,
            channel: &t.channel,
            chip: t.chip,
            board: &t.board,
            running_version: RELEASES[d.running],
            secure_version: 1,
            failed_version: d.failed.map(|f| RELEASES[f]),
            slot_size: t.slot_size,
            device_id: &d.id,
        };
        if let Err(r) = check_manifest(&manifest, &identity) {
            *self.metrics.rejections.entry(r.code()).or_default() += 1;
            d.retry_at = None;
            return self.schedule_wake(i);
        }
        match d.schedule.may_attempt(local) {
            Ok(()) => {}
            Err(hold) => {
                match hold {
                    Hold::Backoff { until_us, .. } => {
                        self.metrics.backoff_holds += 1;
                        d.retry_at = Some(d.global(until_us));
                    }
                    Hold::DailyLimit { until_us, .. } => {
                        self.metrics.daily_limit_holds += 1;
                        d.retry_at = Some(d.global(until_us));
                    }
                    // The bench's app never defers; the next check asks again.
                    Hold::Deferred { .. } => d.retry_at = None,
                }
                return self.schedule_wake(i);
            }
        }

        // The bench's own judgement of the same decision, from the channel's state at this
        // moment: the cohort bucket and the listed ids, not the device's code path.
        let admitted = self.channel.audit_admits(&t.product, &d.id, release);
        let (number, record) = d.schedule.attempt_started(local);
        d.saved = record;
        self.metrics.attempts += 1;

        let image = self.cost.image_bytes;
        let from = match d.resume {
            Some((r, offset)) if r == release => offset,
            _ => 0,
        };
        let remaining = image - from;
        let full_us = self.cost.download_us(remaining);
        let requests = self.cost.requests_for(remaining).max(1);
        let fails = d.rng.unit() < d.fail_rate;
        let (took_us, got, made) = if fails {
            let f = d.rng.unit();
            let made = ((f * f64::from(requests)).ceil() as u32).max(1);
            ((full_us as f64 * f) as u64, (f64::from(remaining) * f) as u32, made)
        } else {
            (full_us, remaining, requests)
        };
        for k in 0..made {
            self.metrics.request(now + full_us * u64::from(k) / u64::from(requests));
        }
        self.metrics.image_bytes += u64::from(got);
        self.metrics.download_started();
        d.resume = fails.then_some((release, from + got));
        d.attempt = Some(InFlight {
            release,
            from: d.running,
            number,
            admitted,
            fails,
        });
        self.push(now + took_us, Ev::DownloadEnd(i));
    }

    pub(super) fn on_download_end(&mut self, i: usize, now: u64) {
        self.metrics.download_ended();
        let d = &mut self.devices[i];
        let a = d.attempt.expect("a download belongs to an attempt");
        if a.fails {
            let local = d.local(now);
            d.saved = d.schedule.attempt_failed(local);
            d.attempt = None;
            self.metrics.download_failures += 1;
            // With no backoff configured the next scheduled check is the retry.
            d.retry_at = match d.schedule.may_attempt(local) {
                Err(Hold::Backoff { until_us, .. } | Hold::DailyLimit { until_us, .. }) => Some(d.global(until_us)),
                _ => None,
            };
            self.report(
                i,
                a.release,
                a.from,
                Outcome::Failed,
                Some("download-gave-up"),
                a.number,
            );
            return self.schedule_wake(i);
        }
        // Verified and activated: this is an install.
        d.installs[a.release] += 1;
        self.metrics.installed(a.admitted);
        let at = now + self.cost.reboot_us() + self.cost.self_test_us();
        self.push(at, Ev::Booted(i));
    }

    /// The new app booted and ran its self-test: confirm, or mark itself invalid and reboot.
    pub(super) fn on_booted(&mut self, i: usize, now: u64) {
        let (policy, self_test_us) = (self.policy, self.cost.self_test_us());
        let d = &mut self.devices[i];
        let a = d.attempt.expect("a boot after an activation");
        d.reboot(now - self_test_us, policy);
        d.running = a.release;
        if a.release == BAD && d.board_b {
            self.metrics.rollbacks += 1;
            let at = now + self.cost.reboot_us();
            return self.push(at, Ev::RolledBack(i));
        }
        let local = d.local(now);
        d.saved = d.schedule.attempt_succeeded(local);
        // As the app does after a confirm: the next check a whole period on.
        d.schedule.check_started(local);
        d.attempt = None;
        d.retry_at = None;
        self.metrics.confirmed += 1;
        self.report(i, a.release, a.release, Outcome::Confirmed, None, a.number);
        self.schedule_wake(i);
    }

    /// The previous app runs again and remembers the version that failed here.
    pub(super) fn on_rolled_back(&mut self, i: usize, now: u64) {
        let policy = self.policy;
        let d = &mut self.devices[i];
        let a = d.attempt.take().expect("a rollback after a boot");
        d.reboot(now, policy);
        d.running = a.from;
        d.failed = Some(a.release);
        d.retry_at = None;
        self.report(
            i,
            a.release,
            a.from,
            Outcome::RolledBack,
            Some("self-test-failed"),
            a.number,
        );
        self.schedule_wake(i);
    }

    /// The device writes its report as on the chip; the receiver parses it as `otactl serve`
    /// does; the operator's tallies count what was parsed.
    fn report(&mut self, i: usize, release: usize, running: usize, outcome: Outcome, reason: Option<&str>, n: u32) {
        let d = &self.devices[i];
        let report = Report {
            schema: SCHEMA,
            device: d.id.as_str(),
            product: &self.target.product,
            channel: &self.target.channel,
            version: RELEASES[release],
            running: RELEASES[running],
            outcome,
            reason,
            attempt: n,
        };
        let mut body = [0u8; MAX_REPORT];
        let len = report.write_json(&mut body).expect("a report fits");
        let parsed = Report::parse(&body[..len]).expect("the receiver accepts a device's report");
        self.metrics.reports += 1;
        self.operator
            .receive(&parsed, &self.target.product, &self.target.channel);
    }
}
