//! The bench's benchmark: update strategies side by side in virtual time.
//!
//! `ota-bench --scenario seed-cgnat` replays the field failure (docs/DESIGN.md §1) with each
//! strategy; `ota-bench --scenario random-faults --seeds N` runs the otactl engine through
//! N seeded runs of transient faults; `ota-bench --scenario rural --seeds N` runs it through
//! N seeds of very poor rural coverage; `ota-bench --scenario fleet` runs a virtual fleet
//! through a staged rollout of a good and a bad release. `--json` prints one JSON object
//! per line.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use sim::scenario::{self, RunResult, RunSpec, Strategy};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// The field case: SIM7600 at 115200 baud, a NAT that resets after 59 s; the field's
    /// 233,040-byte image, 1 MiB and a full 1,856 KiB app slot (`--sizes`).
    SeedCgnat,
    /// Seeded transient faults of every kind against the otactl engine.
    RandomFaults,
    /// A power cut at every flash operation of an update, in turn, each followed by reboots.
    PowerCut,
    /// Hostile releases (bad signatures, wrong targets, broken images, replays).
    Hostile,
    /// A virtual fleet over days: the device's schedule and policy, a staged rollout of a
    /// good release, then a bad one the rollout gate must halt at 1 %.
    Fleet,
    /// Very poor rural coverage per seed: 1–20 kB/s, 0.3–2 s round trips, 1–5 % loss,
    /// outages of 10 s to 10 min, deregistration and re-attach, NATs of 30–300 s.
    Rural,
    /// Bytes over the air per form (raw, compressed, delta) for pairs of real firmware
    /// images, beside detools' patches, with the virtual time of the field device's whole
    /// update in each form.
    FewerBytes,
    /// The modem model fitted on one published download timing, then the other published
    /// timings predicted with it (one row per figure, with its source).
    Calibration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormArg {
    Raw,
    Compressed,
    Delta,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BootArg {
    /// Last boots spread over the week before the start (a fleet in steady state).
    Spread,
    /// Every device boots at the start (a fleet-wide power return).
    Sync,
}

#[derive(Debug, Parser)]
#[command(about = "Runs otactl's virtual-bench benchmarks")]
struct Args {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Number of seeds for random-faults.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// Image sizes for seed-cgnat, comma-separated (default: 233040,1048576,1900544).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// The firmware ELF whose RAM seed-cgnat reports (default: otactl-fw for ESP32-C3 in
    /// this target directory).
    #[arg(long)]
    firmware_elf: Option<std::path::PathBuf>,
    /// Power-cut: the new image's payload in bytes (default 69,632: just past one 64 KiB
    /// flash block). A larger one sweeps more operations, e.g. 1048576 for a 1 MiB image.
    #[arg(long)]
    payload_bytes: Option<usize>,
    /// Fewer-bytes: pairs of app images to measure, as `NAME=BASE.bin:NEW.bin`,
    /// comma-separated (default: the firmware pairs `.ci/firmware` leaves in this target
    /// directory, a configuration change and a code change for each chip).
    #[arg(long, value_delimiter = ',')]
    pairs: Option<Vec<String>>,
    /// Power-cut: the forms of the release to sweep, comma-separated (default: all three).
    #[arg(long, value_enum, value_delimiter = ',')]
    forms: Option<Vec<FormArg>>,
    /// First seed (random-faults); with --seeds 1 this replays one seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Worker threads for random-faults (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Print the device engine's events and the injected faults, with virtual time.
    #[arg(long)]
    trace: bool,
    /// Fleet: number of devices.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Fleet: virtual days to run.
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Fleet: the seed (device ids, boot times, network failures).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fleet: jitter of the check times in minutes (default: the profile's, 30).
    #[arg(long)]
    jitter: Option<f64>,
    /// Fleet: how the devices last booted before the start.
    #[arg(long, value_enum, default_value = "spread")]
    boot: BootArg,
    /// Fleet: share of download attempts that fail on the network, in percent.
    #[arg(long, default_value_t = 5.0)]
    net_fail: f64,
    /// Fleet: judged reports a stage needs to advance (default: the profile's).
    #[arg(long)]
    min_reports: Option<u32>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let wall = Instant::now();
    let ok = match args.scenario {
        Scenario::SeedCgnat => seed_cgnat(&args),
        Scenario::RandomFaults => random_faults(&args),
        Scenario::PowerCut => power_cut(&args),
        Scenario::Hostile => hostile(&args),
        Scenario::Fleet => fleet(&args),
        Scenario::Rural => rural(&args),
        Scenario::Calibration => sim::calibration::print(args.json),
        Scenario::FewerBytes => fewer_bytes(&args),
    };
    let wall_s = wall.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::json!({ "wall_s": wall_s }));
    } else {
        println!("wall time: {wall_s:.2} s");
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn rural(args: &Args) -> bool {
    let seeds: Vec<u64> = (args.first_seed..args.first_seed + args.seeds).collect();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(seeds.len()));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                while let Some(&seed) = seeds.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    let mut spec = sim::rural::rural_spec(seed);
                    spec.trace = args.trace;
                    let r = sim::rural::run(&spec);
                    results.lock().expect("results").push(r);
                }
            });
        }
    });
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|r| r.seed);
    let summary = sim::rural::summarise(&results);
    for r in &results {
        if args.json {
            println!("{}", serde_json::to_string(r).expect("json"));
        } else if r.outcome != "updated" || !r.slot_matches {
            println!(
                "seed {} {}: {} (replay: ota-bench --scenario rural --first-seed {} --seeds 1 --trace)",
                r.seed,
                r.outcome,
                r.error.as_deref().unwrap_or("slot differs from the image"),
                r.seed
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary).expect("summary serialises"));
    } else {
        println!(
            "rural: {} seeds, {} updated, {} corrupt; median ratio to the link limit {:.3} (p90 {:.3}, raw {:.3}); airtime overhead {:.3} (max {:.3}); {} outages, {} deregistrations, {} NAT expiries, {} resumes, {:.0} s of virtual time",
            summary.seeds,
            summary.updated,
            summary.corrupt,
            summary.median_ratio_to_link_limit,
            summary.p90_ratio_to_link_limit,
            summary.median_raw_ratio,
            summary.airtime_overhead,
            summary.max_airtime_overhead,
            summary.outages,
            summary.deregistrations,
            summary.nat_drops,
            summary.resumes,
            summary.virtual_s
        );
    }
    summary.updated == summary.seeds && summary.corrupt == 0
}

