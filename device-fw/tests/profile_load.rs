//! Profiles: the shipped ones load, and every kind of bad input gets an error that names
//! the file, the key and the reason, and says what to do.
#![cfg(feature = "profile")]

#[path = "profile_support.rs"]
mod support;

use std::time::Duration;

use device_fw::modem::Dialect;
use device_fw::profile::{Chip, FlashSize, Profile, ProfileErrorKind, Region, Slots};

use support::{BASE, assert_error, parse_err, profiles_dir, with};

// ---------------------------------------------------------------------------------------
// The shipped profiles.

#[test]
fn field_profile_loads() {
    let p = Profile::load(&profiles_dir().join("m5stack-core-sim7600.toml")).unwrap();
    assert_eq!(p.device.chip, Chip::Esp32);
    assert_eq!(p.device.board, "m5stack-core");
    assert_eq!(p.modem.dialect, Dialect::Sim7600);
    assert_eq!(p.modem.baud, 115200);
    assert!(!p.modem.rts_cts);
    assert_eq!(p.nat_idle_timeout(), Duration::from_secs(59));
    assert_eq!(p.idle_budget(), Duration::from_millis(29_500));
    assert_eq!(p.uart_bytes_per_sec(), 11_520);
    assert_eq!(p.slots, Slots::default());
}

#[test]
fn c3_profile_loads_with_defaults() {
    let p = Profile::load(&profiles_dir().join("esp32c3-sim7080.toml")).unwrap();
    assert_eq!(p.device.chip, Chip::Esp32c3);
    assert_eq!(p.modem.dialect, Dialect::Sim7080);
    assert_eq!(p.modem.baud, 115200);
    assert_eq!(p.network.nat_idle_timeout_s, 30);
    assert_eq!(p.network.safety_factor, 0.5);
    assert_eq!(p.flash.size, FlashSize::Mb4);
    assert_eq!((p.download.chunk_min, p.download.chunk_max), (4096, 512 * 1024));
    assert_eq!(p.download.retries, 12);
    assert_eq!(p.backoff_initial(), Duration::from_millis(500));
    assert_eq!(p.backoff_max(), Duration::from_secs(30));
    assert_eq!(
        p.slots.ota_0,
        Region {
            offset: 0x10000,
            size: 0x1E_0000
        }
    );
    assert_eq!(
        p.slots.ota_1,
        Region {
            offset: 0x1F_0000,
            size: 0x1E_0000
        }
    );
    assert_eq!(
        p.slots.otadata,
        Region {
            offset: 0xD000,
            size: 0x2000
        }
    );
}

#[test]
fn every_shipped_profile_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(profiles_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 2);
}

#[test]
fn minimal_profile_takes_every_default() {
    let text = "[device]\nproduct = \"p\"\nchip = \"esp32s3\"\nboard = \"b\"\n[modem]\ndialect = \"sim7080\"\nbaud = 921600\napn = \"a\"\n[flash]\nsize = \"8MB\"\n";
    let p = Profile::parse(text, "min.toml").unwrap();
    assert_eq!(p.network.nat_idle_timeout_s, 30);
    assert_eq!(p.network.safety_factor, 0.5);
    assert_eq!(p.download.backoff_max_ms, 30_000);
    assert_eq!(p.slots, Slots::default());
    assert_eq!(p.flash.size.bytes(), 8 << 20);
    assert_eq!(p.release.channel, "stable");
    assert_eq!(
        (p.release.device_url.as_deref(), p.release.public_keys.len()),
        (None, 0)
    );
}

// ---------------------------------------------------------------------------------------
// Reading and syntax.

#[test]
fn missing_file_names_the_path() {
    let e = Profile::load(&profiles_dir().join("no-such-profile.toml")).unwrap_err();
    assert_eq!(e.kind(), ProfileErrorKind::Read);
    assert!(e.to_string().contains("no-such-profile.toml"), "{e}");
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = parse_err(&with("baud = 115200", "baud = = 115200"));
    assert_eq!(e.kind(), ProfileErrorKind::Syntax);
    assert_eq!((e.line(), e.column()), (Some(9), Some(8)), "{e}");
    let text = e.to_string();
    assert!(text.starts_with("bench/test.toml:9:8: TOML syntax error"), "{text}");
    assert!(text.contains("line 9, column 8"), "{text}");

    let e = parse_err("[device\nchip = \"esp32\"\n");
    assert_eq!((e.kind(), e.line()), (ProfileErrorKind::Syntax, Some(1)), "{e}");
}

