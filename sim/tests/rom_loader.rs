//! The ROM serial-loader emulator spoken to directly over an in-memory stream, as a host
//! flasher speaks to a chip in download mode: SYNC, detection, plain and compressed flash
//! writes, MD5, slow reads; then hostile input, which must be answered with the ROM's error
//! codes and never take the loader down. The flasher stub and esptool: `rom_stub.rs`.

mod rom_host;

use rom_host::*;

#[tokio::test]
async fn sync_and_detection_as_esptool_does_it() {
    for chip in RomChip::ALL {
        let (mut host, task) = start(chip, blank(), LinkConfig::default());
        // Boot noise before the first frame is ignored.
        host.send_raw(b"ESP-ROM:esp32c3-api1-20210207\r\nwaiting for download\r\n")
            .await;
        host.sync().await;
        let info = host.cmd(op::GET_SECURITY_INFO, &[]).await;
        match chip {
            RomChip::Esp32c3 => {
                let info = info.ok();
                assert_eq!(info.data.len(), 20);
                assert_eq!(info.data[12..16], 5u32.to_le_bytes(), "chip id");
            }
            // The ESP32 ROM does not know the command: esptool falls back to the magic.
            RomChip::Esp32 => info.fails(op::GET_SECURITY_INFO, RomError::InvalidMessage),
        }
        assert_eq!(host.read_reg(CHIP_DETECT_MAGIC_REG).await, chip.magic());
        // UART_CLKDIV × 115200 is the 40 MHz crystal, as esptool estimates it.
        let div = host.read_reg(chip.uart_clkdiv_reg()).await & 0xF_FFFF;
        assert_eq!(div, 40_000_000 / 115_200);
        let stats = host.close(task).await;
        assert_eq!(stats.errors, u64::from(chip == RomChip::Esp32));
    }
}

#[tokio::test]
async fn flash_id_through_the_spi_registers() {
    for chip in RomChip::ALL {
        let (mut host, task) = start(chip, blank(), LinkConfig::default());
        let spi = chip.spi();
        // What esptool's run_spiflash_command does for RDID (0x9F, 24 bits back).
        let write = |addr: u32, value: u32| words(&[addr, value, 0xFFFF_FFFF, 0]);
        host.cmd(op::WRITE_REG, &write(spi.miso_dlen, 23)).await.ok();
        host.cmd(op::WRITE_REG, &write(spi.usr, 1 << 31 | 1 << 28)).await.ok();
        host.cmd(op::WRITE_REG, &write(spi.usr2, 7 << 28 | 0x9F)).await.ok();
        host.cmd(op::WRITE_REG, &write(spi.w0, 0)).await.ok();
        host.cmd(op::WRITE_REG, &write(spi.cmd(), 1 << 18)).await.ok();
        assert_eq!(host.read_reg(spi.cmd()).await & 1 << 18, 0, "command done");
        assert_eq!(host.read_reg(spi.w0).await, 0x0016_40EF, "Winbond, 4 MB");
        host.close(task).await;
    }
}