fn fleet(args: &Args) -> bool {
    let cfg = sim::fleet::FleetConfig {
        devices: args.devices,
        days: args.days,
        seed: args.seed,
        jitter_us: args.jitter.map(|m| (m * 60e6) as u64),
        boot: match args.boot {
            BootArg::Spread => sim::fleet::Boot::Spread,
            BootArg::Sync => sim::fleet::Boot::Sync,
        },
        net_fail_percent: args.net_fail,
        min_reports: args.min_reports,
        // Measured with the device's own HTTP client against the bench origin.
        check_cost: match sim::check_cost::measure_blocking() {
            Ok(cost) => Some(cost),
            Err(e) => {
                eprintln!("fleet: the check cost could not be measured: {e}");
                return false;
            }
        },
    };
    let summary = sim::fleet::run(&cfg);
    if args.json {
        println!("{}", serde_json::to_string(&summary).expect("summary serialises"));
    } else {
        println!("fleet:");
        print!("{}", summary.table());
    }
    summary.gate_held()
}

fn power_cut(args: &Args) -> bool {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let payload = args.payload_bytes.unwrap_or(sim::trust::SWEEP_PAYLOAD);
    let forms = args
        .forms
        .clone()
        .unwrap_or_else(|| vec![FormArg::Raw, FormArg::Compressed, FormArg::Delta]);
    let mut ok = true;
    for form in forms {
        let form = match form {
            FormArg::Raw => sim::trust::Form::Raw,
            FormArg::Compressed => sim::trust::Form::Compressed,
            FormArg::Delta => sim::trust::Form::Delta,
        };
        let (clean, summary) = sim::trust::power_cut_sweep_in(form, jobs, payload, |life| {
            if args.json {
                println!("{}", serde_json::to_string(life).expect("life serialises"));
            } else {
                eprintln!("cut at op {:?}: {life:?}", life.cut_at);
            }
        });
        if args.json {
            println!("{}", serde_json::to_string(&summary).expect("summary serialises"));
        } else {
            println!(
                "power-cut, {form:?} form: {} B image, uncut update {} flash ops ({} block erases) in {:.2} virtual s ({} boots)",
                summary.image_bytes, clean.flash_ops, clean.block_erases, clean.virtual_s, clean.boots
            );
            println!(
                "cuts {}  bricked {}  wrong_image {}  completed {}  resumed_from_journal {}  max_boots {}  ({:.2} s wall)",
                summary.cuts,
                summary.bricked,
                summary.wrong_image,
                summary.completed,
                summary.resumed_from_journal,
                summary.max_boots,
                summary.wall_s
            );
        }
        ok &= clean.completed
            && summary.cuts == summary.flash_ops
            && summary.bricked == 0
            && summary.wrong_image == 0
            && summary.completed == summary.cuts;
    }
    ok
}

