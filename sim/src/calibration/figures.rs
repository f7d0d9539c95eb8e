//! Published download timings of AT-socket modems, with where each comes from and under
//! which conditions it was measured.
//!
//! Only figures that were found in a public source are here, each as its source states it
//! (an "about" or "always" in the source stays in `what`). A figure the bench can replay
//! carries a [`Replay`]: the settings that reproduce its conditions on the bench. One that
//! cannot be replayed says why, so the table also records what the model does not cover.

/// A published timing.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// Short stable name, used by the tests.
    pub id: &'static str,
    /// Where it was published (a URL).
    pub source: &'static str,
    /// What was measured, in the source's words where they matter.
    pub what: &'static str,
    /// Modem, host, UART rate, read size, image and strategy, as far as the source says.
    pub conditions: &'static str,
    /// Seconds the source reports.
    pub observed_s: f64,
    /// How the bench reproduces it; `Err` says why it cannot.
    pub replay: Result<Replay, &'static str>,
    /// Used to fit the modem model (its prediction then proves nothing).
    pub fit: bool,
}

/// The bench settings of a published run: TinyGSM's `CIPRXGET` reads feeding Arduino
/// `Update` (the naive strategy) on the SIM7600 emulator.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// Bytes the timed part of the run moved.
    pub bytes: usize,
    /// Payload bytes per `AT+CIPRXGET=2` read. TinyGSM asks for the free space of its
    /// receive FIFO, and its FIFO keeps one slot empty: `TINY_GSM_RX_BUFFER - 1`.
    pub read_block: usize,
    pub baud: u32,
    /// The carrier NAT's idle timeout, seconds (`None`: a public address).
    pub nat_idle_s: Option<u64>,
}

/// TinyGSM's default `TINY_GSM_RX_BUFFER` (64) less the slot its FIFO keeps empty.
const DEFAULT_FIFO_READ: usize = 63;
/// `TINY_GSM_RX_BUFFER 1024`, as TinyGSM's FileDownload example and the M5Stack
/// OTAoverLTE sketch derived from it set it, less the empty slot.
const EXAMPLE_FIFO_READ: usize = 1023;

/// The M5Stack forum thread of the seed field case.
const SEED_THREAD: &str = "https://forum.m5stack.com/topic/4838/ota-firmware-upgrades-over-lte";
/// The same author's sketch read 129,867 of 233,040 bytes in 58.87 s (the field record in
/// docs/CELLULAR.md; the thread says "the duration value is always 59s +/- 0.5").
const SEED_IMAGE: usize = 233_040;

