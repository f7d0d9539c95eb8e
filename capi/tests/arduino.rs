//! The Arduino library layout (`capi/arduino`, staged with the archives by `.ci/capi`):
//! `library.properties` as the Arduino library specification (1.5 format) wants it, the
//! example sketch where the IDE looks for it, and the sketch's C++ against `otactl.h`.
//!
//! What the sketch check proves and what it does not: the host C++ compiler reads the
//! sketch with `otactl.h` and with declarations of the Arduino-ESP32 and ESP-IDF calls it
//! makes (`capi/tests/arduino_stubs`, their signatures copied from those cores), so every
//! otactl call, struct field and constant it uses is checked against the real header; the
//! Arduino core itself is not here, so the stubs' signatures are the one thing taken on
//! trust. The precompiled archives are checked by `.ci/capi`, which stages them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("arduino")
}

fn properties() -> HashMap<String, String> {
    let text = std::fs::read_to_string(library().join("library.properties")).unwrap();
    let mut map = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line:?}"));
        assert!(
            map.insert(key.to_owned(), value.to_owned()).is_none(),
            "{key} given twice"
        );
    }
    map
}

#[test]
fn library_properties_has_every_field_the_specification_requires() {
    let p = properties();
    for field in [
        "name",
        "version",
        "author",
        "maintainer",
        "sentence",
        "paragraph",
        "category",
        "url",
        "architectures",
    ] {
        assert!(
            p.get(field).is_some_and(|v| !v.trim().is_empty()),
            "{field} is missing or empty"
        );
    }
    let name = &p["name"];
    assert!(
        name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || " _.-".contains(c))
            && name.len() <= 63,
        "name {name:?}: letters, digits, space, _ . - only, starting with a letter or digit"
    );
    assert_eq!(
        p["version"],
        env!("CARGO_PKG_VERSION"),
        "library version follows the crate's"
    );
    let categories = [
        "Display",
        "Communication",
        "Signal Input/Output",
        "Sensors",
        "Device Control",
        "Timing",
        "Data Storage",
        "Data Processing",
        "Other",
    ];
    assert!(
        categories.contains(&p["category"].as_str()),
        "category {:?}",
        p["category"]
    );
    assert_eq!(p["architectures"], "esp32", "the ESP32 core's architecture name");
    // Precompiled: the IDE links src/<build.mcu>/libotactl.a (esp32c3, esp32c6).
    assert_eq!(p.get("precompiled").map(String::as_str), Some("true"));
    assert_eq!(p.get("ldflags").map(String::as_str), Some("-lotactl"));
    let header = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("include")
        .join(&p["includes"]);
    assert!(
        header.is_file(),
        "includes= names {header:?}, which the staged src/ gets"
    );
}

#[test]
fn every_example_sketch_is_in_a_folder_of_its_own_name() {
    let examples = library().join("examples");
    let mut found = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(dir.join(format!("{name}.ino")).is_file(), "{dir:?} has no {name}.ino");
        found += 1;
    }
    assert!(found >= 1);
}

#[test]
fn the_example_sketch_compiles_as_cpp_against_the_header() {
    let sketch = library().join("examples/CellularOta/CellularOta.ino");
    check_sketch("the_example_sketch_compiles_as_cpp_against_the_header", &sketch);
}

#[test]
fn the_smallest_sketch_in_the_docs_compiles_as_cpp_against_the_header() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/embedding.md");
    let text = std::fs::read_to_string(docs).unwrap();
    let start = text.find("```cpp\n").expect("docs/embedding.md has a ```cpp sketch") + 7;
    let len = text[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sketch = dir.path().join("Smallest.ino");
    std::fs::write(&sketch, &text[start..start + len]).unwrap();
    check_sketch(
        "the_smallest_sketch_in_the_docs_compiles_as_cpp_against_the_header",
        &sketch,
    );
}

/// `c++ -fsyntax-only` over `sketch` with the header and the stubs.
fn check_sketch(test: &str, sketch: &Path) {
    if Command::new("c++").arg("--version").output().is_err() {
        sim::required_tool::missing(test, "c++ (a C++ compiler)", "apt-get install g++");
        return;
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("c++")
        .args([
            "-std=gnu++17",
            "-fsyntax-only",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-x",
            "c++",
        ])
        .arg("-I")
        .arg(crate_dir.join("tests/arduino_stubs"))
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(sketch)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the sketch does not compile against otactl.h:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
