//! A running `otactl serve` on a free loopback port, for the serve and rollout tests.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Project, otactl};

/// A running `otactl serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `otactl serve --bucket <bucket> --addr 127.0.0.1:0`.
    pub fn start(p: &Project, bucket: &str) -> Server {
        Server::start_with(p, bucket, &[], |_| {})
    }

    /// With more arguments, and `setup` for the command's environment.
    pub fn start_with(p: &Project, bucket: &str, args: &[&str], setup: impl FnOnce(&mut Command)) -> Server {
        let mut cmd = otactl(p.path());
        cmd.args(["serve", "--bucket", bucket, "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        setup(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in `{first}`"))
            .trim_end_matches('/')
            .to_owned();
        assert!(
            base.starts_with("http://127.0.0.1:") || base.starts_with("https://127.0.0.1:"),
            "{base}"
        );
        Server { child, base }
    }

    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The request line sent byte for byte: an HTTP client would normalise `..` away.
    pub fn raw(&self, target: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port())).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in `{response}`"));
        (status, response)
    }
}
