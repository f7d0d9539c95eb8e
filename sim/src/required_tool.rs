//! What a test does when an outside tool it needs (esptool, moto, util-linux `script`) is not
//! installed. On a developer's machine it says SKIP where `cargo test` shows it and returns; with
//! `CI` set it fails, so a broken install step cannot turn into tests that pass having done
//! nothing.

/// Call where the tool was looked for and not found, then return from the test. Panics when
/// the `CI` environment variable is set and not empty.
pub fn missing(test: &str, tool: &str, install: &str) {
    if ci() {
        panic!("{test}: {tool} is not installed, and CI is set ({install})");
    }
    eprintln!("SKIP {test}: {tool} is not installed ({install}); with CI set this test fails");
}

/// Whether this run is CI's, as GitHub Actions and most CI services say it (`CI=true`).
pub fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}
