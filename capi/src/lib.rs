//! otactl's OTA core behind a C ABI: a firmware written in C (Arduino, ESP-IDF, bare metal)
//! hands over its UART, flash and clock as callbacks and gets the same update path the
//! otactl firmware runs: signed manifest, journaled Range download sized to the carrier's
//! NAT, image checks, one otadata write, confirm or roll back after the reboot.
//!
//! No heap: the caller gives the engine's memory (`otactl_state_size()` bytes, at most
//! [`OTACTL_STATE_BYTES`] on every target). Every call blocks until it is done,
//! driving the core's futures with a poll loop over the blocking callbacks ([`io`]).
//! See docs/c-api.md.
// The crate exists to cross the C boundary: raw pointers from C, calls through C function
// pointers, and the engine placed in caller memory all need `unsafe`. It stays in this
// crate (the workspace denies it elsewhere) and every block says why it is sound.
#![allow(unsafe_code)]
#![cfg_attr(target_os = "none", no_std)]
// The C names (`otactl_config`, …) are the ABI; cbindgen copies them to the header.
#![allow(non_camel_case_types)]

mod config;
mod engine;
mod events;
mod io;
mod status;

use core::ffi::{c_char, c_void};
use core::future::Future;
use core::mem::{align_of, size_of};
use core::pin::Pin;

pub use config::{
    ChipCode, DEFAULT_BACKOFF_INITIAL_MS, DEFAULT_BACKOFF_MAX_MS, DEFAULT_CHUNK_MAX, DEFAULT_CHUNK_MIN,
    DEFAULT_NAT_IDLE_TIMEOUT_S, DEFAULT_RETRIES, DEFAULT_SAFETY_PERMILLE, DialectCode, MAX_PUBLIC_KEYS, otactl_config,
};
pub use engine::Engine;
pub use events::{EVENT_TEXT_BYTES, EventKind, otactl_event};
pub use io::{UART_POLL_US, otactl_callbacks};
pub use status::Status;

use crate::config::Settings;
use crate::engine::Failure;
use device_fw::ota::update::BootReport;

/// RAM a caller gives the engine, alignment slack included: `static uint8_t
/// mem[OTACTL_STATE_BYTES];` is enough on every supported target (27.3 KiB are used on a
/// 64-bit host, less on the 32-bit chips); `otactl_state_size()` is the exact figure.
pub const OTACTL_STATE_BYTES: usize = 28672;

/// The alignment of the engine and of the call futures inside the state memory.
const STATE_ALIGN: usize = 16;

const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// The size of what `f` returns, without calling it: the futures of the calls are unnamed
/// types, but a fn item instantiated at `'static` names them.
const fn output_size<A, F, G: FnOnce(A) -> F>(_: &G) -> usize {
    size_of::<F>()
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The largest call future: the memory after the engine holds whichever call runs.
const CALL_BYTES: usize = max(
    output_size::<&'static Engine, _, _>(&engine::check),
    max(
        output_size::<&'static Engine, _, _>(&engine::install),
        output_size::<&'static Engine, _, _>(&engine::start_duties),
    ),
);
const ENGINE_BYTES: usize = round_up(size_of::<Engine>(), STATE_ALIGN);
/// Exact state size on this target: alignment slack, engine, call future.
const STATE_SIZE: usize = STATE_ALIGN - 1 + ENGINE_BYTES + round_up(CALL_BYTES, STATE_ALIGN);

const _: () = assert!(align_of::<Engine>() <= STATE_ALIGN);
// The figure the header states: a build for any target fails when it no longer holds.
const _: () = assert!(
    STATE_SIZE <= OTACTL_STATE_BYTES,
    "raise OTACTL_STATE_BYTES and docs/c-api.md"
);

/// What `otactl_check` found.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct otactl_check_result {
    /// The release is for this device and newer: `otactl_update` would install it.
    pub update_available: bool,
    /// `OTACTL_STATUS_OK`, or why this device would not install it (`NOT_NEWER`, …).
    pub verdict: i32,
    /// The release's image size in bytes.
    pub size: u32,
    /// The release's version, NUL-terminated.
    pub version: [c_char; 32],
}

/// What `otactl_update` activated: reboot to run it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct otactl_update_result {
    /// The OTA slot otadata now selects (`ota_<slot>`).
    pub slot: u32,
    pub version: [c_char; 32],
}

