//! An S3-compatible server on loopback for the backup tests: moto's server
//! (`moto[server]`, pinned by tests/setup.sh in target/moto-venv) behind
//! HAProxy, which terminates TLS with a certificate from a CA this handle
//! makes with openssl. pgBackRest speaks only HTTPS to S3 and verifies the
//! certificate against that CA (the spec's `repository.ca`).
//!
//! Why HAProxy in front: moto's own TLS (`moto_server -c CERT -k KEY`, the
//! Werkzeug development server) answers each request with `Connection:
//! close` and closes without a TLS close_notify; pgBackRest 2.45 (OpenSSL 3)
//! reads that as `TLS error [1:167772454] unexpected eof while reading` on
//! every PUT and retries until its 60 s timeout. HAProxy keeps the client
//! side a clean TLS session and talks plain HTTP to moto.
//!
//! The certificate names `localhost` (a DNS name): pgBackRest 2.45 does not
//! match IP addresses in a certificate's subject alternative names.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::cluster::wait_for;
use super::registry::{free_port, make_tls_for};
use super::{ROOT, text};

pub const MOTO_VERSION: &str = "5.2.5";

pub struct S3 {
    moto: Child,
    proxy: Child,
    /// The HTTPS port on 127.0.0.1 (`localhost`).
    pub port: u16,
    /// The CA that signed the server's certificate (PEM).
    pub ca: PathBuf,
    dir: PathBuf,
}

impl Drop for S3 {
    fn drop(&mut self) {
        for child in [&mut self.proxy, &mut self.moto] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl S3 {
    /// A CA, a server certificate for `localhost`, moto on a free port and
    /// HAProxy with TLS on another; returns once an HTTPS request verified
    /// against the CA is answered. Files go to `dir`.
    pub fn start(dir: &Path) -> S3 {
        std::fs::create_dir_all(dir).expect("mkdir");
        // HAProxy takes the certificate and its key in one file.
        let tls = make_tls_for(dir, "localhost", "DNS:localhost");
        let pem = [std::fs::read(&tls.cert).expect("crt"), std::fs::read(&tls.key).expect("key")].concat();
        std::fs::write(dir.join("haproxy.pem"), pem).expect("write");

        let moto_bin = Path::new(ROOT).join("target/moto-venv/bin/moto_server");
        let moto_port = free_port();
        let moto = Command::new(&moto_bin)
            .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("moto.log")).expect("log"))
            .spawn()
            .unwrap_or_else(|e| panic!("{} must be installed (tests/setup.sh): {e}", moto_bin.display()));

        let port = free_port();
        let cfg = format!(
            "defaults\n    mode http\n    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\n\
             frontend s3\n    bind 127.0.0.1:{port} ssl crt {pem}\n    default_backend moto\n\
             backend moto\n    server moto 127.0.0.1:{moto_port}\n",
            pem = dir.join("haproxy.pem").display()
        );
        std::fs::write(dir.join("haproxy.cfg"), cfg).expect("write");
        let proxy = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(dir.join("haproxy.cfg"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("haproxy.log")).expect("log"))
            .spawn()
            .expect("haproxy starts");
        let mut s3 = S3 { moto, proxy, port, ca: tls.ca, dir: dir.to_owned() };
        wait_for("the S3 server to answer over TLS", Duration::from_secs(60), || {
            assert!(s3.moto.try_wait().ok().flatten().is_none(), "moto_server exited:\n{}", s3.log());
            s3.curl(&["-X", "GET", "/"]).is_ok()
        });
        s3
    }

    /// The endpoint as a spec names it.
    pub fn endpoint(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// An HTTPS request verified against the CA; the response body.
    fn curl(&self, args: &[&str]) -> Result<String, String> {
        let (path, opts) = args.split_last().expect("a path");
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "20", "--cacert"])
            .arg(&self.ca)
            .args(opts)
            .arg(format!("https://localhost:{}{path}", self.port))
            .output()
            .expect("curl runs");
        if out.status.success() { Ok(text(&out.stdout)) } else { Err(text(&out.stderr)) }
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.curl(&["-X", "PUT", &format!("/{bucket}")]).unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
    }

    /// (objects, bytes) under `prefix` in `bucket`, in one listing (moto
    /// honours a `max-keys` above S3's 1000).
    pub fn usage(&self, bucket: &str, prefix: &str) -> (usize, u64) {
        let list = self
            .curl(&[&format!("/{bucket}?list-type=2&max-keys=1000000&prefix={}", prefix.trim_start_matches('/'))])
            .unwrap_or_else(|e| panic!("list {bucket}: {e}"));
        let sizes: Vec<u64> =
            list.split("<Size>").skip(1).filter_map(|s| s.split('<').next().and_then(|n| n.parse().ok())).collect();
        (sizes.len(), sizes.iter().sum())
    }

    /// moto's and HAProxy's logs.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("moto.log"), read("haproxy.log"))
    }
}
