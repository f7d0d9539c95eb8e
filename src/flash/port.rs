//! Which serial port to flash, and opening it with errors that say what to do.
//!
//! Without `--port`, the only USB serial bridge ESP32 boards use is taken; two or more are
//! an error listing them, because guessing would write some other board on the desk (or on
//! a CI runner). USB ids come from sysfs (serialport without libudev), so this works on a
//! machine without libudev installed.

use std::path::Path;
use std::time::Duration;

use serialport::{SerialPort as _, SerialPortInfo, SerialPortType, TTYPort, UsbPortInfo};

use super::FlashError;

/// USB serial bridges found on ESP32 boards: (vendor id, product id, name).
pub const KNOWN_BRIDGES: [(u16, u16, &str); 8] = [
    (0x10C4, 0xEA60, "CP210x"),
    (0x1A86, 0x7523, "CH340"),
    (0x1A86, 0x55D4, "CH9102"),
    (0x0403, 0x6001, "FTDI FT232R"),
    (0x0403, 0x6010, "FTDI FT2232"),
    (0x0403, 0x6014, "FTDI FT232H"),
    (0x0403, 0x6015, "FTDI FT-X"),
    (0x303A, 0x1001, "Espressif USB-Serial-JTAG"),
];

/// The ROM loader's rate before CHANGE_BAUDRATE; every chip otactl supports starts there.
pub const ROM_BAUD: u32 = 115_200;

/// A port that could be a board.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub port: String,
    pub vid: u16,
    pub pid: u16,
    pub serial_number: Option<String>,
    pub bridge: &'static str,
}

impl Candidate {
    pub fn describe(&self) -> String {
        let serial = self
            .serial_number
            .as_deref()
            .map_or(String::new(), |s| format!(", serial {s}"));
        format!(
            "{} ({} {:04x}:{:04x}{serial})",
            self.port, self.bridge, self.vid, self.pid
        )
    }
}

pub fn bridge_name(vid: u16, pid: u16) -> Option<&'static str> {
    KNOWN_BRIDGES
        .iter()
        .find(|&&(v, p, _)| v == vid && p == pid)
        .map(|&(_, _, name)| name)
}

/// The board the profile names (`[bench]`): any USB port with these ids, not only the known
/// bridges.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    pub vid_pid: Option<(u16, u16)>,
    pub serial: Option<String>,
}

impl Wanted {
    fn is_any(&self) -> bool {
        self.vid_pid.is_none() && self.serial.is_none()
    }

    fn matches(&self, info: &UsbPortInfo) -> bool {
        self.vid_pid.is_none_or(|(v, p)| (info.vid, info.pid) == (v, p))
            && self
                .serial
                .as_deref()
                .is_none_or(|s| info.serial_number.as_deref() == Some(s))
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((v, p)) = self.vid_pid {
            parts.push(format!("{v:04x}:{p:04x}"));
        }
        if let Some(s) = &self.serial {
            parts.push(format!("serial {s}"));
        }
        parts.join(", ")
    }
}

/// Ports behind a known bridge, in the order the system lists them.
pub fn candidates(ports: &[SerialPortInfo]) -> Vec<Candidate> {
    ports
        .iter()
        .filter_map(|p| match &p.port_type {
            SerialPortType::UsbPort(info) => bridge_name(info.vid, info.pid).map(|bridge| Candidate {
                port: p.port_name.clone(),
                vid: info.vid,
                pid: info.pid,
                serial_number: info.serial_number.clone(),
                bridge,
            }),
            _ => None,
        })
        .collect()
}

/// USB ports with the ids the profile names.
fn named(ports: &[SerialPortInfo], wanted: &Wanted) -> Vec<Candidate> {
    ports
        .iter()
        .filter_map(|p| match &p.port_type {
            SerialPortType::UsbPort(info) if wanted.matches(info) => Some(Candidate {
                port: p.port_name.clone(),
                vid: info.vid,
                pid: info.pid,
                serial_number: info.serial_number.clone(),
                bridge: bridge_name(info.vid, info.pid).unwrap_or("USB serial"),
            }),
            _ => None,
        })
        .collect()
}

