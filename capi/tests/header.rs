//! The header C firmware includes is the one these sources make: cbindgen regenerates it
//! and the checked-in `include/otactl.h` must match byte for byte, so an ABI change cannot
//! land without its header. `OTACTL_WRITE_HEADER=1` rewrites the checked-in copy.

use std::path::Path;

#[test]
fn the_header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = crate_dir.join("include/otactl.h");
    if std::env::var_os("OTACTL_WRITE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("header written");
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "capi/include/otactl.h is not what the sources generate; run \
         `OTACTL_WRITE_HEADER=1 cargo test -p otactl-capi --test header` and check the diff in"
    );
}
