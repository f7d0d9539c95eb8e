//! The flasher stub on the ROM serial-loader emulator: its upload and the stub's protocol
//! after it, then Espressif's own esptool against the emulator on a pseudo-terminal, with
//! and without its stub (it must be installed when `CI` is set).

mod rom_host;

use rom_host::*;

#[tokio::test]
async fn ram_download_without_a_jump_starts_nothing() {
    let chip = RomChip::Esp32c3;
    let (mut host, task) = start(chip, blank(), LinkConfig::default());
    let code = pattern(0x2000, 9);
    let addr = 0x4038_0000;
    host.cmd(op::MEM_BEGIN, &words(&[code.len() as u32, 2, 0x1800, addr]))
        .await
        .ok();
    host.data(op::MEM_DATA, 0, &code[..0x1800]).await.ok();
    host.data(op::MEM_DATA, 1, &code[0x1800..]).await.ok();
    // MEM_END without the jump: the words read back, the ROM still answers.
    host.cmd(op::MEM_END, &words(&[1, addr])).await.ok();
    assert_eq!(
        host.read_reg(addr + 4).await,
        u32::from_le_bytes(code[4..8].try_into().unwrap())
    );
    // A jump to where nothing was uploaded, and one into an upload with a block missing: a
    // chip would crash, so no stub starts; the line says why.
    host.cmd(op::MEM_END, &words(&[0, 0x4039_0000])).await.ok();
    host.cmd(op::MEM_BEGIN, &words(&[0x2000, 2, 0x1800, addr])).await.ok();
    host.data(op::MEM_DATA, 0, &code[..0x1800]).await.ok();
    host.cmd(op::MEM_END, &words(&[0, addr])).await.ok();
    let text = String::from_utf8_lossy(&host.raw);
    assert!(text.contains("nothing was uploaded there"), "{text}");
    assert!(text.contains("missing blocks"), "{text}");
    assert!(!host.raw.windows(4).any(|w| w == STUB_GREETING));
    host.sync().await;
    // Outside RAM, or too big for it.
    host.cmd(op::MEM_BEGIN, &words(&[16, 1, 16, 0x4200_0000]))
        .await
        .fails(op::MEM_BEGIN, RomError::BadRamAddress);
    host.cmd(op::MEM_BEGIN, &words(&[0x10_0000, 1, 16, 0x3FCD_0000]))
        .await
        .fails(op::MEM_BEGIN, RomError::BadRamSize);
    let stats = host.close(task).await;
    assert_eq!(stats.stub_starts, 0);
}