/// What `otactl_after_boot` did.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootOutcome {
    /// Nothing was pending.
    Steady = 0,
    /// First boot of an update: the self-test passed and the app is marked valid.
    Confirmed = 1,
    /// First boot of an update and the self-test failed: marked invalid. Reboot now; the
    /// bootloader starts the previous app.
    RollbackRequested = 2,
}

fn version_field(v: &str) -> [c_char; 32] {
    let mut out = [0 as c_char; 32];
    for (o, b) in out.iter_mut().zip(v.bytes().take(31)) {
        *o = b as c_char;
    }
    out
}

/// Bytes of state memory `otactl_init` needs on this target (alignment slack included).
#[unsafe(no_mangle)]
pub extern "C" fn otactl_state_size() -> usize {
    STATE_SIZE
}

/// Where the engine goes in the caller's memory: the first aligned byte. The call future
/// follows it, ENGINE_BYTES on (see `run`); STATE_SIZE counts the slack, the engine and the
/// future, so both stay inside the `STATE_SIZE` bytes `otactl_init` checked.
fn engine_slot(mem: *mut u8) -> *mut Engine {
    mem.wrapping_add(round_up(mem as usize, STATE_ALIGN) - mem as usize)
        .cast()
}

/// Fills `config` with defaults (the profile's: 30 s NAT, 4 KiB..512 KiB chunks, 115200
/// baud, ESP32-C3, SIM7600, 4 MB flash) and NULL strings.
///
/// # Safety
/// `config` is NULL or points at writable memory for an `otactl_config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otactl_config_default(config: *mut otactl_config) {
    if !config.is_null() {
        // SAFETY: non-NULL and writable, as the caller promised.
        unsafe { config.write(otactl_config::default()) };
    }
}

/// Checks the settings, reads the partition table and what runs, and places the engine at
/// the start of `mem` (`mem_len` >= `otactl_state_size()`, any alignment). The memory
/// belongs to the engine until the caller stops using `*engine_out`; nothing else needs
/// freeing. `config` and its strings may be freed after the call. On failure `mem` holds
/// the details as a NUL-terminated string (`printf("%s", (char *)mem)`).
///
/// # Safety
/// `mem` is writable for `mem_len` bytes; `config` and `callbacks` point at valid values
/// whose strings and key bytes are as `otactl_config` says; `engine_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otactl_init(
    mem: *mut c_void,
    mem_len: usize,
    config: *const otactl_config,
    callbacks: *const otactl_callbacks,
    engine_out: *mut *mut Engine,
) -> i32 {
    if mem.is_null() || config.is_null() || callbacks.is_null() || engine_out.is_null() {
        return Status::InvalidArgument as i32;
    }
    if mem_len < STATE_SIZE {
        return Status::StateTooSmall as i32;
    }
    // SAFETY: non-NULL and valid, as the caller promised.
    let Some(io) = io::Io::new(unsafe { &*callbacks }) else {
        return Status::InvalidArgument as i32;
    };
    // SAFETY: non-NULL and valid, strings and keys as documented.
    let settings = match unsafe { Settings::from_c(&*config) } {
        Ok(s) => s,
        Err(e) => {
            let f = Failure::new(Status::Config, format_args!("{e}"));
            // SAFETY: `mem` is writable for `mem_len` bytes.
            unsafe { write_init_error(mem.cast(), mem_len, &f.text) };
            return Status::Config as i32;
        }
    };
    let engine_at = engine_slot(mem.cast());
    let mut start = core::pin::pin!(Engine::start(io, settings));
    // Start runs before any engine exists, so it polls with a loop of its own over the
    // callbacks it is about to own; it reads flash only and never pends.
    let started = poll_to_end(start.as_mut());
    match started {
        Ok(engine) => {
            // SAFETY: `engine_at` is STATE_ALIGN-aligned and ENGINE_BYTES of it lie inside
            // the caller's `mem_len` bytes (checked against STATE_SIZE above).
            unsafe {
                engine_at.write(engine);
                engine_out.write(engine_at);
            }
            Status::Ok as i32
        }
        Err(f) => {
            // SAFETY: `mem` is writable for `mem_len` bytes.
            unsafe { write_init_error(mem.cast(), mem_len, &f.text) };
            f.status as i32
        }
    }
}