pub const FIGURES: &[Figure] = &[
    Figure {
        id: "seed-partial",
        source: SEED_THREAD,
        what: "the author's sketch behind a CGNAT: 129,867 of 233,040 bytes read when the socket died at 58.87 s",
        conditions: "ESP32 (M5Stack Core) + SIM7600 (COM.LTE), 115200 baud, TinyGSM with its default 64-byte FIFO (63-byte CIPRXGET reads), Arduino Update, one GET",
        observed_s: 58.87,
        replay: Ok(Replay {
            bytes: 129_867,
            read_block: DEFAULT_FIFO_READ,
            baud: 115_200,
            nat_idle_s: None,
        }),
        fit: true,
    },
    Figure {
        id: "seed-public-ip",
        source: SEED_THREAD,
        what: "the same sketch on an APN with a public IP: the whole image \"after around 105s\"",
        conditions: "as seed-partial, no NAT, 233,040 bytes; the same sketch and settings as the fitted figure, so this checks only that the drain rate holds over the whole image",
        observed_s: 105.0,
        replay: Ok(Replay {
            bytes: SEED_IMAGE,
            read_block: DEFAULT_FIFO_READ,
            baud: 115_200,
            nat_idle_s: None,
        }),
        fit: false,
    },
    Figure {
        id: "seed-example-sketch",
        source: SEED_THREAD,
        what: "the example sketch the author started from, same image, same CGNAT APN: \"it is always 35s\"",
        conditions: "felmue's OTAoverLTE sketch tweaked to SIM7600, 115200 baud, TINY_GSM_RX_BUFFER 1024 (1023-byte reads), Update.write per byte, 233,040 bytes",
        observed_s: 35.0,
        replay: Ok(Replay {
            bytes: SEED_IMAGE,
            read_block: EXAMPLE_FIFO_READ,
            baud: 115_200,
            nat_idle_s: Some(59),
        }),
        fit: false,
    },
    Figure {
        id: "felmue-sim7600g",
        source: "https://github.com/felmue/MyM5StackExamples/issues/3",
        what: "the sketch's author on his own board: \"292304 bytes take about 42 seconds to download\"",
        conditions: "M5Stack Core + SIM7600G (not -H), OTAoverLTE sketch: 115200 baud, TINY_GSM_RX_BUFFER 1024 (1023-byte reads), Update.write per byte",
        observed_s: 42.0,
        replay: Ok(Replay {
            bytes: 292_304,
            read_block: EXAMPLE_FIFO_READ,
            baud: 115_200,
            nat_idle_s: None,
        }),
        fit: false,
    },
    Figure {
        id: "dan-kiefer-sim7600g-h",
        source: "https://github.com/felmue/MyM5StackExamples/issues/3",
        what: "\"incredibly slow at 2kB/sec. A 1MB download takes almost 10 minutes\"",
        conditions: "M5Stack Core + SIM7600G-H; sketch, read size and baud not stated",
        observed_s: 600.0,
        replay: Err(
            "the read size and UART rate are not stated: with the 1023-byte reads of the sketch the issue is filed against, its author reports ~7 kB/s on a SIM7600G, so replaying the 2 kB/s would mean guessing a setting",
        ),
        fit: false,
    },
    Figure {
        id: "tinygsm-414-sim800l-256",
        source: "https://github.com/vshymanskyy/TinyGSM/issues/414",
        what: "FileDownload of test_100k.bin (102,400 B) \"with around 583 seconds\" at TINY_GSM_RX_BUFFER 256",
        conditions: "ESP8266 (Wemos D1 mini) + SIM800L, 2G GPRS, TinyGSM FileDownload example",
        observed_s: 583.0,
        replay: Err(
            "SIM800L on 2G: the bench has no SIM800 dialect and no GPRS link model; at about 180 B/s the radio link, not the UART, sets the time",
        ),
        fit: false,
    },
    Figure {
        id: "tinygsm-414-sim800l-512",
        source: "https://github.com/vshymanskyy/TinyGSM/issues/414",
        what: "the same download \"with around 544 seconds\" at TINY_GSM_RX_BUFFER 512",
        conditions: "as tinygsm-414-sim800l-256, TINY_GSM_RX_BUFFER 512",
        observed_s: 544.0,
        replay: Err(
            "SIM800L on 2G: the bench has no SIM800 dialect and no GPRS link model; at about 190 B/s the radio link, not the UART, sets the time",
        ),
        fit: false,
    },
    Figure {
        id: "tinygsm-348-sim7000e",
        source: "https://github.com/vshymanskyy/TinyGSM/issues/348",
        what: "FileDownload of the 100k test file: \"I receive 5k bytes/s\" (102,400 B / 5,000 B/s = 20.5 s), the same at 115200, 230400 and 921600 baud",
        conditions: "ESP32 + SIM7000E, TinyGSM 0.7.9 FileDownload example (TINY_GSM_RX_BUFFER 1024); network (Cat-M or NB-IoT) not stated",
        observed_s: 20.5,
        replay: Err(
            "no SIM7000 emulator (TinyGSM drives it with SIM800-style CIPRXGET), and a rate that does not change with the baud is set by the radio link, whose rate the report does not give",
        ),
        fit: false,
    },
    Figure {
        id: "tinygsm-348-furqon",
        source: "https://github.com/vshymanskyy/TinyGSM/issues/348",
        what: "767,892 of 938,256 bytes \"Downloaded in: 3702.79s\" before the download stopped",
        conditions: "TinyGSM file download; modem, network, baud and read size not stated",
        observed_s: 3702.79,
        replay: Err(
            "the modem, network and settings are not stated; 207 B/s is far below any UART rate, so the link or the host set it",
        ),
        fit: false,
    },
    Figure {
        id: "lilygo-494-a7670e",
        source: "https://github.com/Xinyuan-LilyGO/LilyGo-Modem-Series/issues/494",
        what: "\"around 30+ minutes for 1.5 MB\" over the modem at 115200 baud",
        conditions: "LilyGO T-A7670E (ESP32 + SIMCom A7670E, LTE Cat-1), 115200 baud; download method and read size not stated",
        observed_s: 1800.0,
        replay: Err("the A7670 is not emulated and the download method and read size are not stated"),
        fit: false,
    },
    Figure {
        id: "lilygo-526-sim7670g",
        source: "https://github.com/Xinyuan-LilyGO/LilyGo-Modem-Series/issues/526",
        what: "a .bin over HTTP from ESP-IDF: \"about 10 minutes for 400kb\"",
        conditions: "LilyGO T-SIM7670G-ESP32S3 (SIMCom SIM7670G), ESP-IDF; baud and AT commands not stated",
        observed_s: 600.0,
        replay: Err("the SIM7670G is not emulated and the AT commands, read size and baud are not stated"),
        fit: false,
    },
];