// ---------------------------------------------------------------------------------------
// Unknown keys.

#[test]
fn unknown_key_lists_the_known_ones() {
    let e = parse_err(&with("baud = 115200", "bud = 115200"));
    assert_error(
        &e,
        ProfileErrorKind::UnknownKey,
        "modem.bud",
        Some(9),
        &[
            "known keys of [modem]: dialect, baud, fast_baud, apn, rts_cts",
            "did you mean `baud`",
        ],
    );
}

#[test]
fn unknown_top_level_table_is_rejected() {
    let e = parse_err(&format!("{BASE}\n[bucket]\nurl = \"s3://x\"\n"));
    assert_error(
        &e,
        ProfileErrorKind::UnknownKey,
        "bucket",
        None,
        &[
            "top-level",
            "device, modem, network, download, flash, slots, release, pins",
        ],
    );
    assert_eq!(e.line(), Some(BASE.lines().count() + 2));
}

#[test]
fn unknown_key_in_a_slot_table() {
    let e = parse_err(&with("ota_1 =", "ota_1 = { offset = 0x1F0000, sise = 0x1E0000 }"));
    assert_error(
        &e,
        ProfileErrorKind::UnknownKey,
        "slots.ota_1.sise",
        Some(23),
        &["known keys of [slots.ota_1]: offset, size", "did you mean `size`"],
    );
    let e = parse_err(&with("ota_1 =", "factory = { offset = 0x1F0000, size = 0x1E0000 }"));
    assert_error(
        &e,
        ProfileErrorKind::UnknownKey,
        "slots.factory",
        Some(23),
        &["nvs, otadata, phy_init, ota_0, ota_1"],
    );
}

#[test]
fn unknown_key_in_an_optional_table() {
    let e = parse_err(&with("nat_idle_timeout_s", "nat_timeout = 59"));
    assert_error(
        &e,
        ProfileErrorKind::UnknownKey,
        "network.nat_timeout",
        Some(13),
        &["nat_idle_timeout_s, safety_factor"],
    );
}

// ---------------------------------------------------------------------------------------
// Wrong types.

#[test]
fn wrong_type_says_what_was_expected() {
    let e = parse_err(&with("baud = 115200", "baud = \"fast\""));
    assert_error(
        &e,
        ProfileErrorKind::WrongType,
        "modem.baud",
        Some(9),
        &["must be an integer UART rate", "string", "9600"],
    );
    let e = parse_err(&with("apn =", "apn = 42"));
    assert_error(
        &e,
        ProfileErrorKind::WrongType,
        "modem.apn",
        Some(10),
        &["must be a string", "integer"],
    );
    let e = parse_err(&format!("{BASE}\n").replace("[modem]\n", "[modem]\nrts_cts = \"yes\"\n"));
    assert_error(
        &e,
        ProfileErrorKind::WrongType,
        "modem.rts_cts",
        None,
        &["true or false"],
    );
    let e = parse_err(&with("ota_0 =", "ota_0 = 65536"));
    assert_error(
        &e,
        ProfileErrorKind::WrongType,
        "slots.ota_0",
        Some(22),
        &["must be a table", "offset = 0x"],
    );
    let e = parse_err("device = 3\n");
    assert_error(&e, ProfileErrorKind::WrongType, "device", Some(1), &["[device]"]);
}

// ---------------------------------------------------------------------------------------
// Bad values.

#[test]
fn non_standard_baud() {
    let e = parse_err(&with("baud = 115200", "baud = 12345"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "modem.baud",
        Some(9),
        &[
            "modem.baud = 12345 is not a standard UART rate",
            "use one of 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 3000000",
        ],
    );
}

#[test]
fn fast_baud_is_a_standard_rate_above_the_power_on_rate() {
    let p = Profile::parse(&with("baud = 115200", "baud = 115200\nfast_baud = 921600"), "p.toml").unwrap();
    assert_eq!(p.modem.fast_baud, Some(921_600));
    let cfg = p.modem_config().unwrap();
    assert_eq!((cfg.baud, cfg.fast_baud), (115_200, Some(921_600)));
    assert_eq!(Profile::parse(BASE, "p.toml").unwrap().modem.fast_baud, None);

    let e = parse_err(&with("baud = 115200", "baud = 115200\nfast_baud = 1000000"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "modem.fast_baud",
        Some(10),
        &[
            "modem.fast_baud = 1000000 is not a standard UART rate",
            "above modem.baud, or leave it out",
        ],
    );
    let e = parse_err(&with("baud = 115200", "baud = 115200\nfast_baud = 57600"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "modem.fast_baud",
        Some(10),
        &["modem.fast_baud = 57600 is not above modem.baud = 115200"],
    );
}

#[test]
fn unknown_chip_and_dialect_name_the_choices() {
    let e = parse_err(&with("chip =", "chip = \"esp32s2\""));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "device.chip",
        Some(3),
        &["esp32s2", "\"esp32\", \"esp32s3\", \"esp32c3\", \"esp32c6\""],
    );
    let e = parse_err(&with("dialect =", "dialect = \"bg96\""));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "modem.dialect",
        Some(8),
        &["bg96", "\"sim7600\" or \"sim7080\""],
    );
    let e = parse_err(&with("size =", "size = \"32MB\""));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "flash.size",
        Some(19),
        &["32MB", "\"16MB\""],
    );
}