/// A failed `otactl_init` has no engine to keep its details in, so they go to the start
/// of the caller's memory as a NUL-terminated string (cut to `mem_len`).
///
/// # Safety
/// `mem` is writable for `mem_len` bytes.
unsafe fn write_init_error(mem: *mut u8, mem_len: usize, text: &str) {
    if mem_len == 0 {
        return;
    }
    let n = text.len().min(mem_len - 1);
    // SAFETY: `n + 1 <= mem_len` bytes from `mem`, writable as the caller promised; `text`
    // cannot overlap caller memory (it lives in the engine's own stack frame).
    unsafe {
        core::ptr::copy_nonoverlapping(text.as_ptr(), mem, n);
        mem.add(n).write(0);
    }
}

/// Polls a future that completes without waiting (flash reads only).
fn poll_to_end<F: Future>(mut fut: Pin<&mut F>) -> F::Output {
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    loop {
        if let core::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Runs one call: its future in the state memory after the engine, polled to the end.
///
/// # Safety
/// `engine` came from `otactl_init` and its memory is still the engine's.
unsafe fn run<'e, F, T>(engine: *mut Engine, call: fn(&'e Engine) -> F, done: impl FnOnce(&Engine, T) -> i32) -> i32
where
    F: Future<Output = Result<T, Failure>> + 'e,
{
    const {
        assert!(size_of::<F>() <= round_up(CALL_BYTES, STATE_ALIGN));
        assert!(align_of::<F>() <= STATE_ALIGN);
    }
    if engine.is_null() {
        return Status::InvalidArgument as i32;
    }
    // SAFETY: `engine` points at the engine `otactl_init` wrote, which lives as long as the
    // caller keeps the memory ('e); only shared references to it are ever made.
    let e: &'e Engine = unsafe { &*engine };
    if e.busy.replace(true) {
        return Status::Busy as i32;
    }
    let slot = engine.cast::<u8>().wrapping_add(ENGINE_BYTES).cast::<F>();
    // SAFETY: `slot` is aligned (ENGINE_BYTES is a multiple of STATE_ALIGN and the engine is
    // aligned) and has room for F (the const assertion and STATE_SIZE); `busy` keeps any
    // other call out of it while this future lives. The future is pinned there until it is
    // dropped in place below, and never moved.
    let out = unsafe {
        slot.write(call(e));
        let out = e.io.block_on(Pin::new_unchecked(&mut *slot));
        core::ptr::drop_in_place(slot);
        out
    };
    let rc = match out {
        Ok(value) => {
            e.set_last_error("");
            done(e, value)
        }
        Err(f) => {
            e.set_last_error(&f.text);
            f.status as i32
        }
    };
    e.busy.set(false);
    rc
}

/// Fetches the manifest and judges it (signature, product, channel, chip, board, version,
/// rollout, size) without writing flash. Blocks until done.
///
/// # Safety
/// `engine` came from `otactl_init`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otactl_check(engine: *mut Engine, out: *mut otactl_check_result) -> i32 {
    // SAFETY: as this function's contract.
    unsafe {
        run(engine, engine::check, |_, offer| {
            if !out.is_null() {
                // SAFETY: non-NULL and writable, as the caller promised.
                out.write(otactl_check_result {
                    update_available: offer.verdict.is_ok(),
                    verdict: offer.verdict.err().unwrap_or(Status::Ok) as i32,
                    size: offer.size,
                    version: version_field(&offer.version),
                });
            }
            Status::Ok as i32
        })
    }
}

/// Runs one whole update: manifest, checks, journaled download into the inactive slot,
/// image checks, activation. On `OTACTL_STATUS_OK` reboot to start the new app. A failed
/// download resumes where it stopped on the next call. Blocks until done.
///
/// # Safety
/// `engine` came from `otactl_init`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otactl_update(engine: *mut Engine, out: *mut otactl_update_result) -> i32 {
    // SAFETY: as this function's contract.
    unsafe {
        run(engine, engine::install, |_, activated| {
            if !out.is_null() {
                // SAFETY: non-NULL and writable, as the caller promised.
                out.write(otactl_update_result {
                    slot: activated.slot as u32,
                    version: version_field(&activated.version),
                });
            }
            Status::Ok as i32
        })
    }
}