/// The port to flash when none was named: the one the profile's `[bench]` ids name, else
/// the only known bridge; or an error saying why there is none or which ones compete.
pub fn choose(ports: &[SerialPortInfo], wanted: &Wanted) -> Result<Candidate, FlashError> {
    if !wanted.is_any() {
        let mut found = named(ports, wanted);
        return match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(FlashError::NoPort {
                seen: format!("no USB serial port has the profile's [bench] ids ({})", wanted.describe()),
                help: "plug the board in, fix bench.usb_vid/usb_pid/usb_serial in the profile, or name the port with --port"
                    .into(),
            }),
            _ => Err(FlashError::ManyPorts {
                list: found.iter().map(Candidate::describe).collect::<Vec<_>>().join("; "),
            }),
        };
    }
    let mut found = candidates(ports);
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => {
            let others: Vec<_> = ports.iter().map(|p| p.port_name.as_str()).collect();
            let seen = if others.is_empty() {
                "no serial port is connected".to_owned()
            } else {
                format!(
                    "none of {} is a USB serial bridge ESP32 boards use (CP210x, CH34x, FTDI, Espressif USB-Serial-JTAG)",
                    others.join(", ")
                )
            };
            Err(FlashError::NoPort {
                seen,
                help: "connect the board with a data USB cable (charge-only cables have no data lines), or name the port with --port (for `otactl sim rom`, its --link path)".into(),
            })
        }
        _ => Err(FlashError::ManyPorts {
            list: found.iter().map(Candidate::describe).collect::<Vec<_>>().join("; "),
        }),
    }
}

/// The USB ids behind a port path, which espflash uses to pick the USB-Serial-JTAG reset
/// sequence; all zero for a port that is not USB (a UART, a pseudo-terminal).
pub fn usb_info(path: &Path) -> UsbPortInfo {
    let empty = UsbPortInfo {
        vid: 0,
        pid: 0,
        serial_number: None,
        manufacturer: None,
        product: None,
    };
    let Ok(real) = std::fs::canonicalize(path) else {
        return empty;
    };
    serialport::available_ports()
        .unwrap_or_default()
        .into_iter()
        .find_map(|p| match p.port_type {
            SerialPortType::UsbPort(info) if std::fs::canonicalize(&p.port_name).ok().as_ref() == Some(&real) => {
                Some(info)
            }
            _ => None,
        })
        .unwrap_or(empty)
}

/// An open port and what it can do.
#[derive(Debug)]
pub struct Opened {
    pub port: TTYPort,
    /// DTR and RTS can be driven (the auto-reset circuit of a dev board); a
    /// pseudo-terminal has neither.
    pub modem_lines: bool,
    /// The port is a pseudo-terminal (`otactl sim rom`, a network bridge).
    pub pty: bool,
}

/// Opens `port` at the ROM's rate, exclusively (TIOCEXCL and an exclusive `flock`, as
/// esptool and espflash take it), so two flashers never interleave on one chip.
pub fn open(port: &str) -> Result<Opened, FlashError> {
    let path = Path::new(port);
    if std::fs::metadata(path).is_err() {
        let dangling = std::fs::symlink_metadata(path).is_ok();
        let listed: Vec<_> = candidates(&serialport::available_ports().unwrap_or_default())
            .iter()
            .map(Candidate::describe)
            .collect();
        let mut help = if dangling {
            format!("{port} is a link to nothing: if it is `otactl sim rom`'s --link, start the emulator first")
        } else {
            "check the name (`ls /dev/ttyUSB* /dev/ttyACM*`); a board that just reset may take a moment to come back"
                .to_owned()
        };
        if !listed.is_empty() {
            help.push_str(&format!("; boards connected: {}", listed.join("; ")));
        }
        return Err(FlashError::PortNotFound {
            port: port.to_owned(),
            help,
        });
    }
    let opened = serialport::new(port, ROM_BAUD)
        .timeout(Duration::from_secs(3))
        .open_native()
        .map_err(|e| open_error(port, &e))?;
    let pty = std::fs::canonicalize(path).is_ok_and(|p| p.starts_with("/dev/pts"));
    let mut opened = Opened {
        port: opened,
        modem_lines: false,
        pty,
    };
    // TIOCMGET: fails with ENOTTY where there are no modem-control lines.
    opened.modem_lines = opened.port.read_data_set_ready().is_ok();
    Ok(opened)
}