#[tokio::test]
async fn plain_write_then_md5_and_slow_read() {
    for chip in RomChip::ALL {
        let flash = blank();
        let (mut host, task) = start(chip, flash.clone(), LinkConfig::default());
        host.sync().await;
        host.attach().await;
        let image = pattern(5000, chip as u32);
        let blocks: Vec<Vec<u8>> = image
            .chunks(0x400)
            .map(|c| {
                let mut b = c.to_vec();
                b.resize(0x400, 0xFF);
                b
            })
            .collect();
        let offset = 0x10000;
        let begin = Host::begin(chip, image.len() as u32, blocks.len() as u32, 0x400, offset);
        host.cmd(op::FLASH_BEGIN, &begin).await.ok();
        for (seq, block) in blocks.iter().enumerate() {
            host.data(op::FLASH_DATA, seq as u32, block).await.ok();
        }
        let md5 = host.md5(offset, image.len() as u32).await.ok();
        assert_eq!(md5.data, md5_hex(&image), "ROM MD5 is 32 lowercase hex digits");
        assert_eq!(flash.snapshot(offset as usize, image.len()), image);
        // READ_FLASH_SLOW: always 64 bytes back, the asked-for ones first.
        let r = host.cmd(op::READ_FLASH_SLOW, &words(&[offset + 100, 10])).await.ok();
        assert_eq!(r.data.len(), 64);
        assert_eq!(r.data[..10], image[100..110]);
        // espflash's form: two more words, which the ROM does not read.
        let r = host
            .cmd(op::READ_FLASH_SLOW, &words(&[offset, 64, 0x1000, 64]))
            .await
            .ok();
        assert_eq!(r.data, image[..64]);
        host.cmd(op::FLASH_END, &words(&[1])).await.ok();
        let stats = host.close(task).await;
        assert_eq!((stats.errors, stats.sectors_erased), (0, 2));
    }
}

#[tokio::test]
async fn compressed_write_inflates_into_flash() {
    for chip in RomChip::ALL {
        let flash = blank();
        let (mut host, task) = start(chip, flash.clone(), LinkConfig::default());
        host.attach().await;
        let image: Vec<u8> = (0..200_000u32).flat_map(|i| (i / 7).to_le_bytes()).collect();
        let z = miniz_oxide::deflate::compress_to_vec_zlib(&image, 9);
        let blocks: Vec<&[u8]> = z.chunks(0x400).collect();
        // The ROM is told the uncompressed size rounded up to the block size.
        let size = image.len().div_ceil(0x400) * 0x400;
        let begin = Host::begin(chip, size as u32, blocks.len() as u32, 0x400, 0x100000);
        host.cmd(op::FLASH_DEFL_BEGIN, &begin).await.ok();
        for (seq, block) in blocks.iter().enumerate() {
            host.data(op::FLASH_DEFL_DATA, seq as u32, block).await.ok();
        }
        assert_eq!(host.md5(0x100000, image.len() as u32).await.ok().data, md5_hex(&image));
        assert_eq!(flash.snapshot(0x100000, image.len()), image);
        let stats = host.close(task).await;
        assert_eq!(stats.bytes_written, image.len() as u64);
    }
}