/// The start duties, once per boot before `otactl_update`: after an update, test the
/// modem and the origin and confirm the new app (or mark it invalid: then reboot); after a
/// rollback, remember the version that failed so it is not installed again.
///
/// # Safety
/// `engine` came from `otactl_init`; `outcome` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otactl_after_boot(engine: *mut Engine, outcome: *mut BootOutcome) -> i32 {
    // SAFETY: as this function's contract.
    unsafe {
        run(engine, engine::start_duties, |_, report| {
            if !outcome.is_null() {
                let o = match report {
                    BootReport::Steady => BootOutcome::Steady,
                    BootReport::Confirmed => BootOutcome::Confirmed,
                    BootReport::RollbackRequested => BootOutcome::RollbackRequested,
                };
                // SAFETY: non-NULL and writable, as the caller promised.
                outcome.write(o);
            }
            Status::Ok as i32
        })
    }
}

/// The details of the last failed call (which field, which offset), NUL-terminated; "" after
/// a success. Valid until the next call on this engine.
///
/// # Safety
/// `engine` is NULL or came from `otactl_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otactl_last_error(engine: *const Engine) -> *const c_char {
    if engine.is_null() {
        return c"".as_ptr();
    }
    // SAFETY: an engine from `otactl_init`; the text lives in it.
    let e = unsafe { &*engine };
    e.last_error.as_ptr().cast::<c_char>()
}

/// A static NUL-terminated message for any status code (also for codes never issued).
#[unsafe(no_mangle)]
pub extern "C" fn otactl_error_message(code: i32) -> *const c_char {
    Status::message_of(code).as_ptr()
}

/// The stable short name of a status code (`"bad-signature"`), as console events use it.
#[unsafe(no_mangle)]
pub extern "C" fn otactl_error_name(code: i32) -> *const c_char {
    Status::name_of(code).as_ptr()
}

