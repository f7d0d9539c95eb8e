//! The ready-made ESP-IDF callbacks (`capi/esp-idf/otactl_idf.c`) run on the host against
//! an in-memory ESP-IDF (`tests/esp_idf_fakes`: the v5 calls they make, declared with
//! ESP-IDF's signatures): a UART read returns what the driver holds at once and waits only
//! for a first byte, timeouts round up to whole ticks, sleeps never oversleep by a tick,
//! flash calls reach the chip's own flash at absolute addresses, and the config helper fills
//! what the chip knows. ESP-IDF itself is not here, so its real headers are not checked:
//! the declarations in the fakes are copied from ESP-IDF v5's.

use std::path::Path;
use std::process::Command;

fn compiler() -> bool {
    Command::new("cc").arg("--version").output().is_ok()
}

fn cc(args: &[&str], out: &Path) -> std::process::Output {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(dir.join("tests/esp_idf_fakes"))
        .arg("-I")
        .arg(dir.join("tests/arduino_stubs"))
        .arg("-I")
        .arg(dir.join("esp-idf/include"))
        .arg("-I")
        .arg(dir.join("include"))
        .args(args)
        .arg("-o")
        .arg(out)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn the_esp_idf_callbacks_keep_the_callback_contract() {
    if !compiler() {
        sim::required_tool::missing(
            "the_esp_idf_callbacks_keep_the_callback_contract",
            "cc (a C compiler)",
            "apt-get install gcc",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("test_idf");
    let out = cc(
        &[
            "tests/esp_idf_fakes/fakes.c",
            "esp-idf/otactl_idf.c",
            "tests/esp_idf_fakes/test_idf.c",
        ],
        &bin,
    );
    assert!(
        out.status.success(),
        "does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&bin).output().unwrap();
    assert!(
        run.status.success() && String::from_utf8_lossy(&run.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn the_esp_idf_callbacks_compile_with_rts_cts_chosen_in_menuconfig() {
    if !compiler() {
        sim::required_tool::missing(
            "the_esp_idf_callbacks_compile_with_rts_cts_chosen_in_menuconfig",
            "cc (a C compiler)",
            "apt-get install gcc",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = cc(
        &[
            "-c",
            "-DCONFIG_OTACTL_MODEM_RTS_CTS=1",
            "-DCONFIG_OTACTL_MODEM_RTS_PIN=6",
            "-DCONFIG_OTACTL_MODEM_CTS_PIN=7",
            "esp-idf/otactl_idf.c",
        ],
        &tmp.path().join("otactl_idf.o"),
    );
    assert!(
        out.status.success(),
        "does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every option the C file reads is declared in the component's Kconfig, so menuconfig
/// offers it and the build never meets an undefined `CONFIG_OTACTL_*`.
#[test]
fn every_option_the_callbacks_read_is_in_kconfig() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(dir.join("esp-idf/otactl_idf.c")).unwrap();
    let kconfig = std::fs::read_to_string(dir.join("esp-idf/Kconfig")).unwrap();
    let mut seen = 0;
    for word in source.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if let Some(name) = word.strip_prefix("CONFIG_OTACTL_") {
            seen += 1;
            assert!(
                kconfig.lines().any(|l| l.trim() == format!("config OTACTL_{name}")),
                "CONFIG_OTACTL_{name} is read by otactl_idf.c but not declared in Kconfig"
            );
        }
    }
    assert!(seen >= 6, "otactl_idf.c reads the modem's UART settings from Kconfig");
}
