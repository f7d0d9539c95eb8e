//! The ESP-IDF component (`capi/esp-idf`) as Espressif's component manager sees it: staged
//! as `.ci/capi` stages it and packed with `compote component pack`
//! (idf-component-manager from PyPI), which validates the manifest. The prebuilt archives
//! are left out here (`.ci/capi` packs the real ones); this checks the manifest, the
//! layout and that the packer refuses a broken manifest, so the check is not a formality.

use std::path::Path;
use std::process::Command;

fn have_component_manager() -> bool {
    Command::new("python3")
        .args(["-c", "import idf_component_manager"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Stages the component into `dir/otactl` with `manifest` as its idf_component.yml.
fn stage(dir: &Path, manifest: &str) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    let component = dir.join("otactl");
    std::fs::create_dir_all(component.join("include")).unwrap();
    std::fs::copy(src.join("esp-idf/CMakeLists.txt"), component.join("CMakeLists.txt")).unwrap();
    std::fs::write(component.join("idf_component.yml"), manifest).unwrap();
    std::fs::copy(src.join("include/otactl.h"), component.join("include/otactl.h")).unwrap();
    for file in ["Kconfig", "otactl_idf.c", "include/otactl_idf.h"] {
        std::fs::copy(src.join("esp-idf").join(file), component.join(file)).unwrap();
    }
    component
}

fn pack(dir: &Path, component: &Path) -> std::process::Output {
    Command::new("python3")
        .args(["-m", "idf_component_manager", "component", "pack", "--name", "otactl"])
        .arg("--project-dir")
        .arg(component)
        .arg("--dest-dir")
        .arg(dir.join("dist"))
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn compote_packs_the_component_and_refuses_a_broken_manifest() {
    if !have_component_manager() {
        sim::required_tool::missing(
            "compote_packs_the_component_and_refuses_a_broken_manifest",
            "idf-component-manager (compote)",
            "python3 -m pip install --user idf-component-manager",
        );
        return;
    }
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("esp-idf/idf_component.yml")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        manifest.contains(&format!("version: \"{version}\"")),
        "the component's version follows the crate's ({version})"
    );
    for chip in ["esp32c3", "esp32c6"] {
        assert!(manifest.contains(&format!("  - {chip}")), "targets lists {chip}");
    }

    let dir = tempfile::tempdir().unwrap();
    let component = stage(dir.path(), &manifest);
    let out = pack(dir.path(), &component);
    assert!(
        out.status.success(),
        "compote refused the component:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = dir.path().join(format!("dist/otactl_{version}.tgz"));
    let listing = Command::new("tar").arg("tzf").arg(&archive).output().unwrap();
    assert!(listing.status.success(), "{archive:?} is not a tar.gz");
    let files = String::from_utf8_lossy(&listing.stdout);
    for want in [
        "idf_component.yml",
        "CMakeLists.txt",
        "Kconfig",
        "otactl_idf.c",
        "include/otactl.h",
        "include/otactl_idf.h",
    ] {
        assert!(
            files.lines().any(|l| l.trim_start_matches("./") == want),
            "{want} not in:\n{files}"
        );
    }

    let broken = tempfile::tempdir().unwrap();
    let component = stage(
        broken.path(),
        &manifest.replace(&format!("\"{version}\""), "\"one point oh\""),
    );
    let out = pack(broken.path(), &component);
    assert!(
        !out.status.success(),
        "compote packed a manifest whose version is not a version"
    );
}
