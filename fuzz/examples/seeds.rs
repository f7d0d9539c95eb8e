//! Writes the seed corpora, `fuzz/corpus/<target>/seed-*`, from the repository's own data:
//! the AT transcripts in docs/at-transcripts/, the profiles in profiles/, manifests sealed
//! by the real writer, journals written by the real journal, ROM loader sessions as
//! esptool sends them, and the model modem's answers to a real bring-up.
//!
//! Seeds only have to start libFuzzer somewhere deep; what the targets assert does not
//! depend on them. Run from anywhere: `cargo +nightly run --example seeds` in fuzz/.

use std::fs;
use std::path::{Path, PathBuf};

use device_fw::modem::{Dialect, Modem, ModemConfig};
use device_fw::ota::journal::{Journal, Progress};
use device_fw::ota::schedule::ScheduleRecord;
use device_fw::socket::Socket;
use device_fw::wire::ImageForm;
use device_fw::wire::console::Event;
use device_fw::wire::manifest::{self, Alternate, MAX_ENVELOPE, MAX_PAYLOAD, Manifest};
use device_fw::wire::rollout::{DeviceList, Rollout, RolloutState};
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use otactl_fuzz::flash::{RamFlash, SECTOR};
use otactl_fuzz::manifest_keys;
use otactl_fuzz::modem_model::{ModelUart, Session};
use otactl_fuzz::{VirtualClock, run};
use sim::rom::protocol::{SYNC_PAYLOAD, data_block, op, request, words};
use sim::rom::slip;

fn root() -> PathBuf {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    fuzz.parent().unwrap_or(fuzz).to_path_buf()
}

struct Out {
    dir: PathBuf,
    bytes: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, data: &[u8]) {
        let dir = self.dir.join(target);
        fs::create_dir_all(&dir).expect("corpus directory");
        fs::write(dir.join(format!("seed-{name}")), data).expect("seed file");
        self.bytes += data.len();
    }
}

fn manifests() -> Vec<(String, Vec<u8>)> {
    const SHA: &str = "8f14e45fceea167a5a36dedd4bea2543a1b6c4d5e6f708192a3b4c5d6e7f8091";
    let ids = ["dev-0001", "dev-0002"];
    let base = Manifest {
        schema: 1,
        product: "field-logger",
        channel: "stable",
        version: "1.4.2",
        chip: "esp32",
        board: "m5stack-core",
        image: "../images/8f14e45fceea167a5a36dedd4bea2543a1b6c4d5e6f708192a3b4c5d6e7f8091.bin",
        size: 233_040,
        sha256: SHA,
        secure_version: 0,
        created: "2026-11-24T04:00:00Z",
        rollout: None,
        compressed: None,
        delta: None,
    };
    let packed = Manifest {
        compressed: Some(Alternate {
            image: "../images/8f14e45fceea167a5a36dedd4bea2543a1b6c4d5e6f708192a3b4c5d6e7f8091.otz2",
            size: 141_200,
        }),
        ..base
    };
    let staged = Manifest {
        version: "2.0.0-rc.1+build.7",
        rollout: Some(Rollout {
            percent: 25,
            state: RolloutState::Active,
            devices: DeviceList::Ids(&ids),
        }),
        ..base
    };
    let mut out = Vec::new();
    for (name, m) in [("plain", base), ("rollout", staged), ("compressed", packed)] {
        let mut payload = [0u8; MAX_PAYLOAD];
        let n = m.encode(&mut payload).expect("seed manifest encodes");
        out.push((format!("{name}-payload"), payload[..n].to_vec()));
        let signer = manifest_keys::trusted_signer();
        let stranger = manifest_keys::stranger();
        for (suffix, keys) in [("signed", vec![&signer]), ("rotation", vec![&stranger, &signer])] {
            let mut env = [0u8; MAX_ENVELOPE];
            let len = manifest::seal(&payload[..n], &keys, &mut env).expect("seed manifest seals");
            out.push((format!("{name}-{suffix}"), env[..len].to_vec()));
        }
    }
    out
}

/// `mode, range start, range length, split count, splits, body buffer`, then the stream.
fn http(mode: u8, start: u32, len: u16, splits: &[u8], stream: &str) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(&start.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.push(splits.len() as u8);
    v.extend_from_slice(splits);
    v.extend_from_slice(&1460u16.to_le_bytes());
    v.extend_from_slice(stream.as_bytes());
    v
}