fn hostile(args: &Args) -> bool {
    let results = sim::trust::hostile_sweep();
    let mut codes = std::collections::HashSet::new();
    let mut ok = true;
    if !args.json {
        println!("{:<32} {:>8}  {:<30} running_slot_intact", "case", "rejected", "error");
    }
    for r in &results {
        let distinct = r.error.as_ref().is_some_and(|e| codes.insert(e.clone()));
        let good = r.rejected && r.running_slot_intact && r.error.as_deref() == Some(r.expected) && distinct;
        ok &= good;
        if args.json {
            println!("{}", serde_json::to_string(r).expect("result serialises"));
        } else {
            println!(
                "{:<32} {:>8}  {:<30} {}{}",
                r.case,
                r.rejected,
                r.error.as_deref().unwrap_or("-"),
                r.running_slot_intact,
                if good {
                    String::new()
                } else {
                    format!("   <-- expected {}", r.expected)
                }
            );
        }
    }
    let summary = serde_json::json!({
        "scenario": "hostile",
        "cases": results.len(),
        "rejected": results.iter().filter(|r| r.rejected).count(),
        "distinct_errors": codes.len(),
        "running_slot_intact": results.iter().filter(|r| r.running_slot_intact).count(),
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "{} cases, {} rejected with {} distinct errors, running slot intact in {}",
            summary["cases"], summary["rejected"], summary["distinct_errors"], summary["running_slot_intact"]
        );
    }
    ok
}

fn seed_cgnat(args: &Args) -> bool {
    let sizes = args.sizes.clone().unwrap_or_else(|| scenario::SEED_SIZES.to_vec());
    let results: Vec<RunResult> = sizes
        .iter()
        .flat_map(|&size| seed_rows(size))
        .map(|spec| scenario::run(&spec))
        .collect();
    let chip = sim::chip_ram::measure(args.firmware_elf.as_deref());
    let summary = seed_summary(&results, &sizes, &chip);
    if args.json {
        for r in &results {
            println!("{}", serde_json::to_string(r).expect("json"));
        }
        println!("{summary}");
    } else {
        println!(
            "{:<21} {:>9} {:>8} {:>10} {:>10} {:>10} {:>7} {:>9} {:>6} {:>8}",
            "strategy",
            "size",
            "outcome",
            "virtual_s",
            "written",
            "uart_lim_s",
            "ratio",
            "nat_drops",
            "chunks",
            "airtime"
        );
        for r in &results {
            println!(
                "{:<21} {:>9} {:>8} {:>10.2} {:>10} {:>10.2} {:>7.3} {:>9} {:>6} {:>8.3}",
                r.strategy,
                r.image_bytes,
                r.outcome,
                r.virtual_s,
                r.bytes_written,
                r.uart_limit_s,
                r.ratio,
                r.nat_drops,
                r.chunks.map_or("-".into(), |c| c.to_string()),
                r.airtime_overhead
            );
        }
        println!(
            "data path RAM: {} bytes, measured on {}",
            summary["data_path_ram_bytes"],
            summary["ram_target"].as_str().unwrap_or("?")
        );
        println!("CPU model (otactl rows): {}", summary["cpu_model"]);
        for (goal, met) in summary["goals"].as_object().expect("goals") {
            println!("goal {goal}: {}", if met == true { "met" } else { "NOT met" });
        }
    }
    // A naive download behind the NAT is expected to fail; every other row must finish.
    results
        .iter()
        .all(|r| r.error.is_none() || (r.strategy.starts_with("naive") && !r.strategy.starts_with("naive-no-nat")))
}

