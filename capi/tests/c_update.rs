//! A C program drives a whole update through the C ABI: `tests/c/update.c`, compiled with the
//! system C compiler and linked against this crate's host staticlib, talks to the bench's
//! SIM7600 emulator over a Unix socket (real time) and keeps the flash in a file. It checks
//! (nothing written), then updates; the bench boots that flash with the ESP-IDF bootloader's
//! rules and checks what the C program wrote: the signed image in the inactive slot, otadata
//! selecting it, and, after the C program's start duties on the new slot, the app confirmed.
//! A release signed by a key the device does not trust is refused with its code and message
//! and leaves the flash as it was. The header's structs are laid out as the Rust ones.
//!
//! Without `cc` the tests print SKIP, or fail when `CI` is set.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use device_fw::esp::boot::BootTarget;
use device_fw::esp::image::{CHIP_ESP32, build_test_image};
use device_fw::esp::otadata::OtaState;
use device_fw::wire::manifest::write_hex;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use sim::device::{
    DeviceSetup, MANIFEST_PATH, Release, boot, image_path, manifest_for, manifest_url, release, release_key, sign,
};
use sim::flash::SimFlash;
use sim::modem::{Dialect, ModemEmulatorConfig, spawn_modem};
use sim::net::{NatConfig, NatExpiry, NetConfig, Network};
use sim::origin::{OriginBehaviour, spawn_origin};
use sim::scenario::{DEVICE_UART_RX_RING, FLASH_BYTES, ORIGIN_HOST};
use sim::uart::{UartEnd, uart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BAUD: u32 = 115_200;
/// Wall time one run of the C program may take (an update of the test image takes a few
/// seconds at 115200 baud); past it the program is killed and the test fails.
const C_PROGRAM_LIMIT: Duration = Duration::from_secs(120);

fn app(version: &str) -> Vec<u8> {
    let payload: Vec<u8> = (0..12 * 1024u32)
        .map(|i| (i * 13 + version.len() as u32) as u8)
        .collect();
    build_test_image(CHIP_ESP32, version, "field-logger", &payload)
}

/// The C program, built once per test into `dir`; `None` (after SKIP) without a C compiler.
fn build_c_program(test: &str, dir: &Path) -> Option<PathBuf> {
    if Command::new("cc").arg("--version").output().is_err() {
        sim::required_tool::missing(test, "cc (a C compiler)", "apt-get install gcc");
        return None;
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = staticlib();
    let exe = dir.join("update");
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1"])
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join("tests/c/update.c"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm"])
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "cc failed on update.c with {}:\n{}",
        lib.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(exe)
}

/// The host staticlib: `OTACTL_CAPI_STATICLIB`, else the one cargo built beside this test.
fn staticlib() -> PathBuf {
    if let Some(path) = std::env::var_os("OTACTL_CAPI_STATICLIB") {
        return PathBuf::from(path);
    }
    let deps = std::env::current_exe()
        .expect("test path")
        .parent()
        .expect("deps dir")
        .to_owned();
    std::fs::read_dir(&deps)
        .expect("deps dir lists")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libotactl-") && name.ends_with(".a")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .unwrap_or_else(|| panic!("no libotactl-*.a in {}; set OTACTL_CAPI_STATICLIB", deps.display()))
}

/// Serves `release` from the bench origin behind the SIM7600 emulator, whose UART is bridged
/// to the Unix socket at `socket` for one connection; returns when the C program hangs up.
fn serve_modem(socket: &Path, release: &Release) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(socket).expect("socket binds");
    let release = release.clone();
    std::thread::spawn(move || {
        sim::time::use_real_time();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let net = Network::new(NetConfig::lte(NatConfig {
                idle_timeout: Some(Duration::from_secs(30)),
                on_expiry: NatExpiry::Reset,
            }));
            let origin = spawn_origin(net.listen(ORIGIN_HOST, 80), OriginBehaviour::default());
            origin.put(MANIFEST_PATH, release.manifest.clone());
            origin.put(&release.image_path, release.image.clone());
            let (device, modem) = uart(BAUD, DEVICE_UART_RX_RING, 1024);
            let _modem = spawn_modem(ModemEmulatorConfig::new(Dialect::Sim7600), modem, net.clone());
            listener.set_nonblocking(true).expect("non-blocking listener");
            let listener = tokio::net::UnixListener::from_std(listener).expect("tokio listener");
            let Ok(accepted) = tokio::time::timeout(C_PROGRAM_LIMIT, listener.accept()).await else {
                return;
            };
            let (stream, _) = accepted.expect("the C program connects");
            let (mut from_c, mut to_c) = stream.into_split();
            let UartEnd { tx, mut rx, .. } = device;
            let downlink = tokio::spawn(async move {
                let mut buf = [0u8; 512];
                while let Ok(n) = rx.read(&mut buf).await {
                    if n == 0 || to_c.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            let mut buf = [0u8; 512];
            while let Ok(n) = from_c.read(&mut buf).await {
                if n == 0 || tx.write(&buf[..n]).await.is_err() {
                    break;
                }
            }
            downlink.abort();
        });
    })
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the C program once against `release`, with the flash in `flash_file`.
fn run_c(exe: &Path, dir: &Path, release: &Release, flash_file: &Path, mode: &str, running: u32) -> Run {
    let socket = dir.join(format!("modem-{mode}.sock"));
    let bench = serve_modem(&socket, release);
    let mut hex = [0u8; 64];
    let key = write_hex(&release_key().verifying_key().to_bytes(), &mut hex).to_owned();
    let stdout_path = dir.join(format!("{mode}.out"));
    let stderr_path = dir.join(format!("{mode}.err"));
    let mut child = Command::new(exe)
        .arg(&socket)
        .arg(flash_file)
        .arg(manifest_url())
        .arg(mode)
        .arg(format!("{running:#x}"))
        .arg(key)
        // Files, not pipes: a pipe nobody drains while the program runs could fill and stall it.
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("the C program starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the C program is waited for") {
            break status;
        }
        if started.elapsed() > C_PROGRAM_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the C program ({mode}) ran over {C_PROGRAM_LIMIT:?}:\n{}",
                std::fs::read_to_string(&stdout_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    bench.join().expect("the bench thread ends");
    Run {
        status,
        stdout: std::fs::read_to_string(&stdout_path).expect("stdout reads"),
        stderr: std::fs::read_to_string(&stderr_path).expect("stderr reads"),
    }
}

fn flash_from(path: &Path) -> SimFlash {
    let bytes = std::fs::read(path).expect("flash file reads");
    let flash = SimFlash::new(FLASH_BYTES, sim::flash::FlashTiming::ESP32_TYPICAL);
    flash.load(0, &bytes);
    flash
}

fn boot_file(path: &Path, setup: &DeviceSetup) -> sim::device::BootView {
    let mut flash = flash_from(path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let view = rt.block_on(async {
        sim::time::use_virtual_time();
        boot(&mut flash, setup).await.expect("boots").expect("powered")
    });
    // The bootloader's otadata writes (NEW -> PENDING_VERIFY) go back to the file.
    std::fs::write(path, flash.snapshot(0, FLASH_BYTES)).expect("flash file writes");
    view
}

fn factory_file(dir: &Path, setup: &DeviceSetup) -> PathBuf {
    let path = dir.join("flash.bin");
    let flash = setup.factory_flash(&app("0.1.0"));
    std::fs::write(&path, flash.snapshot(0, FLASH_BYTES)).expect("flash file writes");
    path
}

#[test]
fn a_c_program_updates_verifies_activates_and_confirms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(exe) = build_c_program("a_c_program_updates_verifies_activates_and_confirms", dir.path()) else {
        return;
    };
    let setup = DeviceSetup::field();
    let flash_file = factory_file(dir.path(), &setup);
    let new = release(app("0.2.0"), "0.2.0");
    let ota = &setup.layout.boot.ota;

    // A check first: it judges the release and writes nothing.
    let factory = std::fs::read(&flash_file).expect("flash file reads");
    let run = run_c(&exe, dir.path(), &new, &flash_file, "check", ota[0].offset);
    assert!(run.status.success(), "check failed:\n{}\n{}", run.stdout, run.stderr);
    let offered = format!("checked available=1 verdict=ok version=0.2.0 size={}", new.image.len());
    assert!(run.stdout.contains(&offered), "{}", run.stdout);
    assert!(
        std::fs::read(&flash_file).expect("flash file reads") == factory,
        "a check changed the flash"
    );

    let run = run_c(&exe, dir.path(), &new, &flash_file, "update", ota[0].offset);
    assert!(run.status.success(), "update failed:\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("activated slot=1 version=0.2.0"), "{}", run.stdout);
    assert!(
        run.stdout.contains("event kind=1 "),
        "no modem-up event:\n{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("event kind=13 values=1,0,0 text=0.2.0"),
        "no activated event:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("result code=0 name=ok"), "{}", run.stdout);

    let written = flash_from(&flash_file).snapshot(ota[1].offset as usize, new.image.len());
    assert_eq!(
        Sha256::digest(&written),
        Sha256::digest(&new.image),
        "slot ota_1 holds the release"
    );
    let view = boot_file(&flash_file, &setup);
    assert_eq!(view.booted.target, BootTarget::Ota(1), "otadata selects the new slot");
    assert_eq!(view.version, "0.2.0");
    assert_eq!(view.sha256, <[u8; 32]>::from(Sha256::digest(&new.image)));
    assert_eq!(view.booted.state, OtaState::PendingVerify);

    // The new app's start duties, from C: self-test through the modem, then confirm.
    let run = run_c(&exe, dir.path(), &new, &flash_file, "after-boot", ota[1].offset);
    assert!(
        run.status.success(),
        "after-boot failed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.contains("booted outcome=1"), "{}", run.stdout);
    assert!(
        run.stdout.contains("event kind=14 values=0,0,0 text=0.2.0"),
        "{}",
        run.stdout
    );
    let view = boot_file(&flash_file, &setup);
    assert_eq!(
        (view.booted.target, view.booted.state),
        (BootTarget::Ota(1), OtaState::Valid)
    );
}

#[test]
fn the_header_structs_have_the_rust_layout() {
    use std::mem::{offset_of, size_of};

    use otactl::{otactl_callbacks, otactl_config, otactl_event};
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(exe) = build_c_program("the_header_structs_have_the_rust_layout", dir.path()) else {
        return;
    };
    let out = Command::new(exe).arg("layout").output().expect("the C program runs");
    assert!(out.status.success());
    let expected = format!(
        "otactl_config {} {} {} {}\notactl_callbacks {} {}\notactl_event {} {} {}\n\
         otactl_check_result {} {}\notactl_update_result {}\n",
        size_of::<otactl_config>(),
        offset_of!(otactl_config, rts_cts),
        offset_of!(otactl_config, public_keys),
        offset_of!(otactl_config, backoff_max_ms),
        size_of::<otactl_callbacks>(),
        offset_of!(otactl_callbacks, event),
        size_of::<otactl_event>(),
        offset_of!(otactl_event, values),
        offset_of!(otactl_event, text),
        size_of::<otactl::otactl_check_result>(),
        offset_of!(otactl::otactl_check_result, version),
        size_of::<otactl::otactl_update_result>(),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[test]
fn a_release_signed_by_an_untrusted_key_is_refused_and_the_flash_is_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(exe) = build_c_program("a_release_signed_by_an_untrusted_key_is_refused", dir.path()) else {
        return;
    };
    let setup = DeviceSetup::field();
    let flash_file = factory_file(dir.path(), &setup);
    let before = std::fs::read(&flash_file).expect("flash file reads");

    let image = app("0.2.0");
    let sha: [u8; 32] = Sha256::digest(&image).into();
    let mut hex = [0u8; 64];
    let sha_hex = write_hex(&sha, &mut hex).to_owned();
    let path = image_path(&sha);
    let image_ref = format!("..{}", &path["/fleet".len()..]);
    let stranger = SigningKey::from_bytes(&[0x5a; 32]);
    let forged = Release {
        manifest: sign(&manifest_for(&image, "0.2.0", &sha_hex, &image_ref), &[&stranger]),
        image,
        image_path: path,
        compressed: None,
        delta: None,
    };

    let run = run_c(
        &exe,
        dir.path(),
        &forged,
        &flash_file,
        "update",
        setup.layout.boot.ota[0].offset,
    );
    assert_eq!(run.status.code(), Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("result code=28 name=unknown-key message=no trusted public key signed the manifest"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("event kind=5 "),
        "no image byte may be requested:\n{}",
        run.stdout
    );
    assert!(
        std::fs::read(&flash_file).expect("flash file reads") == before,
        "the flash changed"
    );
    let view = boot_file(&flash_file, &setup);
    assert_eq!(
        (view.booted.target, view.version.as_str()),
        (BootTarget::Ota(0), "0.1.0")
    );
}