/// The stub's upload, its greeting, and its protocol after it: SYNC value 0, 2 status bytes,
/// raw MD5, compressed and plain writes with 16 KiB blocks, ERASE_REGION, READ_FLASH with
/// acknowledgements and the digest frame; then a reboot brings the ROM back.
#[tokio::test]
async fn the_stub_answers_once_uploaded_and_a_reboot_brings_the_rom_back() {
    for chip in RomChip::ALL {
        let flash = blank();
        let (mut host, task) = start(chip, flash.clone(), LinkConfig::default());
        host.sync().await;
        assert_eq!(host.start_stub(chip).await, STUB_GREETING);
        // The stub's SYNC: eight replies, value 0, 2 status bytes.
        host.send(op::SYNC, &SYNC_PAYLOAD, 0).await;
        for _ in 0..8 {
            let r = Reply::parse_stub(&host.frame().await).ok();
            assert_eq!((r.op, r.value), (op::SYNC, 0));
        }
        host.stub_cmd(op::SPI_ATTACH, &[0; 4]).await.ok();
        host.stub_cmd(op::SPI_ATTACH, &[0; 8])
            .await
            .stub_fails(op::SPI_ATTACH, StubError::BadDataLen);
        let info = host.stub_cmd(op::GET_SECURITY_INFO, &[]).await;
        match chip {
            RomChip::Esp32c3 => assert_eq!(info.ok().data.len(), 20),
            RomChip::Esp32 => info.stub_fails(op::GET_SECURITY_INFO, StubError::NotImplemented),
        }
        // The ROM-only slow read is unknown to the stub.
        host.stub_cmd(op::READ_FLASH_SLOW, &words(&[0, 64]))
            .await
            .stub_fails(op::READ_FLASH_SLOW, StubError::InvalidCommand);
        host.stub_cmd(op::CHANGE_BAUDRATE, &words(&[460_800, 115_200]))
            .await
            .ok();

        // A compressed write in 16 KiB blocks, its size the inflated byte count (esptool's
        // stub form), five words on every chip.
        let image: Vec<u8> = (0..150_000u32).flat_map(|i| (i / 5).to_le_bytes()).collect();
        let mut noisy = pattern(40_000, 3);
        noisy.extend_from_slice(&image);
        let z = miniz_oxide::deflate::compress_to_vec_zlib(&noisy, 6);
        let blocks: Vec<&[u8]> = z.chunks(0x4000).collect();
        let begin = words(&[noisy.len() as u32, blocks.len() as u32, 0x4000, 0x10000, 0]);
        host.stub_cmd(op::FLASH_DEFL_BEGIN, &begin).await.ok();
        for (seq, block) in blocks.iter().enumerate() {
            host.stub_data(op::FLASH_DEFL_DATA, seq as u32, block).await.ok();
        }
        host.stub_cmd(op::FLASH_DEFL_END, &words(&[1])).await.ok();
        let md5 = host
            .stub_cmd(op::SPI_FLASH_MD5, &words(&[0x10000, noisy.len() as u32, 0, 0]))
            .await
            .ok();
        assert_eq!(md5.data, Md5::digest(&noisy).to_vec(), "the stub's MD5 is 16 raw bytes");
        assert_eq!(flash.snapshot(0x10000, noisy.len()), noisy);

        // A plain write whose last block is padded past the size: the padding is dropped.
        let plain = pattern(0x5000, 11);
        host.stub_cmd(op::FLASH_BEGIN, &words(&[0x5000, 2, 0x4000, 0x100000, 0]))
            .await
            .ok();
        host.stub_data(op::FLASH_DATA, 0, &plain[..0x4000]).await.ok();
        let mut last = plain[0x4000..].to_vec();
        last.resize(0x4000, 0x00);
        host.stub_data(op::FLASH_DATA, 1, &last).await.ok();
        host.stub_cmd(op::FLASH_END, &words(&[1])).await.ok();
        assert_eq!(flash.snapshot(0x100000, 0x5000), plain);
        assert_eq!(flash.snapshot(0x105000, 16), [0xFF; 16]);

        // ERASE_REGION, sector-aligned only.
        host.stub_cmd(op::ERASE_REGION, &words(&[0x100000, 0x1000])).await.ok();
        assert_eq!(flash.snapshot(0x100000, 0x1000), vec![0xFF; 0x1000]);
        host.stub_cmd(op::ERASE_REGION, &words(&[0x100100, 0x1000]))
            .await
            .stub_fails(op::ERASE_REGION, StubError::BadDataLen);

        // READ_FLASH: the reply, then one frame at a time until acknowledged, then the MD5.
        let (at, len) = (0x101000u32, 0x2800u32);
        host.stub_cmd(op::READ_FLASH, &words(&[at, len, 0x1000, 64])).await.ok();
        let mut got = Vec::new();
        while got.len() < len as usize {
            let frame = host.frame().await;
            assert!(frame.len() == 0x1000 || got.len() + frame.len() == len as usize);
            got.extend_from_slice(&frame);
            // Nothing more until this one is acknowledged.
            assert!(host.frames.is_empty());
            host.send_raw(&slip::encode(&(got.len() as u32).to_le_bytes())).await;
        }
        assert_eq!(got, plain[0x1000..0x1000 + len as usize]);
        assert_eq!(host.frame().await, Md5::digest(&got).to_vec());
        host.stub_cmd(op::READ_FLASH, &words(&[at, len, 0x2000, 1]))
            .await
            .stub_fails(op::READ_FLASH, StubError::BadDataLen);

        // A block that fails after its reply (not zlib): the next command carries the error.
        host.stub_cmd(op::FLASH_DEFL_BEGIN, &words(&[0x1000, 1, 0x4000, 0x10000, 0]))
            .await
            .ok();
        host.stub_data(op::FLASH_DEFL_DATA, 0, &pattern(200, 99)).await.ok();
        host.stub_cmd(op::READ_REG, &0x4000_1000u32.to_le_bytes())
            .await
            .stub_fails(op::READ_REG, StubError::Inflate);
        host.stub_cmd(op::READ_REG, &0x4000_1000u32.to_le_bytes()).await.ok();

        // esptool's and espflash's way back to the ROM: FLASH_BEGIN(0, 0), FLASH_END reboot.
        host.stub_cmd(op::FLASH_BEGIN, &words(&[0, 0, 0x4000, 0])).await.ok();
        host.stub_cmd(op::FLASH_END, &words(&[0])).await.ok();
        host.sync().await;
        host.md5(0x10000, 16)
            .await
            .fails(op::SPI_FLASH_MD5, RomError::FailedToAct);
        let stats = host.close(task).await;
        assert_eq!(stats.stub_starts, 1);
    }
}