#[tokio::test]
async fn hostile_input_gets_the_rom_error_codes() {
    let chip = RomChip::Esp32c3;
    let flash = blank();
    let (mut host, task) = start(chip, flash.clone(), LinkConfig::default());

    // Flash access before SPI_ATTACH.
    host.md5(0, 16).await.fails(op::SPI_FLASH_MD5, RomError::FailedToAct);
    host.cmd(op::FLASH_BEGIN, &Host::begin(chip, 0x1000, 1, 0x400, 0))
        .await
        .fails(op::FLASH_BEGIN, RomError::FailedToAct);
    host.attach().await;

    // A bad SLIP escape: the frame is refused (its command byte echoed), the next one works.
    host.send_raw(&[0xC0, 0x00, op::READ_REG, 0x04, 0x00, 0xDB, 0x01, 0x00, 0xC0])
        .await;
    host.reply().await.fails(op::READ_REG, RomError::InvalidMessage);
    host.sync().await;
    // A frame larger than the ROM's receive buffer.
    let mut big = vec![0x00, op::MEM_DATA];
    big.resize(MAX_FRAME + 100, 0x11);
    host.send_raw(&slip::encode(&big)).await;
    host.reply().await.fails(op::MEM_DATA, RomError::InvalidMessage);
    // Header lies: size field longer than the data; a reply-direction frame.
    let mut lie = request(op::READ_REG, &[0, 0, 0, 0], 0);
    lie[2] = 8;
    host.send_raw(&slip::encode(&lie)).await;
    host.reply().await.fails(op::READ_REG, RomError::InvalidMessage);
    let mut reverse = request(op::READ_REG, &[0, 0, 0, 0], 0);
    reverse[0] = 1;
    host.send_raw(&slip::encode(&reverse)).await;
    host.reply().await.fails(op::READ_REG, RomError::InvalidMessage);
    // Stub-only and unknown commands, a bad SYNC, a short READ_REG.
    for unknown in [0xD0, 0xD2, 0x01, 0xFF] {
        host.cmd(unknown, &[]).await.fails(unknown, RomError::InvalidMessage);
    }
    host.cmd(op::SYNC, &[0x07; 36])
        .await
        .fails(op::SYNC, RomError::InvalidMessage);
    host.cmd(op::READ_REG, &[1, 2])
        .await
        .fails(op::READ_REG, RomError::InvalidMessage);

    // DATA without BEGIN.
    host.data(op::FLASH_DATA, 0, &[0; 0x400])
        .await
        .fails(op::FLASH_DATA, RomError::InvalidMessage);

    let offset = 0x20000;
    host.cmd(op::FLASH_BEGIN, &Host::begin(chip, 0x1000, 4, 0x400, offset))
        .await
        .ok();
    let block = pattern(0x400, 1);
    // Wrong checksum: refused, and the same block with the right one is still welcome.
    host.send(
        op::FLASH_DATA,
        &data_block(0, &block),
        u32::from(checksum(&block) ^ 0x5A),
    )
    .await;
    host.reply().await.fails(op::FLASH_DATA, RomError::BadChecksum);
    host.data(op::FLASH_DATA, 0, &block).await.ok();
    // Out of order: a repeat and a skip.
    host.data(op::FLASH_DATA, 0, &block)
        .await
        .fails(op::FLASH_DATA, RomError::InvalidMessage);
    host.data(op::FLASH_DATA, 2, &block)
        .await
        .fails(op::FLASH_DATA, RomError::InvalidMessage);
    // Data length field that lies about the block.
    let mut lying = data_block(1, &block);
    lying[0] = 0x10;
    host.send(op::FLASH_DATA, &lying, u32::from(checksum(&block))).await;
    host.reply().await.fails(op::FLASH_DATA, RomError::InvalidMessage);
    // A block bigger than this ROM takes (the ESP32-C3's is 1 KiB), even if announced.
    host.cmd(op::FLASH_BEGIN, &Host::begin(chip, 0x1000, 2, 0x800, offset))
        .await
        .ok();
    host.data(op::FLASH_DATA, 0, &pattern(0x800, 2))
        .await
        .fails(op::FLASH_DATA, RomError::InvalidMessage);
    // Larger than FLASH_BEGIN's own block size.
    host.cmd(op::FLASH_BEGIN, &Host::begin(chip, 0x1000, 4, 0x100, offset))
        .await
        .ok();
    host.data(op::FLASH_DATA, 0, &block)
        .await
        .fails(op::FLASH_DATA, RomError::InvalidParameter);
    // Programming where nothing was erased: the read-back would not match.
    host.cmd(op::FLASH_BEGIN, &Host::begin(chip, 0x400, 1, 0x400, 0x60000))
        .await
        .ok();
    host.data(op::FLASH_DATA, 0, &block).await.ok();
    host.cmd(op::FLASH_BEGIN, &Host::begin(chip, 0, 1, 0x400, 0x60000))
        .await
        .ok();
    host.data(op::FLASH_DATA, 0, &pattern(0x400, 3))
        .await
        .fails(op::FLASH_DATA, RomError::FlashWrite);

    // Past the end of the chip: the erase region, then the data beyond an erase that fits.
    let last = (FLASH_SIZE - SECTOR) as u32;
    host.cmd(op::FLASH_BEGIN, &Host::begin(chip, 0x2000, 8, 0x400, last))
        .await
        .fails(op::FLASH_BEGIN, RomError::InvalidParameter);
    host.cmd(op::FLASH_BEGIN, &Host::begin(chip, 0x1000, 8, 0x400, last + 0x10))
        .await
        .fails(op::FLASH_BEGIN, RomError::InvalidParameter);
    host.cmd(op::FLASH_BEGIN, &Host::begin(chip, 0x1000, 8, 0x400, last))
        .await
        .ok();
    for seq in 0..4 {
        host.data(op::FLASH_DATA, seq, &block).await.ok();
    }
    host.data(op::FLASH_DATA, 4, &block)
        .await
        .fails(op::FLASH_DATA, RomError::FlashWrite);
    host.md5(last, 0x1001)
        .await
        .fails(op::SPI_FLASH_MD5, RomError::FlashRead);
    host.cmd(op::READ_FLASH_SLOW, &words(&[last, 65]))
        .await
        .fails(op::READ_FLASH_SLOW, RomError::FlashReadLength);
    host.cmd(op::READ_FLASH_SLOW, &words(&[last + 0xFF0, 64]))
        .await
        .fails(op::READ_FLASH_SLOW, RomError::FlashRead);
    host.cmd(op::READ_FLASH_SLOW, &words(&[u32::MAX, 64]))
        .await
        .fails(op::READ_FLASH_SLOW, RomError::FlashRead);

    // Broken compressed streams: not zlib at all, and a good stream with a bad Adler-32.
    host.cmd(op::FLASH_DEFL_BEGIN, &Host::begin(chip, 0x1000, 1, 0x400, 0x30000))
        .await
        .ok();
    let junk = pattern(200, 4);
    host.data(op::FLASH_DEFL_DATA, 0, &junk)
        .await
        .fails(op::FLASH_DEFL_DATA, RomError::Inflate);
    let mut z = miniz_oxide::deflate::compress_to_vec_zlib(&b"abcdefgh".repeat(512), 6);
    let n = z.len();
    z[n - 1] ^= 0xFF;
    host.cmd(op::FLASH_DEFL_BEGIN, &Host::begin(chip, 0x1000, 1, 0x400, 0x30000))
        .await
        .ok();
    host.data(op::FLASH_DEFL_DATA, 0, &z)
        .await
        .fails(op::FLASH_DEFL_DATA, RomError::InflateAdler);
    // Plain DATA into a compressed write.
    host.cmd(op::FLASH_DEFL_BEGIN, &Host::begin(chip, 0x1000, 1, 0x400, 0x30000))
        .await
        .ok();
    host.data(op::FLASH_DATA, 0, &block)
        .await
        .fails(op::FLASH_DATA, RomError::InvalidMessage);

    // ESP32-C3 flash encryption is not emulated; a UART does not run at 0 or 10 Mbaud.
    host.cmd(op::FLASH_BEGIN, &words(&[0x1000, 1, 0x400, 0x40000, 1]))
        .await
        .fails(op::FLASH_BEGIN, RomError::FailedToAct);
    for baud in [0, 10_000_000] {
        host.cmd(op::CHANGE_BAUDRATE, &words(&[baud, 0]))
            .await
            .fails(op::CHANGE_BAUDRATE, RomError::InvalidParameter);
    }

    // Still fully working: a clean write lands.
    host.cmd(op::FLASH_BEGIN, &Host::begin(chip, 0x400, 1, 0x400, 0x50000))
        .await
        .ok();
    host.data(op::FLASH_DATA, 0, &block).await.ok();
    assert_eq!(flash.snapshot(0x50000, 0x400), block);
    host.close(task).await;
}

