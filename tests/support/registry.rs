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

/// TLS material made by the test: a CA, and a server cert for 127.0.0.1
/// (or the name [`make_tls_for`] is given).
pub struct Tls {
    pub ca: PathBuf,
    /// A directory holding only `ca.crt`, as skopeo's `--cert-dir` wants.
    pub cert_dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_tls(dir: &Path) -> Tls {
    make_tls_for(dir, "127.0.0.1", "IP:127.0.0.1")
}

/// [`make_tls`] for a server named `cn` with the subjectAltName `san`
/// (e.g. `localhost` and `DNS:localhost`).
pub fn make_tls_for(dir: &Path, cn: &str, san: &str) -> Tls {
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
        &format!("/CN={cn}"),
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        format!(
            "subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("write");
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

/// Token authentication (distribution's `auth.token`): the registry answers
/// `401` with a Bearer challenge naming `realm`, and accepts JWTs signed by a
/// certificate that chains to `root` (see [`make_jwt`]).
pub struct TokenAuth {
    pub realm: String,
    pub root: PathBuf,
}

pub const TOKEN_SERVICE: &str = "hacompile-test";
pub const TOKEN_ISSUER: &str = "hacompile-test-issuer";

impl Registry {
    /// A plain-HTTP registry on loopback.
    pub fn start() -> Registry {
        Self::start_with(None, None)
    }

    /// With TLS and/or htpasswd basic auth (`user`, `password`).
    pub fn start_with(tls: Option<&Tls>, auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut section = String::new();
        if let Some((user, password)) = auth {
            let out = tool("htpasswd", &["-Bbn", user, password], dir.path());
            assert!(out.status.success(), "htpasswd: {}", text(&out.stderr));
            std::fs::write(dir.path().join("htpasswd"), out.stdout).expect("write");
            section = format!(
                "auth:\n  htpasswd:\n    realm: hacompile-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        Self::spawn(dir, free_port(), tls, &section)
    }

    /// With token authentication (and TLS when given), no images.
    pub fn start_token(tls: Option<&Tls>, token: &TokenAuth) -> Registry {
        Self::spawn(tempfile::tempdir().expect("temp dir"), free_port(), tls, &token_section(token))
    }

    /// The same storage and port, restarted with token authentication: push
    /// fixtures without auth first, then demand tokens.
    pub fn into_token_auth(mut self, token: &TokenAuth) -> Registry {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "the old registry still listens on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
        Self::spawn(dir, self.port, None, &token_section(token))
    }

    fn spawn(dir: tempfile::TempDir, port: u16, tls: Option<&Tls>, auth_section: &str) -> Registry {
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(t) = tls {
            config.push_str(&format!("  tls:\n    certificate: {}\n    key: {}\n", t.cert.display(), t.key.display()));
        }
        config.push_str(auth_section);
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

fn token_section(token: &TokenAuth) -> String {
    format!(
        "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
        token.realm,
        token.root.display()
    )
}

/// A JWT that a registry started with [`TokenAuth`] (root: `tls.ca`) accepts
/// for pulling `repos`: RS256, signed with the test server key, the signing
/// certificate in `x5c`, valid for 15 minutes. Made with openssl alone.
pub fn make_jwt(tls: &Tls, dir: &Path, repos: &[&str]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let access: Vec<String> =
        repos.iter().map(|r| format!("{{\"type\":\"repository\",\"name\":\"{r}\",\"actions\":[\"pull\"]}}")).collect();
    let claims = format!(
        "{{\"iss\":\"{TOKEN_ISSUER}\",\"sub\":\"ci\",\"aud\":\"{TOKEN_SERVICE}\",\"exp\":{},\"nbf\":{},\"iat\":{},\"jti\":\"hacompile-{now}\",\"access\":[{}]}}",
        now + 900,
        now - 60,
        now - 60,
        access.join(",")
    );
    std::fs::write(dir.join("claims.json"), claims).expect("write");
    let script = format!(
        r#"set -euo pipefail
b64url() {{ openssl base64 -A | tr '+/' '-_' | tr -d '='; }}
x5c=$(openssl x509 -in '{cert}' -outform DER | openssl base64 -A)
header=$(printf '{{"typ":"JWT","alg":"RS256","x5c":["%s"]}}' "$x5c" | b64url)
payload=$(b64url < claims.json)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign '{key}' | b64url)
printf '%s.%s.%s' "$header" "$payload" "$sig"
"#,
        cert = tls.cert.display(),
        key = tls.key.display()
    );
    let out = tool("bash", &["-c", &script], dir);
    assert!(out.status.success(), "jwt: {}", text(&out.stderr));
    text(&out.stdout)
}

/// A gibibyte: the size of the hostile bodies the fakes stream.
pub const GIB: u64 = 1024 * 1024 * 1024;

/// Writes `total` zero bytes in 64 KiB chunks, never holding more than one
/// chunk; stops when the reader goes away.
fn stream_zeros(conn: &mut TcpStream, total: u64) {
    let chunk = [b' '; 64 * 1024];
    let mut sent = 0u64;
    while sent < total {
        if conn.write_all(&chunk).is_err() {
            return;
        }
        sent += chunk.len() as u64;
    }
}

/// An accept loop on a loopback port: each connection's request (head and
/// any body) is recorded, then the head is handed to `handler` with the stream. One request per
/// connection (every fake answers `Connection: close`).
struct Listener {
    port: u16,
    stop: Arc<Mutex<bool>>,
}

type Handler = dyn Fn(TcpStream, String) + Send + Sync;

impl Listener {
    fn start(requests: Arc<Mutex<Vec<String>>>, handler: Arc<Handler>) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(Mutex::new(false));
        let s = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if *s.lock().expect("lock") {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let (requests, handler) = (Arc::clone(&requests), Arc::clone(&handler));
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                    let Some(head) = read_head(&mut conn) else { return };
                    // A form body (the OAuth2 grant) is read and recorded too,
                    // so closing the connection cannot reset it unread.
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0)
                        .min(64 * 1024);
                    let mut body = vec![0u8; length];
                    if conn.read_exact(&mut body).is_err() {
                        return;
                    }
                    requests.lock().expect("lock").push(format!("{head}{}", String::from_utf8_lossy(&body)));
                    handler(conn, head);
                });
            }
        });
        Listener { port, stop }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        *self.stop.lock().expect("lock") = true;
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// What the fault proxy does to manifest requests (`/v2/.../manifests/...`).
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// HEAD answers without a digest header; GET streams a gibibyte, with
    /// `Content-Length` when `declared`, else until the connection closes.
    HugeManifest { declared: bool },
    /// Manifests are unknown (404); the tag list streams a gibibyte.
    HugeTagList,
    /// Manifest responses (HEAD and GET) claim this Docker-Content-Digest.
    ClaimDigest(String),
    /// Manifest requests answer `307` to this base URL plus the same path.
    RedirectTo(String),
}

/// A loopback HTTP proxy in front of a plain-HTTP registry that injects
/// faults, and records every request head it receives.
pub struct FaultProxy {
    pub port: u16,
    pub host: String,
    pub manifest_requests: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<String>>>,
    fault: Arc<Mutex<Fault>>,
    _listener: Listener,
}

impl FaultProxy {
    pub fn start(upstream_port: u16, fault: Fault) -> FaultProxy {
        let counter = Arc::new(AtomicUsize::new(0));
        let fault = Arc::new(Mutex::new(fault));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, f) = (Arc::clone(&counter), Arc::clone(&fault));
        let listener = Listener::start(
            Arc::clone(&requests),
            Arc::new(move |conn, head| {
                let now = f.lock().expect("lock").clone();
                handle(conn, &head, upstream_port, &now, &c);
            }),
        );
        let port = listener.port;
        FaultProxy {
            port,
            host: format!("127.0.0.1:{port}"),
            manifest_requests: counter,
            requests,
            fault,
            _listener: listener,
        }
    }