/// Commands start new segments; the modem's lines between them are its answer.
fn transcript_segments(text: &str) -> Vec<u8> {
    let mut segments: Vec<Vec<u8>> = vec![Vec::new()];
    for raw in text.lines() {
        if raw.starts_with('#') {
            continue;
        }
        // Serial-monitor captures put `hh:mm:ss.mmm -> ` in front of each line.
        let line = match raw.find(" -> ") {
            Some(i) if raw[..i].bytes().all(|b| b.is_ascii_digit() || b == b':' || b == b'.') => &raw[i + 4..],
            _ => raw,
        };
        if line.starts_with("AT") {
            segments.push(Vec::new());
            continue;
        }
        let seg = segments.last_mut().expect("one segment");
        seg.extend_from_slice(b"\r\n");
        seg.extend_from_slice(line.trim_end().as_bytes());
        seg.extend_from_slice(b"\r\n");
    }
    segments.join(&0u8)
}

/// Records what the model modem says between two commands.
struct Recorder {
    inner: ModelUart,
    segments: Vec<Vec<u8>>,
}

impl ErrorType for Recorder {
    type Error = ErrorKind;
}

impl Read for Recorder {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let n = self.inner.read(buf).await?;
        self.segments
            .last_mut()
            .expect("one segment")
            .extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Recorder {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        if buf.contains(&b'\r') {
            self.segments.push(Vec::new());
        }
        self.inner.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

fn model_session(sim7080: bool) -> Vec<u8> {
    let session = Session {
        sim7080,
        payload: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        knobs: Vec::new(),
        reads: vec![1460],
        read_block: 1460,
        boot_noise: Vec::new(),
    };
    let dialect = if sim7080 { Dialect::Sim7080 } else { Dialect::Sim7600 };
    let cfg = ModemConfig::new(dialect, "iot.1nce.net").expect("fixed APN");
    let uart = Recorder {
        inner: ModelUart::new(&session),
        segments: vec![b"\r\nRDY\r\n".to_vec()],
    };
    let mut modem = Modem::new(uart, VirtualClock::new(), cfg);
    run(
        async {
            modem.bring_up().await.expect("the model brings up");
            modem.connect("ota.example.com", 80).await.expect("the model connects");
            modem
                .write_all(b"GET / HTTP/1.1\r\n\r\n")
                .await
                .expect("the model takes a request");
            let mut buf = [0u8; 1460];
            while let Ok(n) = modem.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        },
        10_000,
    )
    .expect("the model answers");
    let mut out = vec![if sim7080 { 1 } else { 0 }];
    out.extend_from_slice(&1460u16.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&modem.into_inner().segments.join(&0u8));
    out
}

fn journal_image() -> Vec<u8> {
    let j = Journal::new(0..4 * SECTOR as u32).expect("aligned");
    let mut flash = RamFlash::new(4 * SECTOR);
    run(
        async {
            for i in 0..60u32 {
                let p = Progress {
                    image_sha256: [i as u8; 32],
                    slot: 1,
                    image_size: 233_040,
                    written: i * 3000,
                    prefix_sha256: [0x5a; 32],
                    form: [ImageForm::Raw, ImageForm::Compressed, ImageForm::Delta][i as usize % 3],
                    fetched: i * 1800,
                };
                j.save_progress(&mut flash, &p).await.expect("save");
                if i % 20 == 0 {
                    j.record_failed_version(&mut flash, "1.4.2").await.expect("save");
                    let rec = ScheduleRecord {
                        attempts: i,
                        ..ScheduleRecord::default()
                    };
                    j.save_schedule(&mut flash, &rec).await.expect("save");
                }
            }
        },
        10,
    )
    .expect("RAM flash never waits");
    flash.bytes
}

fn slip_session(deflate: bool) -> Vec<u8> {
    let mut s = Vec::new();
    let mut frame = |p: Vec<u8>| slip::encode_into(&p, &mut s);
    frame(request(op::SYNC, &SYNC_PAYLOAD, 0));
    frame(request(op::READ_REG, &words(&[0x4000_1000]), 0));
    frame(request(op::SPI_ATTACH, &[0; 8], 0));
    frame(request(
        op::SPI_SET_PARAMS,
        &words(&[0, 0x40_0000, 0x1_0000, 4096, 256, 0xFFFF]),
        0,
    ));
    let block: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    if deflate {
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&block, 6);
        frame(request(op::FLASH_DEFL_BEGIN, &words(&[1024, 1, 0x4000, 0x1_0000]), 0));
        frame(request(op::FLASH_DEFL_DATA, &data_block(0, &packed), 0));
        frame(request(op::FLASH_DEFL_END, &words(&[1]), 0));
    } else {
        frame(request(op::FLASH_BEGIN, &words(&[1024, 1, 0x400, 0x1_0000]), 0));
        frame(request(op::FLASH_DATA, &data_block(0, &block), 0));
        frame(request(op::FLASH_END, &words(&[1]), 0));
    }
    frame(request(op::SPI_FLASH_MD5, &words(&[0x1_0000, 1024, 0, 0]), 0));
    frame(request(op::CHANGE_BAUDRATE, &words(&[460_800, 0]), 0));
    s
}

fn main() {
    let mut out = Out {
        dir: root().join("fuzz/corpus"),
        bytes: 0,
    };

    for (name, bytes) in manifests() {
        out.put("manifest_open", &name, &bytes);
    }
    out.put("manifest_signed", "empty", b"");

    // A real compressed file (code-like: repeats reach back across segments), whole and in
    // modem-sized pieces.
    let image: Vec<u8> = (0..20_000u32)
        .map(|i| ((i % 1500) * 7 / 3) as u8 ^ (i / 4096) as u8)
        .collect();
    let packed = device_fw::wire::compressed::compress(&image).expect("seed image compresses");
    for (name, splits) in [("whole", &[][..]), ("pieces", &[199u8, 3, 255, 0][..])] {
        let mut seed = (image.len() as u16 - 1).to_le_bytes().to_vec();
        seed.push(splits.len() as u8);
        seed.extend_from_slice(splits);
        seed.extend_from_slice(&packed);
        out.put("compressed_image", name, &seed);
    }
    out.put("manifest_signed", "edits", &[3, 1, 0, 7, 0, 2, 4, 1, 2, 3]);

    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"5f2a-1b\"\r\nLast-Modified: Tue, 24 Nov 2026 04:00:00 GMT\r\n\r\nhello";
    let partial =
        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-104/233040\r\nContent-Length: 5\r\n\r\nworld";
    let redirect = "HTTP/1.1 302 Found\r\nLocation: /fleet/images/x.bin\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let not_modified = "HTTP/1.1 304 Not Modified\r\nETag: \"5f2a-1b\"\r\n\r\n";
    let refused = "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */233040\r\nContent-Length: 0\r\n\r\n";
    let folded =
        "HTTP/1.0 200 OK\r\nX-Amz-Id: a\r\n  folded\r\nContent-Type: application/octet-stream\r\n\r\nuntil-close";
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    out.put("http_client", "200", &http(0, 0, 0, &[], ok));
    out.put("http_client", "200-bytewise", &http(0, 0, 0, &[0], ok));
    out.put("http_client", "206", &http(2, 100, 4, &[3, 17], partial));
    out.put("http_client", "redirect", &http(0, 0, 0, &[9], redirect));
    out.put("http_client", "interim", &http(12, 0, 0, &[], interim));
    out.put("http_client", "304", &http(8, 0, 0, &[], not_modified));
    out.put("http_client", "416", &http(1, 300_000, 0, &[], refused));
    out.put("http_client", "http10", &http(0, 0, 0, &[1, 2], folded));
    out.put("http_client", "chunked", &http(0, 0, 0, &[], chunked));
    out.put(
        "http_client",
        "post",
        &http(12, 0, 0, &[], "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"),
    );

    let transcripts = root().join("docs/at-transcripts");
    let mut names: Vec<_> = fs::read_dir(&transcripts)
        .expect("docs/at-transcripts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    names.sort();
    for path in names {
        let text = fs::read_to_string(&path).expect("transcript");
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("t").to_string();
        let sim7080 = stem.contains("sim7080") || stem.contains("sim7000");
        let mut seed = vec![u8::from(sim7080), 0xb4, 0x05, 0];
        seed.extend_from_slice(&transcript_segments(&text));
        out.put("modem_raw", &stem, &seed);
        out.put("modem_session", &stem, text.as_bytes());
    }
    out.put("modem_raw", "model-sim7600", &model_session(false));
    out.put("modem_raw", "model-sim7080", &model_session(true));

    for (name, line) in [
        ("update", "ota update http://ota.example.com/fleet/stable/manifest.json"),
        ("update-default", "ota update"),
        ("check", "ota check http://10.0.0.1:8080/m.json\r\n"),
        ("status", "ota status"),
        ("confirm", "ota confirm"),
        ("defer", "ota defer 30"),
        ("defer-default", "ota defer"),
        ("reboot", "reboot"),
        ("version", "version\n"),
        ("help", "  help  "),
    ] {
        out.put("console_command", name, line.as_bytes());
    }
    let mut reader = vec![2, 0, 7];
    reader.extend_from_slice(b"ota status\r\n\r\nota update http://x/m.json\nversion\r");
    out.put("console_reader", "lines", &reader);
    let mut long = vec![0];
    long.extend_from_slice(&[b'x'; 300]);
    long.extend_from_slice(b"\nhelp\n");
    out.put("console_reader", "too-long", &long);

    let events: [(&str, Event<&str>); 6] = [
        (
            "boot",
            Event::Boot {
                version: "1.4.2",
                slot: "ota_0",
                state: "pending_verify",
            },
        ),
        (
            "progress",
            Event::Progress {
                offset: 65_536,
                total: 233_040,
                rate: 11_520,
                chunk: 16_384,
            },
        ),
        (
            "dropped",
            Event::ConnectionDropped {
                offset: 129_867,
                error: "connection closed by the network",
                quiet_ms: Some(58_870),
                nat_idle_ms: 30_000,
            },
        ),
        (
            "status",
            Event::Status {
                version: "1.4.2",
                slot: "ota_1",
                state: "valid",
                failed_version: Some("1.4.1"),
                resume_offset: None,
            },
        ),
        (
            "rejected",
            Event::ManifestRejected {
                reason: "bad-signature",
                message: "manifest signature does not verify: \"quoted\" \\ \u{e9}",
            },
        ),
        (
            "confirmed",
            Event::Confirmed {
                version: "2.0.0-rc.1+build.7",
            },
        ),
    ];
    for (name, event) in events {
        let mut line = [0u8; 1024];
        let n = event.write_line(&mut line).expect("seed event fits");
        out.put("console_event", name, &line[..n]);
    }
    out.put("console_event", "log-line", b"I (1234) ota: plain log line\r\n");
    out.put(
        "console_event",
        "colour",
        b"\x1b[0;32m12:00:01 @ota {\"ev\":\"up_to_date\",\"version\":\"1.4.2\"}\r\n",
    );

    let image = journal_image();
    let mut raw = vec![0u8];
    for s in 0..4 {
        raw.extend_from_slice(&image[s * SECTOR..s * SECTOR + 1024]);
    }
    out.put("journal_scan", "written", &raw);
    out.put(
        "journal_scan",
        "patched",
        &[1, 40, 0x10, 0x00, 8, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    out.put("journal_recover", "empty", b"");
    out.put(
        "journal_recover",
        "ops",
        &[1, 4, 0, 7, 9, 1, 2, 0, 3, 5, 5, 5, 5, 5, 1, 0, 0],
    );

    let mut profiles: Vec<_> = fs::read_dir(root().join("profiles"))
        .expect("profiles/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    profiles.sort();
    for path in profiles {
        let text = fs::read(&path).expect("profile");
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("p").to_string();
        out.put("profile_toml", &stem, &text);
    }

    for (name, deflate) in [("flash", false), ("deflate", true)] {
        let s = slip_session(deflate);
        let mut slip_seed = vec![0xFF];
        slip_seed.extend_from_slice(&s);
        out.put("rom_slip", name, &slip_seed);
        // Loader seeds bring their own SYNC (flag bit 1).
        let mut loader_seed = vec![if deflate { 3 } else { 2 }];
        loader_seed.extend_from_slice(&s);
        out.put("rom_loader", name, &loader_seed);
    }
    out.put(
        "rom_slip",
        "escapes",
        &[0x10, 0xC0, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0, 0xC0, 0xDB, 0x01, 0xC0],
    );

    println!("wrote {} bytes of seeds under fuzz/corpus/", out.bytes);
}