#[cfg(all(target_os = "none", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    unsafe extern "C" {
        /// Supplied by the firmware: must not return (reset the chip, so that an app that
        /// panics before it confirmed itself is rolled back by the bootloader).
        fn otactl_panic() -> !;
    }
    // SAFETY: the firmware's function, which the docs require it to define.
    unsafe { otactl_panic() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_size_is_slack_plus_engine_plus_the_largest_call() {
        let largest = [
            output_size::<&'static Engine, _, _>(&engine::check),
            output_size::<&'static Engine, _, _>(&engine::install),
            output_size::<&'static Engine, _, _>(&engine::start_duties),
        ]
        .into_iter()
        .max()
        .unwrap();
        assert_eq!(
            otactl_state_size(),
            STATE_ALIGN - 1 + round_up(size_of::<Engine>(), STATE_ALIGN) + round_up(largest, STATE_ALIGN)
        );
        assert!(otactl_state_size() <= OTACTL_STATE_BYTES);
        println!("otactl_state_size() on this target: {} B", otactl_state_size());
    }

    #[test]
    fn the_defaults_are_the_profile_defaults() {
        use device_fw::profile::{
            DEFAULT_BACKOFF_INITIAL_MS as BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX_MS as BACKOFF_MAX,
            DEFAULT_CHUNK_MAX as CHUNK_MAX, DEFAULT_CHUNK_MIN as CHUNK_MIN, DEFAULT_NAT_IDLE_TIMEOUT_S as NAT,
            DEFAULT_RETRIES as RETRIES, DEFAULT_SAFETY_FACTOR as SAFETY,
        };
        let c = otactl_config::default();
        assert_eq!(c.nat_idle_timeout_s, NAT);
        assert_eq!(c.safety_permille, (SAFETY * 1000.0).round() as u32);
        assert_eq!((c.chunk_min, c.chunk_max), (CHUNK_MIN, CHUNK_MAX));
        assert_eq!(c.retries, u32::from(RETRIES));
        assert_eq!((c.backoff_initial_ms, c.backoff_max_ms), (BACKOFF_INITIAL, BACKOFF_MAX));
    }

    unsafe extern "C" fn no_read(_: *mut c_void, _: *mut u8, _: usize, _: u32) -> i32 {
        -1
    }
    unsafe extern "C" fn no_write(_: *mut c_void, _: *const u8, _: usize) -> i32 {
        -1
    }
    unsafe extern "C" fn no_flash_read(_: *mut c_void, _: u32, _: *mut u8, _: usize) -> i32 {
        -1
    }
    unsafe extern "C" fn no_flash_write(_: *mut c_void, _: u32, _: *const u8, _: usize) -> i32 {
        -1
    }
    unsafe extern "C" fn no_erase(_: *mut c_void, _: u32, _: u32) -> i32 {
        -1
    }
    unsafe extern "C" fn zero_time(_: *mut c_void) -> u64 {
        0
    }
    unsafe extern "C" fn no_sleep(_: *mut c_void, _: u64) {}

    fn callbacks() -> otactl_callbacks {
        otactl_callbacks {
            ctx: core::ptr::null_mut(),
            uart_read: Some(no_read),
            uart_write: Some(no_write),
            uart_set_baud: None,
            flash_read: Some(no_flash_read),
            flash_write: Some(no_flash_write),
            flash_erase: Some(no_erase),
            now_us: Some(zero_time),
            sleep_us: Some(no_sleep),
            event: None,
        }
    }

    /// Runs `otactl_init` on `config`; the status and the text it left in the memory.
    fn init(config: &otactl_config, callbacks: &otactl_callbacks, mem_len: usize) -> (i32, String) {
        let mut mem = vec![0u8; OTACTL_STATE_BYTES];
        let mut engine = core::ptr::null_mut();
        // SAFETY: the memory, config and callbacks live across the call; strings are static.
        let rc = unsafe { otactl_init(mem.as_mut_ptr().cast(), mem_len, config, callbacks, &mut engine) };
        let text = core::ffi::CStr::from_bytes_until_nul(&mem)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        (rc, text)
    }

    fn good_config(key: &[u8; 32]) -> otactl_config {
        otactl_config {
            manifest_url: c"http://ota.example.com/fleet/stable/manifest.json".as_ptr(),
            product: c"field-logger".as_ptr(),
            channel: c"stable".as_ptr(),
            board: c"board".as_ptr(),
            device_id: c"device-1".as_ptr(),
            apn: c"internet".as_ptr(),
            public_keys: key.as_ptr(),
            public_key_count: 1,
            ..otactl_config::default()
        }
    }

    #[test]
    fn a_wrong_setting_is_named_in_the_memory() {
        let key = [7u8; 32];
        let cb = callbacks();
        let (rc, text) = init(&otactl_config::default(), &cb, OTACTL_STATE_BYTES);
        assert_eq!((rc, text.as_str()), (Status::Config as i32, "manifest_url is NULL"));
        let config = otactl_config {
            nat_idle_timeout_s: 1,
            ..good_config(&key)
        };
        let (rc, text) = init(&config, &cb, OTACTL_STATE_BYTES);
        assert_eq!(rc, Status::Config as i32);
        assert_eq!(text, "nat_idle_timeout_s is 1; use 2 to 7440");
        let config = otactl_config {
            apn: c"bad\"apn".as_ptr(),
            ..good_config(&key)
        };
        assert_eq!(init(&config, &cb, OTACTL_STATE_BYTES).0, Status::Config as i32);
        let config = otactl_config {
            public_key_count: 3,
            ..good_config(&key)
        };
        assert!(
            init(&config, &cb, OTACTL_STATE_BYTES)
                .1
                .starts_with("public_keys must hold 1 to 2 keys")
        );
    }

    #[test]
    fn too_little_memory_or_a_missing_callback_is_refused() {
        let key = [7u8; 32];
        let cb = callbacks();
        assert_eq!(
            init(&good_config(&key), &cb, STATE_SIZE - 1).0,
            Status::StateTooSmall as i32
        );
        let without_clock = otactl_callbacks { now_us: None, ..cb };
        assert_eq!(
            init(&good_config(&key), &without_clock, OTACTL_STATE_BYTES).0,
            Status::InvalidArgument as i32
        );
        // Every setting is good; the flash callback's fault is what ends it.
        let (rc, text) = init(&good_config(&key), &cb, OTACTL_STATE_BYTES);
        assert_eq!((rc, text.as_str()), (Status::Flash as i32, "flash read failed (-1)"));
    }

    #[test]
    fn every_status_message_is_reachable_by_its_code() {
        for (status, name, message) in Status::table() {
            // SAFETY: the functions return static NUL-terminated strings.
            let (n, m) = unsafe {
                (
                    core::ffi::CStr::from_ptr(otactl_error_name(status as i32)),
                    core::ffi::CStr::from_ptr(otactl_error_message(status as i32)),
                )
            };
            assert_eq!((n, m), (name, message));
        }
    }
}
