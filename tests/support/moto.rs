//! moto's S3 server on a loopback port, for the S3 tests and the release benchmark.
//!
//! moto (PyPI `moto[server]`) is an in-memory S3 that honours conditional writes
//! (`If-Match`, `If-None-Match: *`), ranges and multipart uploads; it does not check
//! signatures. `.ci/moto` installs it; where it is missing, the S3 tests say SKIP, and fail when `CI` is set.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Static credentials: with them object_store never asks a cloud metadata service. moto
/// takes any; the secret is distinctive so a test can tell it never reaches the output.
pub const ACCESS_KEY: &str = "test";
pub const SECRET_KEY: &str = "otactl-test-secret-never-printed";
pub const REGION: &str = "us-east-1";

/// A running `moto_server`, stopped on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub addr: SocketAddr,
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes a bucket (moto takes an unsigned request).
    pub fn create_bucket(&self, name: &str) {
        let response = raw_request(
            self.addr,
            &format!(
                "PUT /{name} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.addr
            ),
        );
        assert!(response.starts_with("HTTP/1.1 200"), "create bucket {name}: {response}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn raw_request(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to moto");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let started = Instant::now();
    if let Err(e) = stream.read_to_end(&mut out) {
        return format!("{e} after {:?}", started.elapsed());
    }
    format!("{} (after {:?})", String::from_utf8_lossy(&out), started.elapsed())
}

/// `moto_server` on PATH, or in the venv `.ci/moto` makes under target/.
pub fn find() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file())
}

/// Starts moto on a free loopback port, or says SKIP (naming `what`) and returns `None`
/// when it is not installed (a failure when `CI` is set).
pub fn start(what: &str) -> Option<Moto> {
    start_with(what, &[])
}

/// moto that checks credentials: after `free` unauthenticated requests (making the bucket),
/// every request needs keys moto's IAM knows, which the tests' static keys are not: a
/// bucket that denies writes.
pub fn start_denying(what: &str, free: u32) -> Option<Moto> {
    start_with(what, &[("INITIAL_NO_AUTH_ACTION_COUNT", &free.to_string())])
}

fn start_with(what: &str, env: &[(&str, &str)]) -> Option<Moto> {
    let Some(program) = find() else {
        sim::required_tool::missing(what, "moto_server", ".ci/moto installs it");
        return None;
    };
    // One start at a time: two tests picking a port at once could be handed the same one,
    // and one would then talk to the other's server (and lose it when that test ends).
    static STARTING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..3 {
        // A port the kernel just handed out and took back: free unless another process
        // grabs it in between, which the retry covers.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                // Ours, not someone else's on the same port: ours is still running.
                std::thread::sleep(Duration::from_millis(100));
                if child.try_wait().ok().flatten().is_none() {
                    return Some(Moto { child, addr });
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("moto_server ({}) did not start", program.display());
}

/// The environment an otactl child needs for moto: static keys, region, the endpoint, and
/// nothing inherited that could point object_store elsewhere (a proxy, a profile, web
/// identity or container credentials, the metadata service).
pub fn s3_env(cmd: &mut Command, moto: &Moto) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("AWS_") || name.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(&name);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ALLOW_HTTP", "true")
        // Never used with static keys; loopback in case that ever changes.
        .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "*")
        .env("no_proxy", "*");
}