#[tokio::test]
async fn esp32_rom_takes_four_begin_words_and_4k_blocks() {
    let chip = RomChip::Esp32;
    let (mut host, task) = start(chip, blank(), LinkConfig::default());
    host.attach().await;
    host.cmd(op::FLASH_BEGIN, &words(&[0x2000, 2, 0x1000, 0x10000, 0]))
        .await
        .fails(op::FLASH_BEGIN, RomError::InvalidMessage);
    host.cmd(op::FLASH_BEGIN, &words(&[0x3000, 3, 0x1400, 0x10000]))
        .await
        .ok();
    host.data(op::FLASH_DATA, 0, &pattern(0x1000, 1)).await.ok();
    host.data(op::FLASH_DATA, 1, &pattern(0x1400, 1))
        .await
        .fails(op::FLASH_DATA, RomError::InvalidMessage);
    host.close(task).await;
}

/// Random bytes and random well-framed requests: every frame gets an answer, nothing
/// panics, and the loader still syncs and flashes afterwards.
#[tokio::test]
async fn fuzzed_input_never_takes_the_loader_down() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0707_1220);
    for chip in RomChip::ALL {
        let flash = blank();
        let (mut host, task) = start(chip, flash, LinkConfig::default());
        host.attach().await;
        for round in 0..3000 {
            let frame = if round % 3 == 0 {
                // Raw noise with delimiters and escapes sprinkled in.
                (0..rng.random_range(1..200))
                    .map(|_| match rng.random_range(0..10) {
                        0 => 0xC0,
                        1 => 0xDB,
                        _ => rng.random(),
                    })
                    .collect::<Vec<u8>>()
            } else {
                let command = [
                    op::FLASH_BEGIN,
                    op::FLASH_DATA,
                    op::FLASH_DEFL_BEGIN,
                    op::FLASH_DEFL_DATA,
                ]
                .into_iter()
                .chain(0x00..=0x20)
                .nth(rng.random_range(0..37))
                .unwrap();
                let len = rng.random_range(0..80);
                let mut data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                if command == op::WRITE_REG {
                    // No register delays: they are real waits.
                    for tuple in data.chunks_mut(16).filter(|t| t.len() == 16) {
                        tuple[12..].fill(0);
                    }
                }
                if command == op::FLASH_BEGIN || command == op::FLASH_DEFL_BEGIN {
                    // Keep erases small so the run stays quick; still random otherwise.
                    data.resize(20, 0);
                    data[0..4].copy_from_slice(&(rng.random_range(0..0x3000u32)).to_le_bytes());
                }
                slip::encode(&request(command, &data, rng.random_range(0..0x200)))
            };
            host.send_raw(&frame).await;
        }
        // Close any half-open frame, then the loader must still talk.
        host.send_raw(&[0xC0, 0xC0]).await;
        host.frames.clear();
        host.send(op::SYNC, &SYNC_PAYLOAD, 0).await;
        let mut synced = 0;
        while synced < 8 {
            let r = host.reply().await;
            if r.op == op::SYNC && r.error.is_none() {
                synced += 1;
            }
        }
        let stats = host.close(task).await;
        assert!(stats.commands > 1000, "{stats:?}");
    }
}