    /// Changes the fault for connections from now on, and resets the count.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().expect("lock") = fault;
        self.manifest_requests.store(0, Ordering::SeqCst);
    }

    /// The request heads received so far.
    pub fn received(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
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

fn reply(conn: &mut TcpStream, status: &str, headers: &str) {
    let _ = conn
        .write_all(format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
}

/// Replaces (or adds) one response header, keeping the rest of the response.
fn set_header(response: &[u8], name: &str, value: &str) -> Vec<u8> {
    let body_at = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&response[..body_at]);
    let mut lines: Vec<String> = head
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with(&format!("{}:", name.to_ascii_lowercase())))
        .map(str::to_owned)
        .collect();
    lines.push(format!("{name}: {value}"));
    let mut out = (lines.join("\r\n") + "\r\n\r\n").into_bytes();
    out.extend_from_slice(&response[body_at..]);
    out
}

fn handle(mut conn: TcpStream, head: &str, upstream: u16, fault: &Fault, counter: &AtomicUsize) {
    let first = head.lines().next().unwrap_or("").to_owned();
    let method = first.split(' ').next().unwrap_or("").to_owned();
    let path = first.split(' ').nth(1).unwrap_or("/").to_owned();
    let manifest = first.contains("/manifests/");
    let n = if manifest { counter.fetch_add(1, Ordering::SeqCst) } else { 0 };
    let index_type = "Content-Type: application/vnd.oci.image.index.v1+json\r\n";
    match (manifest, fault) {
        (true, Fault::TooMany) => {
            return reply(
                &mut conn,
                "429 Too Many Requests",
                "Retry-After: 1\r\nRateLimit-Limit: 100;w=21600\r\nRateLimit-Remaining: 0;w=21600\r\n",
            );
        }
        (true, Fault::TooManyThenOk(k)) if n < *k => {
            return reply(&mut conn, "429 Too Many Requests", "Retry-After: 1\r\n");
        }
        (true, Fault::ServerError) => return reply(&mut conn, "500 Internal Server Error", ""),
        (true, Fault::Stall) => {
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        (true, Fault::BadBody | Fault::HugeManifest { .. }) if method == "HEAD" => {
            return reply(&mut conn, "200 OK", index_type);
        }
        (true, Fault::HugeManifest { declared }) => {
            let length = if *declared { format!("Content-Length: {GIB}\r\n") } else { String::new() };
            let _ =
                conn.write_all(format!("HTTP/1.1 200 OK\r\n{index_type}{length}Connection: close\r\n\r\n").as_bytes());
            return stream_zeros(&mut conn, GIB);
        }
        (true, Fault::HugeTagList) => {
            let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
            let _ = conn.write_all(
                format!("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    .as_bytes(),
            );
            return;
        }
        (false, Fault::HugeTagList) if path.contains("/tags/list") => {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n");
            return stream_zeros(&mut conn, GIB);
        }
        (true, Fault::RedirectTo(base)) => {
            return reply(&mut conn, "307 Temporary Redirect", &format!("Location: {base}{path}\r\n"));
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
    if manifest && *fault == Fault::BadBody && method == "GET" {
        // Corrupt one byte of the body, keeping every header.
        if let Some(body_at) = response.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
            && body_at < response.len()
        {
            let last = response.len() - 2;
            response[last] ^= 0x20;
        }
    }
    if let (true, Fault::ClaimDigest(digest)) = (manifest, fault) {
        response = set_header(&response, "Docker-Content-Digest", digest);
    }
    let _ = conn.write_all(&response);
}

/// What the fake token service answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenMode {
    /// `200` with this JSON body.
    Json(String),
    /// `200`, then the body one byte every 2 s (for at most 90 s).
    Trickle,
    /// `200`, then a gibibyte streamed without a `Content-Length`.
    Huge,
    /// This status with an empty body.
    Status(u16),
}

/// A plain-HTTP token service (the `realm` of [`TokenAuth`]) that records
/// every request it receives, credentials included, so a test can prove
/// what reached it.
pub struct TokenServer {
    pub port: u16,
    pub host: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    mode: Arc<Mutex<TokenMode>>,
    _listener: Listener,
}

impl TokenServer {
    pub fn start(mode: TokenMode) -> TokenServer {
        let mode = Arc::new(Mutex::new(mode));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let m = Arc::clone(&mode);
        let listener = Listener::start(
            Arc::clone(&requests),
            Arc::new(move |mut conn, _head| {
                let now = m.lock().expect("lock").clone();
                let json = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n";
                match now {
                    TokenMode::Json(body) => {
                        let _ =
                            conn.write_all(format!("{json}Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
                    }
                    TokenMode::Trickle => {
                        let _ = conn.write_all(format!("{json}\r\n").as_bytes());
                        for b in b"{\"token\":\"slow\"}".iter().cycle().take(45) {
                            if conn.write_all(&[*b]).is_err() {
                                return;
                            }
                            std::thread::sleep(Duration::from_secs(2));
                        }
                    }
                    TokenMode::Huge => {
                        let _ = conn.write_all(format!("{json}\r\n").as_bytes());
                        stream_zeros(&mut conn, GIB);
                    }
                    TokenMode::Status(code) => reply(&mut conn, &format!("{code} Status"), ""),
                }
            }),
        );
        let port = listener.port;
        TokenServer { port, host: format!("127.0.0.1:{port}"), requests, mode, _listener: listener }
    }

    pub fn set(&self, mode: TokenMode) {
        *self.mode.lock().expect("lock") = mode;
    }

    /// The request heads received so far.
    pub fn received(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

/// HAProxy terminating TLS (the test CA's server certificate) in front of a
/// plain-HTTP fake, so the fakes can be reached over HTTPS.
pub struct TlsFront {
    child: Child,
    pub port: u16,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl TlsFront {
    pub fn start(tls: &Tls, upstream_port: u16) -> TlsFront {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut pem = std::fs::read(&tls.cert).expect("cert");
        pem.extend(std::fs::read(&tls.key).expect("key"));
        std::fs::write(dir.path().join("front.pem"), pem).expect("write");
        let port = free_port();
        let cfg = format!(
            "global\n    maxconn 100\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\nfrontend tls\n    bind 127.0.0.1:{port} ssl crt {}\n    default_backend plain\nbackend plain\n    server upstream 127.0.0.1:{upstream_port}\n",
            dir.path().join("front.pem").display()
        );
        std::fs::write(dir.path().join("front.cfg"), cfg).expect("write");
        let child = Command::new("haproxy")
            .args(["-db", "-f", "front.cfg"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("`haproxy` must be installed (tests/setup.sh): {e}"));
        let front = TlsFront { child, port, host: format!("127.0.0.1:{port}"), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen on {port} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        front
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
