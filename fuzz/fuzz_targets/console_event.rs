//! The host's event-line parser (`parse_event_line`, what `otactl watch` runs on every
//! console line) on any text.
//!
//! Asserts: no panic; an event it parses, written back by the device's own writer,
//! parses to the same event (the device's hand-written JSON and serde agree).
#![no_main]

use device_fw::wire::console::{MAX_EVENT_LINE, parse_event_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Some(Ok(event)) = parse_event_line(&line) {
        let mut out = vec![0u8; 4 * MAX_EVENT_LINE + data.len() * 6];
        let n = event.write_line(&mut out).expect("a buffer this large holds any event");
        let written = std::str::from_utf8(&out[..n]).expect("event lines are UTF-8");
        assert!(written.ends_with("\r\n"));
        let again = parse_event_line(written)
            .expect("a written event is an event line")
            .expect("a written event parses");
        assert_eq!(again, event, "written {written:?}");
    }
});