fn open_error(port: &str, e: &serialport::Error) -> FlashError {
    use serialport::ErrorKind;
    match e.kind() {
        // serialport reports a port another process holds (TIOCEXCL's EBUSY, or its
        // exclusive flock) as "no device".
        ErrorKind::NoDevice => FlashError::PortBusy { port: port.to_owned() },
        ErrorKind::Io(std::io::ErrorKind::PermissionDenied) => FlashError::PortPermission { port: port.to_owned() },
        ErrorKind::Io(std::io::ErrorKind::NotFound) => FlashError::PortNotFound {
            port: port.to_owned(),
            help: "the port went away while opening it: check the cable".into(),
        },
        _ => FlashError::PortOpen {
            port: port.to_owned(),
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usb(name: &str, vid: u16, pid: u16) -> SerialPortInfo {
        SerialPortInfo {
            port_name: name.into(),
            port_type: SerialPortType::UsbPort(UsbPortInfo {
                vid,
                pid,
                serial_number: Some("A1".into()),
                manufacturer: None,
                product: None,
            }),
        }
    }

    fn uart(name: &str) -> SerialPortInfo {
        SerialPortInfo {
            port_name: name.into(),
            port_type: SerialPortType::Unknown,
        }
    }

    #[test]
    fn the_only_known_bridge_is_chosen_and_others_are_ignored() {
        let ports = [
            uart("/dev/ttyS0"),
            usb("/dev/ttyACM0", 0x2341, 0x0043),
            usb("/dev/ttyUSB0", 0x10C4, 0xEA60),
        ];
        let c = choose(&ports, &Wanted::default()).unwrap();
        assert_eq!(c.port, "/dev/ttyUSB0");
        assert_eq!(c.describe(), "/dev/ttyUSB0 (CP210x 10c4:ea60, serial A1)");
    }

    #[test]
    fn two_boards_are_an_error_that_lists_both() {
        let ports = [usb("/dev/ttyUSB0", 0x1A86, 0x7523), usb("/dev/ttyACM0", 0x303A, 0x1001)];
        let e = choose(&ports, &Wanted::default()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("/dev/ttyUSB0 (CH340 1a86:7523"), "{text}");
        assert!(
            text.contains("/dev/ttyACM0 (Espressif USB-Serial-JTAG 303a:1001"),
            "{text}"
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn no_bridge_names_what_was_seen() {
        let e = choose(&[uart("/dev/ttyS0")], &Wanted::default()).unwrap_err();
        assert!(e.to_string().contains("none of /dev/ttyS0"), "{e}");
        let e = choose(&[], &Wanted::default()).unwrap_err();
        assert!(e.to_string().contains("no serial port is connected"), "{e}");
    }

    #[test]
    fn the_profile_names_one_board_among_several() {
        let mut other = usb("/dev/ttyACM1", 0x303A, 0x1001);
        if let SerialPortType::UsbPort(info) = &mut other.port_type {
            info.serial_number = Some("B2".into());
        }
        let ports = [
            usb("/dev/ttyACM0", 0x303A, 0x1001),
            other,
            usb("/dev/ttyUSB0", 0x1234, 0x5678),
        ];
        // By serial number, among two boards of the same kind.
        let wanted = Wanted {
            vid_pid: Some((0x303A, 0x1001)),
            serial: Some("B2".into()),
        };
        assert_eq!(choose(&ports, &wanted).unwrap().port, "/dev/ttyACM1");
        // By ids no known bridge has.
        let wanted = Wanted {
            vid_pid: Some((0x1234, 0x5678)),
            serial: None,
        };
        assert_eq!(choose(&ports, &wanted).unwrap().port, "/dev/ttyUSB0");
        // Ids that match two boards are still an error, and ids that match none say so.
        let wanted = Wanted {
            vid_pid: Some((0x303A, 0x1001)),
            serial: None,
        };
        assert!(choose(&ports, &wanted).is_err());
        let wanted = Wanted {
            vid_pid: None,
            serial: Some("Z9".into()),
        };
        let e = choose(&ports, &wanted).unwrap_err();
        assert!(e.to_string().contains("serial Z9"), "{e}");
    }

    #[test]
    fn every_bridge_the_issue_names_is_known() {
        for (vid, pid) in [
            (0x10C4, 0xEA60),
            (0x1A86, 0x7523),
            (0x1A86, 0x55D4),
            (0x0403, 0x6001),
            (0x0403, 0x6010),
            (0x0403, 0x6014),
            (0x0403, 0x6015),
            (0x303A, 0x1001),
        ] {
            assert!(bridge_name(vid, pid).is_some(), "{vid:04x}:{pid:04x}");
        }
    }
}