/// Through the stub, a paced write costs per block the larger of line and flash time: the
/// stub acknowledges a block, then programs it while the next one is on the line.
#[tokio::test(start_paused = true)]
async fn the_stub_writes_while_the_next_block_arrives() {
    sim::time::use_virtual_time();
    let link = LinkConfig {
        pacing: true,
        stall: None,
    };
    let timing = sim::rom::pty::ROM_FLASH_TIMING;
    let chip = RomChip::Esp32c3;
    let (mut host, task) = start(chip, SimFlash::new(FLASH_SIZE, timing), link);
    // Virtual tokio time runs a thousand times the bench's; the transfer takes bench seconds.
    host.patience = Duration::from_secs(100_000);
    assert_eq!(host.start_stub(chip).await, STUB_GREETING);
    host.stub_cmd(op::CHANGE_BAUDRATE, &words(&[921_600, 115_200]))
        .await
        .ok();
    let data = pattern(0x40000, 5);
    let blocks: Vec<&[u8]> = data.chunks(0x4000).collect();
    host.stub_cmd(
        op::FLASH_BEGIN,
        &words(&[data.len() as u32, blocks.len() as u32, 0x4000, 0x40000, 0]),
    )
    .await
    .ok();
    let t0 = sim::time::now();
    for (seq, block) in blocks.iter().enumerate() {
        host.stub_data(op::FLASH_DATA, seq as u32, block).await.ok();
    }
    host.stub_cmd(op::SPI_FLASH_MD5, &words(&[0x40000, data.len() as u32, 0, 0]))
        .await
        .ok();
    let took = (sim::time::now() - t0).as_secs_f64();
    // 16 blocks of 16 KiB at 921600 (SLIP escapes add a little), and 256 KiB of erase and
    // programming, a third of the line's time: overlapped, only the last block's flash time
    // adds to the line's (one after the other would add all of it).
    let line = data.len() as f64 * 10.0 / 921_600.0;
    let per_sector = timing.erase_sector + timing.program_page * 16;
    let flash = per_sector.as_secs_f64() * 64.0;
    assert!(took < line + flash * 0.25, "{took} s: line {line} s, flash {flash} s");
    assert!(took > line, "{took} s, line alone {line} s");
    host.close(task).await;
}

/// How to run esptool here: `$ESPTOOL`, the `esptool` script, or `python3 -m esptool`
/// (what `.ci/esptool` installs). `None` when there is none.
fn esptool() -> Option<Vec<String>> {
    let mut candidates: Vec<Vec<String>> = Vec::new();
    if let Ok(cmd) = std::env::var("ESPTOOL") {
        candidates.push(cmd.split_whitespace().map(str::to_owned).collect());
    }
    candidates.push(vec!["esptool".into()]);
    candidates.push(vec!["python3".into(), "-m".into(), "esptool".into()]);
    candidates.into_iter().find(|argv| {
        !argv.is_empty()
            && Command::new(&argv[0])
                .args(&argv[1..])
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
    })
}

