//! A real registry for tests: Debian's `docker-registry` on a free loopback
//! port with temp storage (optionally TLS with a test CA and htpasswd auth),
//! fixture images pushed by skopeo, and a fault proxy in front of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ROOT, text, tool};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// TLS material made by the test: a CA, and a server cert for 127.0.0.1.
pub struct Tls {
    pub ca: PathBuf,
    /// A directory holding only `ca.crt`, as skopeo's `--cert-dir` wants.
    pub cert_dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_tls(dir: &Path) -> Tls {
    let run = |args: &[&str]| {
        let out = tool("openssl", args, dir);
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=hacompile test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").expect("write");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let cert_dir = dir.join("skopeo-certs");
    std::fs::create_dir_all(&cert_dir).expect("mkdir");
    std::fs::copy(dir.join("ca.pem"), cert_dir.join("ca.crt")).expect("copy");
    Tls { ca: dir.join("ca.pem"), cert_dir, cert: dir.join("server.pem"), key: dir.join("server.key") }
}

pub struct Registry {
    child: Child,
    pub port: u16,
    pub host: String,
    pub dir: tempfile::TempDir,
    pub tls: bool,
}

impl Registry {
    /// A plain-HTTP registry on loopback.
    pub fn start() -> Registry {
        Self::start_with(None, None)
    }

    /// With TLS and/or htpasswd basic auth (`user`, `password`).
    pub fn start_with(tls: Option<&Tls>, auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(t) = tls {
            config.push_str(&format!("  tls:\n    certificate: {}\n    key: {}\n", t.cert.display(), t.key.display()));
        }
        if let Some((user, password)) = auth {
            let out = tool("htpasswd", &["-Bbn", user, password], dir.path());
            assert!(out.status.success(), "htpasswd: {}", text(&out.stderr));
            std::fs::write(dir.path().join("htpasswd"), out.stdout).expect("write");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: hacompile-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).expect("write");
        let child = Command::new("docker-registry")
            .args(["serve", "config.yml"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("`docker-registry` must be installed (tests/setup.sh): {e}"));
        let reg = Registry { child, port, host: format!("127.0.0.1:{port}"), dir, tls: tls.is_some() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen on {port} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// Pushes the `multi` (OCI index) and `single` refs of a layout made with
    /// `salt` as four repositories: oci-index, docker-list, oci-single,
    /// docker-single, all at `tag`.
    pub fn push_fixtures(&self, prefix: &str, tag: &str, salt: &str) {
        let layout = self.dir.path().join(format!("layout-{salt}"));
        let out = tool(
            "python3",
            &[&format!("{ROOT}/tests/registry/make-layout.py"), layout.to_str().expect("utf-8"), salt],
            self.dir.path(),
        );
        assert!(out.status.success(), "make-layout: {}", text(&out.stderr));
        let src = |r: &str| format!("oci:{}:{r}", layout.display());
        for (repo, from, extra) in [
            ("oci-index", "multi", &["--all"][..]),
            ("docker-list", "multi", &["--all", "--format", "v2s2"][..]),
            ("oci-single", "single", &[][..]),
            ("docker-single", "single", &["--format", "v2s2"][..]),
        ] {
            self.skopeo_copy(&src(from), &format!("{prefix}/{repo}:{tag}"), extra);
        }
    }

    pub fn skopeo_copy(&self, from: &str, to_repo_tag: &str, extra: &[&str]) {
        let dest = format!("docker://{}/{to_repo_tag}", self.host);
        let mut args = vec!["copy", "-q", "--dest-tls-verify=false"];
        args.extend_from_slice(extra);
        args.push(from);
        args.push(&dest);
        let out = tool("skopeo", &args, self.dir.path());
        assert!(out.status.success(), "skopeo copy {to_repo_tag}: {}", text(&out.stderr));
    }

    /// What skopeo, independently, says the tag's digest is.
    pub fn skopeo_digest(&self, repo_tag: &str) -> String {
        let r = format!("docker://{}/{repo_tag}", self.host);
        let out = tool("skopeo", &["inspect", "--tls-verify=false", "--format", "{{.Digest}}", &r], self.dir.path());
        assert!(out.status.success(), "skopeo inspect {repo_tag}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the fault proxy does to manifest requests (`/v2/.../manifests/...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// `429` with `Retry-After: 1` for the first N manifest requests, then pass through.
    TooManyThenOk(usize),
    /// Always `429` with `Retry-After` and rate-limit headers.
    TooMany,
    /// Always `500`.
    ServerError,
    /// Read the request and never answer (for up to 60 s).
    Stall,
    /// HEAD answers without a digest header; GET answers a body that does
    /// not hash to the Docker-Content-Digest it claims.
    BadBody,
}

/// A loopback HTTP proxy in front of a plain-HTTP registry that injects faults.
pub struct FaultProxy {
    pub port: u16,
    pub host: String,
    pub manifest_requests: Arc<AtomicUsize>,
    fault: Arc<Mutex<Fault>>,
    stop: Arc<Mutex<bool>>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let counter = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(Mutex::new(false));
        let fault = Arc::new(Mutex::new(fault));
        let (c, s, f) = (Arc::clone(&counter), Arc::clone(&stop), Arc::clone(&fault));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if *s.lock().expect("lock") {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let c = Arc::clone(&c);
                let now = *f.lock().expect("lock");
                std::thread::spawn(move || handle(conn, upstream_port, now, &c));
            }
        });
        FaultProxy { port, host: format!("127.0.0.1:{port}"), manifest_requests: counter, fault, stop }
    }

    /// Changes the fault for connections from now on, and resets the count.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().expect("lock") = fault;
        self.manifest_requests.store(0, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        *self.stop.lock().expect("lock") = true;
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read_head(conn: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

fn handle(mut conn: TcpStream, upstream: u16, fault: Fault, counter: &AtomicUsize) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    // One request per connection (we answer `Connection: close`).
    let Some(head) = read_head(&mut conn) else { return };
    let first = head.lines().next().unwrap_or("").to_owned();
    let method = first.split(' ').next().unwrap_or("").to_owned();
    let manifest = first.contains("/manifests/");
    let n = if manifest { counter.fetch_add(1, Ordering::SeqCst) } else { 0 };
    let reply = |conn: &mut TcpStream, status: &str, headers: &str| {
        let _ = conn.write_all(
            format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        );
    };
    match (manifest, fault) {
        (true, Fault::TooMany) => {
            return reply(
                &mut conn,
                "429 Too Many Requests",
                "Retry-After: 1\r\nRateLimit-Limit: 100;w=21600\r\nRateLimit-Remaining: 0;w=21600\r\n",
            );
        }
        (true, Fault::TooManyThenOk(k)) if n < k => {
            return reply(&mut conn, "429 Too Many Requests", "Retry-After: 1\r\n");
        }
        (true, Fault::ServerError) => return reply(&mut conn, "500 Internal Server Error", ""),
        (true, Fault::Stall) => {
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        (true, Fault::BadBody) if method == "HEAD" => {
            return reply(&mut conn, "200 OK", "Content-Type: application/vnd.oci.image.index.v1+json\r\n");
        }
        _ => {}
    }
    // Forward, forcing one request per connection.
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else { return };
    let forwarded: String = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        .trim_end()
        .to_owned()
        + "\r\nConnection: close\r\n\r\n";
    if up.write_all(forwarded.as_bytes()).is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = up.read_to_end(&mut response);
    if manifest && fault == Fault::BadBody && method == "GET" {
        // Corrupt one byte of the body, keeping every header.
        if let Some(body_at) = response.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
            && body_at < response.len()
        {
            let last = response.len() - 2;
            response[last] ^= 0x20;
        }
    }
    let _ = conn.write_all(&response);
}
