//! How big each HTTP Range request may be.
//!
//! The field failure: a modem receives a whole image in a second, then the ESP32 drains it
//! over the UART for minutes while the TCP connection sits idle, and the carrier NAT drops
//! the mapping. The cure needs no server change: ask only for as much as the device can
//! drain well inside the NAT idle timeout, then ask again (which is traffic, so the
//! mapping lives on). Chunk = drain rate × idle timeout × safety factor, clamped to the
//! profile's bounds.
//!
//! Both inputs are learnt: the drain rate is measured on every chunk, and a connection that
//! dies after being quiet for less than the configured timeout teaches the planner that
//! this network's NAT is shorter (it then creeps back up after clean chunks).

/// The profile's chunk settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkPolicy {
    /// The NAT idle timeout the profile assumes, in microseconds.
    pub nat_idle_us: u64,
    /// Fraction of the timeout a chunk's drain may take, in per mille (500 = half).
    pub safety_permille: u32,
    pub min_chunk: u32,
    pub max_chunk: u32,
    /// A control for the bench, off in every profile: ask for the whole rest of the image in
    /// each request (resume alone, no NAT-paced chunks), so that a run shows what pacing
    /// buys: the drops and the re-sent bytes it avoids.
    pub unpaced: bool,
}

/// The learnt state.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPlanner {
    policy: ChunkPolicy,
    /// Bytes per second from modem buffer to flash, as last measured.
    drain_bps: u32,
    /// The idle time this network is believed to tolerate.
    idle_limit_us: u64,
}

/// The shortest idle timeout the planner will believe in; below this, chunks would be
/// too small to be worth their request.
const MIN_IDLE_US: u64 = 1_000_000;

impl ChunkPlanner {
    /// `initial_drain_bps` is the guess before anything is measured: a fraction of the UART
    /// byte rate.
    pub fn new(policy: ChunkPolicy, initial_drain_bps: u32) -> Self {
        ChunkPlanner {
            policy,
            drain_bps: initial_drain_bps.max(1),
            idle_limit_us: policy.nat_idle_us.max(MIN_IDLE_US),
        }
    }

    /// The size of the next request, given what remains of the image.
    pub fn next_chunk(&self, remaining: u64) -> u32 {
        if self.policy.unpaced {
            return remaining.min(u64::from(u32::MAX)) as u32;
        }
        let budget_us = self.idle_limit_us * u64::from(self.policy.safety_permille) / 1000;
        let by_rate = u64::from(self.drain_bps) * budget_us / 1_000_000;
        let chunk = by_rate.clamp(u64::from(self.policy.min_chunk), u64::from(self.policy.max_chunk));
        chunk.min(remaining) as u32
    }

    /// A chunk of `bytes` took `elapsed_us` from its first body byte to its last.
    pub fn record_drain(&mut self, bytes: u64, elapsed_us: u64) {
        if bytes < 4096 || elapsed_us == 0 {
            return; // too short to say anything about the rate
        }
        let measured = (bytes * 1_000_000 / elapsed_us).min(u64::from(u32::MAX)) as u32;
        // Weighted to the newest measurement, but one odd chunk cannot swing it fully.
        self.drain_bps = ((u64::from(self.drain_bps) + 3 * u64::from(measured)) / 4) as u32;
    }

    /// The connection died after being quiet (no request from us) for `quiet_us`.
    pub fn record_drop(&mut self, quiet_us: u64) {
        if quiet_us < self.idle_limit_us {
            self.idle_limit_us = (quiet_us * 9 / 10).max(MIN_IDLE_US);
        }
    }

    /// A chunk completed cleanly: trust the configured timeout a little more again.
    pub fn record_success(&mut self) {
        self.idle_limit_us = (self.idle_limit_us * 11 / 10).min(self.policy.nat_idle_us.max(MIN_IDLE_US));
    }

    pub fn drain_bps(&self) -> u32 {
        self.drain_bps
    }

    pub fn idle_limit_us(&self) -> u64 {
        self.idle_limit_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: ChunkPolicy = ChunkPolicy {
        nat_idle_us: 59_000_000,
        safety_permille: 500,
        min_chunk: 4096,
        max_chunk: 512 * 1024,
        unpaced: false,
    };

    #[test]
    fn chunk_drains_within_the_safe_part_of_the_timeout() {
        let p = ChunkPlanner::new(SEED, 10_000);
        assert_eq!(p.next_chunk(u64::MAX), 295_000);
        assert_eq!(p.next_chunk(1000), 1000);
    }

    #[test]
    fn a_short_nat_shrinks_chunks_and_clean_chunks_regrow_them() {
        let mut p = ChunkPlanner::new(SEED, 10_000);
        p.record_drop(20_000_000);
        assert_eq!(p.idle_limit_us(), 18_000_000);
        assert_eq!(p.next_chunk(u64::MAX), 90_000);
        p.record_success();
        assert_eq!(p.idle_limit_us(), 19_800_000);
        for _ in 0..50 {
            p.record_success();
        }
        assert_eq!(p.idle_limit_us(), 59_000_000, "never beyond the profile's timeout");
    }

    #[test]
    fn clamps_to_policy() {
        let p = ChunkPlanner::new(SEED, 100);
        assert_eq!(p.next_chunk(u64::MAX), 4096);
        let p = ChunkPlanner::new(SEED, 1_000_000);
        assert_eq!(p.next_chunk(u64::MAX), 512 * 1024);
    }

    #[test]
    fn unpaced_asks_for_the_rest_whatever_the_timeout() {
        let mut p = ChunkPlanner::new(ChunkPolicy { unpaced: true, ..SEED }, 10_000);
        p.record_drop(2_000_000);
        assert_eq!(p.next_chunk(1_900_544), 1_900_544);
    }

    #[test]
    fn drain_rate_follows_measurements() {
        let mut p = ChunkPlanner::new(SEED, 8_000);
        p.record_drain(100_000, 10_000_000);
        assert_eq!(p.drain_bps(), 9_500);
        p.record_drain(100, 1);
        assert_eq!(p.drain_bps(), 9_500, "tiny samples are ignored");
    }
}