/// The rows of seed-cgnat for one image size: the same world, only the device side (and,
/// for `ratelimit` and `naive-no-nat`, the server or the APN) changes.
fn seed_rows(size: usize) -> Vec<RunSpec> {
    let seed = |strategy| RunSpec {
        image_bytes: size,
        ..RunSpec::seed(strategy)
    };
    let naive = seed(Strategy::Naive);
    // TinyGSM with `TINY_GSM_RX_BUFFER` raised to one modem read (1460 B).
    let mut rx1460 = seed(Strategy::Naive);
    rx1460.read_block = Some(1460);
    let mut no_nat = seed(Strategy::Naive);
    no_nat.nat.idle_timeout = None;
    let mut ratelimit = seed(Strategy::Naive);
    ratelimit.origin.rate_limit = Some(2048);
    let mut rtscts = seed(Strategy::Otactl);
    rtscts.flow_control = true;
    let otactl = seed(Strategy::Otactl);
    // Resume alone: what the engine would pay without NAT-paced chunks.
    let mut no_pacing = seed(Strategy::Otactl);
    no_pacing.pacing = false;
    // The same modem raised to 921600 baud after power-on (`modem.fast_baud`).
    let mut fast = seed(Strategy::Otactl);
    fast.fast_baud = Some(921_600);
    let mut fast_rtscts = fast.clone();
    fast_rtscts.flow_control = true;
    // The same update over https://, the modem doing the TLS (SIM7600 `AT+CCH*`).
    let mut tls = seed(Strategy::Otactl);
    tls.tls = Some(sim::scenario::TlsSpec::trusted());
    // The same case on a SIM7080 (its `CA*` stack), over http:// and https:// (its SSL reads
    // are at most 512 bytes, docs/at-dialects.md).
    let mut sim7080 = seed(Strategy::Otactl);
    sim7080.dialect = sim::modem::Dialect::Sim7080;
    let mut sim7080_tls = sim7080.clone();
    sim7080_tls.tls = Some(sim::scenario::TlsSpec::trusted());
    vec![
        naive,
        rx1460,
        no_nat,
        ratelimit,
        rtscts,
        otactl,
        no_pacing,
        fast_rtscts,
        tls,
        fast,
        sim7080,
        sim7080_tls,
    ]
}