#[test]
fn apn_rules() {
    let e = parse_err(&with("apn =", "apn = \"\""));
    assert_error(&e, ProfileErrorKind::BadValue, "modem.apn", Some(10), &["not 1 to 63"]);
    let e = parse_err(&with("apn =", &format!("apn = \"{}\"", "a".repeat(64))));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "modem.apn",
        Some(10),
        &["64 characters"],
    );
    let e = parse_err(&with("apn =", "apn = \"inter\\\"net\""));
    assert_error(&e, ProfileErrorKind::BadValue, "modem.apn", Some(10), &["AT+CGDCONT"]);
    let e = parse_err(&with("apn =", "apn = \"int\u{e9}rnet\""));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "modem.apn",
        Some(10),
        &["printable ASCII"],
    );
    assert!(Profile::parse(&with("apn =", &format!("apn = \"{}\"", "a".repeat(63))), "x").is_ok());
}

#[test]
fn network_ranges() {
    for bad in ["nat_idle_timeout_s = 1", "nat_idle_timeout_s = 7441"] {
        let e = parse_err(&with("nat_idle_timeout_s", bad));
        assert_error(
            &e,
            ProfileErrorKind::BadValue,
            "network.nat_idle_timeout_s",
            Some(13),
            &["outside 2..=7440", "use 2 to 7440"],
        );
    }
    let e = parse_err(&with("nat_idle_timeout_s", "nat_idle_timeout_s = -5"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "network.nat_idle_timeout_s",
        Some(13),
        &["-5"],
    );
    for bad in ["0.05", "0.95", "nan", "1"] {
        let e = parse_err(&with(
            "nat_idle_timeout_s",
            &format!("nat_idle_timeout_s = 59\nsafety_factor = {bad}"),
        ));
        assert_error(
            &e,
            ProfileErrorKind::BadValue,
            "network.safety_factor",
            Some(14),
            &["0.1..=0.9"],
        );
    }
    for good in ["nat_idle_timeout_s = 2", "nat_idle_timeout_s = 7440"] {
        Profile::parse(&with("nat_idle_timeout_s", good), "x").unwrap();
    }
}

#[test]
fn download_ranges() {
    let e = parse_err(&with("chunk_min", "chunk_min = 100"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "download.chunk_min",
        Some(16),
        &["below 256"],
    );
    let e = parse_err(&with("chunk_min", "chunk_min = 8192\nchunk_max = 4096"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "download.chunk_max",
        Some(17),
        &["chunk_min (8192)"],
    );
    let e = parse_err(&with("chunk_min", "retries = 300"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "download.retries",
        Some(16),
        &["300", "0 to 255"],
    );
    let e = parse_err(&with("chunk_min", "backoff_initial_ms = 0"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "download.backoff_initial_ms",
        Some(16),
        &["without pause"],
    );
    let e = parse_err(&with("chunk_min", "backoff_initial_ms = 5000\nbackoff_max_ms = 1000"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "download.backoff_max_ms",
        Some(17),
        &["below download.backoff_initial_ms = 5000"],
    );
}

#[test]
fn board_name_rules() {
    let e = parse_err(&with("board =", "board = \"my board\""));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "device.board",
        Some(4),
        &["\"my board\""],
    );
}

// ---------------------------------------------------------------------------------------
// Missing keys.

#[test]
fn missing_required_keys() {
    let e = parse_err(&with("apn =", ""));
    assert_error(
        &e,
        ProfileErrorKind::MissingKey,
        "modem.apn",
        Some(7),
        &["missing required key `modem.apn`", "under [modem]"],
    );
    let e = parse_err(&with("chip =", ""));
    assert_error(
        &e,
        ProfileErrorKind::MissingKey,
        "device.chip",
        Some(2),
        &["\"esp32c3\""],
    );
    let e = parse_err(&with("[flash]", "").replace("size = \"4MB\"\n", ""));
    assert_error(
        &e,
        ProfileErrorKind::MissingKey,
        "flash",
        None,
        &["add a [flash] section"],
    );
    assert_eq!(e.line(), None);
    let e = parse_err(&with("ota_1 =", "ota_1 = { offset = 0x1F0000 }"));
    assert_error(
        &e,
        ProfileErrorKind::MissingKey,
        "slots.ota_1.size",
        Some(23),
        &["slots.ota_1.size"],
    );
}

// ---------------------------------------------------------------------------------------
// Flash layout.

#[test]
fn app_slot_must_be_64k_aligned() {
    let e = parse_err(&with("ota_1 =", "ota_1 = { offset = 0x1F8000, size = 0x1E0000 }"));
    assert_error(
        &e,
        ProfileErrorKind::Layout,
        "slots.ota_1.offset",
        Some(23),
        &["0x1F8000", "64 KiB", "move it to 0x200000"],
    );
}

#[test]
fn sizes_must_be_whole_sectors() {
    let e = parse_err(&with("ota_1 =", "ota_1 = { offset = 0x1F0000, size = 0x1E0001 }"));
    assert_error(
        &e,
        ProfileErrorKind::Layout,
        "slots.ota_1.size",
        Some(23),
        &["0x1E0001", "4 KiB"],
    );
    let e = parse_err(&with("ota_1 =", "ota_1 = { offset = 0x1F0000, size = 0 }"));
    assert_error(
        &e,
        ProfileErrorKind::Layout,
        "slots.ota_1.size",
        Some(23),
        &["non-zero"],
    );
}

#[test]
fn slots_must_not_overlap() {
    let e = parse_err(&with("ota_1 =", "ota_1 = { offset = 0x100000, size = 0x1E0000 }"));
    assert_error(
        &e,
        ProfileErrorKind::Layout,
        "slots.ota_1",
        Some(23),
        &[
            "slots.ota_1 (0x100000..0x2E0000) overlaps slots.ota_0 (0x10000..0x1F0000)",
            "move slots.ota_1 to 0x1F0000 or later",
        ],
    );
    // An app slot over otadata.
    let e = parse_err(&with("ota_0 =", "ota_0 = { offset = 0x0, size = 0x1E0000 }"));
    assert_eq!(e.kind(), ProfileErrorKind::Layout);
    let e = parse_err(&with(
        "ota_0 =",
        "otadata = { offset = 0x20000, size = 0x2000 }\nota_0 = { offset = 0x10000, size = 0x1E0000 }",
    ));
    assert_error(
        &e,
        ProfileErrorKind::Layout,
        "slots.ota_0",
        Some(23),
        &["overlaps slots.otadata (0x20000..0x22000)"],
    );
}

#[test]
fn regions_stay_clear_of_the_bootloader_and_partition_table() {
    let e = parse_err(&with("ota_0 =", "ota_0 = { offset = 0x0, size = 0x10000 }"));
    assert_error(
        &e,
        ProfileErrorKind::Layout,
        "slots.ota_0.offset",
        Some(22),
        &["below 0x9000", "partition table"],
    );
    let e = parse_err(&with(
        "ota_0 =",
        "nvs = { offset = 0x8000, size = 0x5000 }\nota_0 = { offset = 0x10000, size = 0x1E0000 }",
    ));
    assert_error(&e, ProfileErrorKind::Layout, "slots.nvs.offset", Some(22), &["0x8000"]);
}

#[test]
fn slots_must_fit_the_flash() {
    let e = parse_err(&with("size =", "size = \"2MB\""));
    assert_error(
        &e,
        ProfileErrorKind::Layout,
        "slots.ota_1",
        Some(23),
        &["0x1F0000..0x3D0000", "2MB flash (0x200000)"],
    );
    let text = with("size =", "size = \"2MB\"").replace(
        "ota_0 = { offset = 0x10000, size = 0x1E0000 }\nota_1 = { offset = 0x1F0000, size = 0x1E0000 }",
        "ota_0 = { offset = 0x10000, size = 0xF0000 }\nota_1 = { offset = 0x100000, size = 0xF0000 }",
    );
    // The journal's default place (0x3D0000) is past a 2 MB flash too: it must be moved.
    let e = parse_err(&text);
    assert_error(
        &e,
        ProfileErrorKind::Layout,
        "slots.otastate",
        None,
        &["2MB flash (0x200000)"],
    );
    let text = text.replace(
        "ota_1 = { offset = 0x100000, size = 0xF0000 }",
        "ota_1 = { offset = 0x100000, size = 0xF0000 }\notastate = { offset = 0x1F0000, size = 0x4000 }",
    );
    Profile::parse(&text, "x").unwrap();
    // The default layout needs 4 MB: on a 2 MB flash without [slots] it must say so, with
    // no position (nothing in the file is at fault but the missing table).
    let text = BASE
        .split("[slots]")
        .next()
        .unwrap()
        .replace("size = \"4MB\"", "size = \"2MB\"");
    let e = parse_err(&text);
    assert_error(&e, ProfileErrorKind::Layout, "slots.ota_1", None, &["2MB"]);
    assert_eq!(e.line(), None);
}

#[test]
fn release_and_pin_rules() {
    let e = parse_err(&with("product =", "product = \"Field Logger\""));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "device.product",
        Some(5),
        &["not a usable name"],
    );
    let e = parse_err(&format!(
        "{BASE}\n[release]\ndevice_url = \"https://ota.example.com/fleet\"\n"
    ));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "release.device_url",
        None,
        &["https://", "http://"],
    );
    let e = parse_err(&format!(
        "{BASE}\n[release]\npublic_keys = [\"a.pub\", \"b.pub\", \"c.pub\"]\n"
    ));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "release.public_keys",
        None,
        &["at most 2"],
    );
    let e = parse_err(&format!("{BASE}\n[pins]\nmodem_tx = 4\nmodem_rx = 4\n"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "pins.modem_rx",
        None,
        &["also pins.modem_tx"],
    );
    let e = parse_err(&format!("{BASE}\n[pins]\nmodem_pwrkey = 60\n"));
    assert_error(&e, ProfileErrorKind::BadValue, "pins.modem_pwrkey", None, &["0..=48"]);
    let e = parse_err(&with("apn =", "apn = \"internet\"\nrts_cts = true"));
    assert_error(
        &e,
        ProfileErrorKind::BadValue,
        "modem.rts_cts",
        None,
        &["pins.modem_rts"],
    );
    let e = parse_err(&format!("{BASE}\n[bench]\nbefore = \"reset-please\"\n"));
    assert_error(&e, ProfileErrorKind::BadValue, "bench.before", None, &["reset mode"]);
    let e = parse_err(&format!("{BASE}\n[bench]\nusb_vid = 0x303a\n"));
    assert_error(&e, ProfileErrorKind::BadValue, "bench.usb_pid", None, &["go together"]);
    let bench = Profile::parse(
        &format!("{BASE}\n[bench]\nusb_vid = 0x303a\nusb_pid = 0x1001\nafter = \"no-reset\"\n"),
        "x",
    )
    .unwrap()
    .bench;
    assert_eq!(
        (bench.usb_vid, bench.after.as_deref()),
        (Some(0x303a), Some("no-reset"))
    );
    let ok = format!(
        "{BASE}\n[release]\nchannel = \"beta\"\ndevice_url = \"http://ota.example.com:8080/fleet\"\npublic_keys = [\"k.pub\"]\n[pins]\nmodem_tx = 4\nmodem_rx = 5\n"
    );
    let p = Profile::parse(&ok, "x").unwrap();
    assert_eq!(p.release.channel, "beta");
    assert_eq!(p.pins.modem_rx, Some(5));
}

#[test]
fn the_journal_needs_two_sectors() {
    let e = parse_err(&with(
        "ota_0 =",
        "otastate = { offset = 0x3D0000, size = 0x1000 }\nota_0 = { offset = 0x10000, size = 0x1E0000 }",
    ));
    assert_error(
        &e,
        ProfileErrorKind::Layout,
        "slots.otastate.size",
        None,
        &["two 4 KiB sectors"],
    );
}

#[test]
fn otadata_is_two_sectors() {
    let e = parse_err(&with(
        "ota_0 =",
        "otadata = { offset = 0xD000, size = 0x1000 }\nota_0 = { offset = 0x10000, size = 0x1E0000 }",
    ));
    assert_error(
        &e,
        ProfileErrorKind::Layout,
        "slots.otadata.size",
        Some(22),
        &["0x2000"],
    );
}

#[test]
fn errors_are_std_errors() {
    let e: Box<dyn std::error::Error> = Box::new(parse_err(&with("baud = 115200", "baud = 1")));
    assert!(e.to_string().contains("modem.baud"));
}
