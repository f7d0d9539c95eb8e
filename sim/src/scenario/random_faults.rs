//! The random-faults scenario: a seed draws the world (modem, NAT, keep-alive, wiring, UART
//! rate, the form of the release) and the transient faults injected while the update runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use super::{Faults, RunSpec, SeedForm, Strategy, image};
use crate::modem::{Dialect as EmuDialect, ModemHandle};
use crate::net::{NatConfig, NatExpiry, Network};
use crate::origin::{OriginBehaviour, OriginHandle};
use crate::time;

/// Transient faults at seeded random moments: disconnects (reset and silent), bursts of
/// unsolicited lines, garbage on the UART, 5xx bursts, a server ignoring Range for a
/// while, modem reboots and packet-network loss.
const FAULT_NAMES: [&str; 10] = [
    "disconnect (reset)",
    "disconnect (silent drop)",
    "unsolicited lines",
    "unsolicited lines",
    "garbage on the UART",
    "garbage on the UART",
    "5xx burst",
    "server ignores Range once",
    "modem reboot",
    "packet network lost",
];

pub(super) async fn inject_random_faults(
    seed: u64,
    net: Network,
    modem: ModemHandle,
    origin: OriginHandle,
    count: Arc<AtomicU64>,
    trace: bool,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_FA17);
    const URCS: [&str; 6] = [
        "SMS DONE",
        "PB DONE",
        "+CPIN: READY",
        "+CGEV: NW PDN DEACT 1",
        "+CMTI: \"SM\",4",
        "+CSQ: 17,99",
    ];
    loop {
        let gap = Duration::from_millis(rng.random_range(2_000..20_000));
        time::sleep(gap).await;
        count.fetch_add(1, Ordering::Relaxed);
        let kind = rng.random_range(0..10u32);
        if trace {
            eprintln!(
                "[{:>9.3} s] fault {}",
                time::now().as_secs_f64(),
                FAULT_NAMES[kind as usize]
            );
        }
        match kind {
            0 => net.disconnect_all(NatExpiry::Reset),
            1 => net.disconnect_all(NatExpiry::Drop),
            2 | 3 => {
                for _ in 0..rng.random_range(1..6) {
                    modem.inject_urc(URCS[rng.random_range(0..URCS.len())]);
                }
            }
            4 | 5 => {
                let n = rng.random_range(1..24);
                let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                modem.inject_garbage(&junk);
            }
            6 => origin.set_behaviour(|b| b.fail_next = rng.random_range(1..4)),
            7 => origin.set_behaviour(|b| b.ignore_range_next = 1),
            8 => modem.reset(),
            _ => modem.network_lost(),
        }
    }
}

impl RunSpec {
    /// Seeds take the three forms in turn (without a draw, so the seed's other draws stay
    /// what they were): the raw image, its compressed form, and a patch from an older image
    /// that shares the new one's first half but for a changed kilobyte and a removed
    /// function, and not its second half (so the patch is long enough for faults to meet).
    fn in_form_of_seed(mut self, seed: u64) -> RunSpec {
        self.form = match seed % 3 {
            0 => SeedForm::Raw,
            1 => SeedForm::Compressed,
            _ => {
                let new = image(self.image_bytes, self.image_seed);
                let half = new.len() / 2;
                let mut base = new[..half].to_vec();
                base[half / 3..half / 3 + 1024].copy_from_slice(&image(1024, seed ^ 0x5EED));
                base.drain(2 * half / 3..2 * half / 3 + 600);
                base.extend_from_slice(&image(half, seed ^ 0xBA5E));
                self.image = Some(new.into());
                SeedForm::Delta { base: base.into() }
            }
        };
        self
    }
}

/// The random-fault scenario for one seed: a smaller image so a thousand seeds stay fast,
/// a NAT whose timeout and behaviour are drawn from the seed (and may be shorter than the
/// profile assumes).
pub fn random_fault_spec(seed: u64) -> RunSpec {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dialect = if rng.random_bool(0.5) {
        EmuDialect::Sim7600
    } else {
        EmuDialect::Sim7080
    };
    let idle = Duration::from_secs(rng.random_range(8..90));
    let on_expiry = if rng.random_bool(0.5) {
        NatExpiry::Reset
    } else {
        NatExpiry::Drop
    };
    RunSpec {
        scenario: "random-faults".into(),
        strategy: Strategy::Otactl,
        dialect,
        image_bytes: rng.random_range(96 * 1024..400 * 1024),
        image_seed: seed,
        baud: 115_200,
        nat: NatConfig {
            idle_timeout: Some(idle),
            on_expiry,
        },
        profile_nat_idle: Duration::from_secs(30),
        // Apache's 5 s keep-alive or nginx's 75 s: the NAT or the server may end an idle
        // connection first.
        origin: OriginBehaviour {
            keep_alive_timeout: Duration::from_secs(if rng.random_bool(0.5) { 5 } else { 75 }),
            ..OriginBehaviour::default()
        },
        modem_rx_buffer: 512 * 1024,
        // Both wirings: erases between reads (no RTS/CTS) and during them.
        flow_control: rng.random_bool(0.5),
        // Drawn last, so that the draws above stay what they were for each seed.
        fast_baud: rng.random_bool(0.5).then_some(921_600),
        pacing: true,
        faults: Faults::Random { seed },
        tls: None,
        deadline: Duration::from_secs(4 * 3600),
        trace: false,
        read_block: None,
        command_latency: None,
        image: None,
        form: SeedForm::Raw,
    }
    .in_form_of_seed(seed)
}