/// The summary line: the chip's RAM figure and the goals, each with whether it was met.
fn seed_summary(results: &[RunResult], sizes: &[usize], chip: &sim::chip_ram::ChipRam) -> serde_json::Value {
    let rows = |name: &'static str| results.iter().filter(move |r| r.strategy == name);
    let paced_otactl = results
        .iter()
        .filter(|r| r.strategy.starts_with("otactl") && !r.strategy.contains("no-pacing"));
    let large = |r: &&RunResult| r.image_bytes > scenario::SEED_IMAGE_BYTES as u64;
    let goals = serde_json::json!({
        // The profile's NAT timeout (59 s) is the network's in every seed-cgnat row.
        "otactl_no_drops_airtime_le_1_02": paced_otactl.clone().all(|r| r.nat_drops == 0 && r.airtime_overhead <= 1.02),
        "otactl_ratio_le_1_40_every_size": rows("otactl").all(|r| r.outcome == "updated" && r.ratio <= 1.40),
        "otactl_921600_seed_under_10_s": rows("otactl-921600")
            .filter(|r| r.image_bytes == scenario::SEED_IMAGE_BYTES as u64)
            .all(|r| r.outcome == "updated" && r.virtual_s < 10.0),
        "naive_fails_behind_nat_at_large_sizes": results
            .iter()
            .filter(|r| r.strategy == "naive" || r.strategy.starts_with("naive-rx"))
            .filter(large)
            .all(|r| r.outcome == "failed"),
        "otactl_chunks_at_large_sizes": rows("otactl").filter(large).all(|r| r.chunks.unwrap_or(0) > 1),
        // At the seed size the first paced chunk already holds the whole image, so the two
        // rows are the same download there; the cost shows at the larger sizes.
        "no_pacing_costs_drops_and_airtime": sizes.iter().all(|&s| {
            let at = |name| rows(name).find(|r| r.image_bytes == s as u64);
            match (at("otactl"), at("otactl-no-pacing")) {
                (Some(p), Some(n)) => s == scenario::SEED_IMAGE_BYTES
                    || (n.nat_drops > 0 && n.airtime_overhead > p.airtime_overhead),
                _ => false,
            }
        }),
    });
    serde_json::json!({
        "scenario": "seed-cgnat",
        "summary": true,
        "sizes": sizes,
        "data_path_ram_bytes": chip.bytes,
        "ram_target": chip.target,
        "static_ram_bytes": chip.static_bytes,
        "all_slots_match": paced_otactl.clone().all(|r| r.slot_matches),
        "goals": goals,
        // What the otactl rows' CPU time is charged with, and where each figure comes from.
        "cpu_model": scenario::cpu_model_json(),
        "otactl_path": "the shipped update(): signed manifest fetch and check, journal, download, slot read-back, otadata",
    })
}

fn random_faults(args: &Args) -> bool {
    let wall = Instant::now();
    let seeds: Vec<u64> = (args.first_seed..args.first_seed + args.seeds).collect();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(seeds.len()));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&seed) = seeds.get(i) else { break };
                    let mut spec = scenario::random_fault_spec(seed);
                    spec.trace = args.trace;
                    let r = scenario::run(&spec);
                    results.lock().expect("results").push(r);
                }
            });
        }
    });
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|r| r.seed);
    let updated = results
        .iter()
        .filter(|r| r.outcome == "updated" && r.slot_matches)
        .count();
    let corrupt = results
        .iter()
        .filter(|r| r.outcome == "updated" && !r.slot_matches)
        .count();
    let failing: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.outcome != "updated" || !r.slot_matches)
        .collect();
    let resumes: u64 = results.iter().map(|r| u64::from(r.resumes)).sum();
    let nat_drops: u64 = results.iter().map(|r| r.nat_drops).sum();
    let virtual_s: f64 = results.iter().map(|r| r.virtual_s).sum();
    let faults: u64 = results.iter().map(|r| r.faults).sum();
    let uart_bytes_lost: u64 = results.iter().map(|r| r.uart_bytes_lost).sum();
    let idle_uart_bytes_lost: u64 = results.iter().map(|r| r.idle_uart_bytes_lost).sum();
    let lossy: Vec<u64> = results
        .iter()
        .filter(|r| r.uart_bytes_lost > 0)
        .filter_map(|r| r.seed)
        .collect();
    let retried = results.iter().filter(|r| r.attempts > 1).count();
    // Seeds take the raw image, the compressed form and a patch in turn.
    let by_form = |suffix: &str| {
        let of: Vec<&RunResult> = results
            .iter()
            .filter(|r| match suffix {
                "raw" => !r.strategy.ends_with("-compressed") && !r.strategy.ends_with("-delta"),
                _ => r.strategy.ends_with(&format!("-{suffix}")),
            })
            .collect();
        let updated = of.iter().filter(|r| r.outcome == "updated" && r.slot_matches).count();
        let faults: u64 = of.iter().map(|r| r.faults).sum();
        serde_json::json!({"seeds": of.len(), "updated": updated, "faults": faults})
    };
    let forms =
        serde_json::json!({"raw": by_form("raw"), "compressed": by_form("compressed"), "delta": by_form("delta")});
    for r in &failing {
        if args.json {
            println!("{}", serde_json::to_string(r).expect("json"));
        } else {
            println!(
                "seed {} {}: {} (replay: ota-bench --scenario random-faults --first-seed {} --seeds 1)",
                r.seed.unwrap_or(0),
                r.outcome,
                r.error.as_deref().unwrap_or("slot differs from the image"),
                r.seed.unwrap_or(0)
            );
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "scenario": "random-faults", "seeds": results.len(), "updated": updated, "corrupt": corrupt,
                "failed_seeds": failing.iter().filter_map(|r| r.seed).collect::<Vec<_>>(),
                "faults": faults, "resumes": resumes, "nat_drops": nat_drops, "virtual_s": virtual_s,
                "uart_bytes_lost": uart_bytes_lost, "lossy_seeds": lossy,
                "idle_uart_bytes_lost": idle_uart_bytes_lost, "retried_by_the_app": retried,
                "forms": forms, "wall_s": wall.elapsed().as_secs_f64(),
            })
        );
    } else {
        println!(
            "random-faults: {} seeds, {updated} updated ({retried} after the app's next attempt), {corrupt} corrupt, {} failed; {faults} faults injected, {resumes} resumes, {nat_drops} NAT expiries, {uart_bytes_lost} UART bytes lost in downloads (seeds {lossy:?}), {idle_uart_bytes_lost} while idle between attempts, {virtual_s:.0} s of virtual time",
            results.len(),
            failing.len() - corrupt
        );
        for form in ["raw", "compressed", "delta"] {
            let f = &forms[form];
            println!(
                "  {form}: {} seeds, {} updated, {} faults",
                f["seeds"], f["updated"], f["faults"]
            );
        }
    }
    failing.is_empty() && lossy.is_empty()
}

