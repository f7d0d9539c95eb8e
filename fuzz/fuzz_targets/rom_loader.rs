//! The ROM loader emulator's command decoder (`sim::rom::RomLoader::handle`) on the frames
//! a fuzz byte stream decodes to, starting from a synced loader most of the time so that
//! the flash commands are reached.
//!
//! Input: chip (1 byte), then the SLIP stream.
//!
//! Asserts: no panic; every reply is a response packet (direction 1) to the command it
//! answers, with a size field that matches, and frames as one SLIP frame.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use sim::flash::{FlashTiming, SimFlash};
use sim::rom::protocol::{SYNC_PAYLOAD, op, request};
use sim::rom::slip::{self, Decoder};
use sim::rom::{RomChip, RomLoader};

const FLASH: usize = 256 * 1024;

thread_local! {
    static RT: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime"),
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let chip = if flags & 1 == 0 {
        RomChip::Esp32
    } else {
        RomChip::Esp32c3
    };
    let timing = FlashTiming {
        erase_sector: std::time::Duration::ZERO,
        erase_block: std::time::Duration::ZERO,
        program_page: std::time::Duration::ZERO,
        read_sector: std::time::Duration::ZERO,
    };
    RT.with(|rt| {
        rt.borrow().block_on(async {
            let flash = SimFlash::new(FLASH, timing);
            let mut loader = RomLoader::new(chip, flash);
            let mut frames = Vec::new();
            if flags & 2 == 0 {
                frames.push(Ok(request(op::SYNC, &SYNC_PAYLOAD, 0)));
                frames.push(Ok(request(op::SPI_ATTACH, &[0u8; 8], 0)));
            }
            let mut d = Decoder::new(0x4000 + 64);
            for &b in stream {
                if let Some(f) = d.push(b) {
                    frames.push(f);
                }
            }
            for frame in frames.into_iter().take(64) {
                let command = match &frame {
                    Ok(f) => f.get(1).copied().unwrap_or(0),
                    Err(e) => e.head().get(1).copied().unwrap_or(0),
                };
                let handled = loader.handle(frame).await;
                for reply in &handled.replies {
                    assert!(reply.len() >= 8, "reply shorter than a header");
                    assert_eq!(reply[0], 1, "reply direction");
                    assert_eq!(reply[1], command, "reply to another command");
                    let size = usize::from(u16::from_le_bytes([reply[2], reply[3]]));
                    assert_eq!(size, reply.len() - 8, "reply size field");
                    // What goes on the wire is one SLIP frame that decodes to the reply.
                    let framed = slip::encode(reply);
                    let mut rd = Decoder::new(1 << 20);
                    let decoded: Vec<_> = framed.iter().filter_map(|&b| rd.push(b)).collect();
                    assert_eq!(decoded, vec![Ok(reply.clone())]);
                }
            }
        })
    });
});