/// With pacing, bytes take their 8N1 time at the current rate, and CHANGE_BAUDRATE changes
/// the rate right after its own reply.
#[tokio::test(start_paused = true)]
async fn pacing_follows_the_baud_rate() {
    sim::time::use_virtual_time();
    let link = LinkConfig {
        pacing: true,
        stall: None,
    };
    let (mut host, task) = start(RomChip::Esp32c3, blank(), link);
    // SYNC request: 46 bytes on the wire; 8 replies of 14 bytes back.
    let wire = (46 + 8 * 14) as f64;
    let t0 = sim::time::now();
    host.sync().await;
    let slow = (sim::time::now() - t0).as_secs_f64();
    let expected = wire * 10.0 / 115_200.0;
    assert!(
        (slow - expected).abs() < 0.002,
        "{slow} s at 115200, expected {expected}"
    );
    host.cmd(op::CHANGE_BAUDRATE, &words(&[921_600, 0])).await.ok();
    let t1 = sim::time::now();
    host.sync().await;
    let fast = (sim::time::now() - t1).as_secs_f64();
    let expected = wire * 10.0 / 921_600.0;
    assert!(
        (fast - expected).abs() < 0.001,
        "{fast} s at 921600, expected {expected}"
    );
    host.close(task).await;
}