fn fewer_bytes(args: &Args) -> bool {
    use sim::fewer_bytes::{DETOOLS, default_pairs, detools, measure, parse_pair};
    let pairs = match &args.pairs {
        Some(list) => match list.iter().map(|p| parse_pair(p)).collect::<Result<Vec<_>, _>>() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("fewer-bytes: {e}");
                return false;
            }
        },
        None => default_pairs(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")),
    };
    let mut ok = true;
    let mut all = Vec::new();
    for pair in &pairs {
        if let Some(missing) = [&pair.base, &pair.new].into_iter().find(|p| !p.exists()) {
            eprintln!(
                "fewer-bytes: {}: {} is missing: build the pairs with `bash .ci/firmware`, or pass --pairs NAME=BASE.bin:NEW.bin",
                pair.name,
                missing.display()
            );
            ok = false;
            continue;
        }
        let theirs = match detools(pair) {
            Ok(d) => Some(d),
            Err(e) => {
                sim::required_tool::missing("fewer-bytes", "detools", &e);
                None
            }
        };
        let rows = match measure(pair, theirs) {
            Ok(rows) => rows,
            Err(e) => {
                eprintln!("fewer-bytes: {}: {e}", pair.name);
                ok = false;
                continue;
            }
        };
        for row in rows {
            ok &= row.completed;
            all.push(row.clone());
            if args.json {
                println!("{}", serde_json::to_string(&row).expect("rows serialise"));
            } else {
                let theirs = match (row.detools_bytes, row.detools_lzma_bytes) {
                    (Some(h), Some(l)) => format!("  detools {h} (heatshrink) / {l} (lzma)"),
                    _ => String::new(),
                };
                println!(
                    "{:<48} {:<10} {:>9} B {:>6.3} of raw  seed {:>6.2} s ({:.3})  update {:>6.2} s ({:.3}){theirs}{}",
                    row.pair,
                    format!("{:?}", row.form).to_lowercase(),
                    row.bytes,
                    row.ratio_to_raw,
                    row.seed_virtual_s,
                    row.seed_time_ratio_to_raw,
                    row.update_virtual_s,
                    row.time_ratio_to_raw,
                    if row.completed { "" } else { "  NOT COMPLETED" }
                );
            }
        }
    }
    let goals = sim::fewer_bytes::goals(&all);
    if args.json {
        println!(
            "{}",
            serde_json::json!({"scenario": "fewer-bytes", "summary": true, "detools": DETOOLS, "goals": goals})
        );
    } else {
        println!("detools: {DETOOLS}");
        for (goal, met) in goals.as_object().expect("goals") {
            println!("goal {goal}: {}", if met == true { "met" } else { "NOT met" });
        }
    }
    ok
}