/// esptool against the emulator: its default mode (the flasher stub uploaded) when `stub`,
/// else `--no-stub`.
fn run_esptool(esptool: &[String], chip: RomChip, port: &Path, stub: bool, args: &[&str]) -> String {
    let out = Command::new(&esptool[0])
        .args(&esptool[1..])
        .args(["--chip", chip.name(), "--port"])
        .arg(port)
        .args(["--baud", "115200", "--before", "no-reset", "--after", "no-reset"])
        .args(if stub { &[][..] } else { &["--no-stub"][..] })
        .args(args)
        .output()
        .expect("run esptool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "esptool {args:?} failed:\n{text}");
    text
}

/// Espressif's esptool, which nobody here wrote, flashes, verifies and reads back the
/// emulator on a pseudo-terminal, for both chips, through the ROM loader (`--no-stub`) and
/// through its flasher stub (its default). Skipped when esptool is not installed, unless `CI`
/// is set.
#[test]
fn esptool_flashes_the_emulator_over_a_pty() {
    let Some(esptool) = esptool() else {
        sim::required_tool::missing("esptool against the ROM emulator", "esptool", ".ci/esptool installs it");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let plain: PathBuf = dir.path().join("plain.bin");
    let text: PathBuf = dir.path().join("text.bin");
    std::fs::write(&plain, pattern(40_000, 7)).unwrap();
    let lines: String = (0..4000).map(|i| format!("line {i} of the image\n")).collect();
    std::fs::write(&text, lines.as_bytes()).unwrap();
    for (chip, stub) in RomChip::ALL.into_iter().flat_map(|c| [(c, false), (c, true)]) {
        let link = dir.path().join(format!("tty-{chip}-{stub}"));
        let flash = SimFlash::new(FLASH_SIZE, INSTANT_FLASH);
        let cfg = RomPtyConfig {
            link: link.clone(),
            chip,
            flash: flash.clone(),
            baud_pacing: false,
            log: None,
        };
        let stop = Stop::new();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || sim::rom::pty::run(&cfg, &stop).map_err(|e| e.to_string()))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !link.exists() {
            assert!(std::time::Instant::now() < deadline, "no link");
            std::thread::sleep(Duration::from_millis(10));
        }
        let esp = |args: &[&str]| run_esptool(&esptool, chip, &link, stub, args);
        let out = esp(&["chip-id"]);
        assert_eq!(out.contains("Stub flasher running"), stub, "{out}");
        assert!(
            out.contains(&format!(
                "{:02x}:{:02x}:{:02x}",
                chip.mac()[0],
                chip.mac()[1],
                chip.mac()[2]
            )),
            "{out}"
        );
        let out = esp(&["flash-id"]);
        assert!(out.contains("4MB"), "{out}");
        esp(&["write-flash", "-z", "0x10000", text.to_str().unwrap()]);
        esp(&["write-flash", "-u", "0x40000", plain.to_str().unwrap()]);
        let out = esp(&[
            "verify-flash",
            "0x10000",
            text.to_str().unwrap(),
            "0x40000",
            plain.to_str().unwrap(),
        ]);
        assert!(out.contains("Verification successful"), "{out}");
        // Through the stub, the whole file (READ_FLASH with acks); the ROM reads 64 bytes a
        // command, so a sector of it.
        let (len, back) = (
            if stub { 40_000 } else { 4096 },
            dir.path().join(format!("back-{chip}-{stub}.bin")),
        );
        esp(&["read-flash", "0x40000", &len.to_string(), back.to_str().unwrap()]);
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&plain).unwrap()[..len]);
        if stub {
            esp(&["erase-region", "0x40000", "0x1000"]);
            assert_eq!(flash.snapshot(0x40000, 0x1000), vec![0xFF; 0x1000]);
        }
        let want = std::fs::read(&text).unwrap();
        assert_eq!(flash.snapshot(0x10000, want.len()), want);
        stop.stop();
        let stats = thread.join().unwrap().unwrap();
        eprintln!("{chip} (stub: {stub}): {stats:?}");
        // Every esptool run uploaded the stub once, and left the ROM answering.
        assert_eq!(stats.stub_starts, if stub { 7 } else { 0 }, "{stats:?}");
        assert!(!link.exists(), "the link is removed on exit");
    }
}
