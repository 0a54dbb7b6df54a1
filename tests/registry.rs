//! `lock` and `pin` against a real registry (Debian's docker-registry on
//! loopback), checked against skopeo; drift; offline builds; TLS, htpasswd,
//! docker config and credential helpers; injected faults.

#![allow(clippy::print_stderr)] // the measured figures (wall time, peak RSS) under hostile registries

mod support;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use support::registry::{Fault, FaultProxy, Registry, TlsFront, TokenAuth, TokenMode, TokenServer, make_jwt, make_tls};
use support::*;

/// Runs hacompile in `dir` with an empty docker config (host credentials never leak in).
fn hc(dir: &Path, args: &[&str]) -> Output {
    hc_env(dir, args, &[])
}

fn hc_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let empty = dir.join(".docker-empty");
    fs::create_dir_all(&empty).expect("mkdir");
    let mut c = bin();
    c.current_dir(dir).args(args).env("DOCKER_CONFIG", &empty);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("runs")
}

/// [`hc_env`] under python's `resource`, which reports the child's peak RSS
/// (KiB, `ru_maxrss` of RUSAGE_CHILDREN); with the wall time it took.
fn hc_measured(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration, u64) {
    let empty = dir.join(".docker-empty");
    fs::create_dir_all(&empty).expect("mkdir");
    let rss = dir.join(".peak-rss");
    let mut c = std::process::Command::new("python3");
    c.current_dir(dir)
        .args([
            "-c",
            "import resource, subprocess, sys\n\
             code = subprocess.run(sys.argv[2:]).returncode\n\
             open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n\
             sys.exit(code if code >= 0 else 128 - code)",
        ])
        .arg(&rss)
        .arg(env!("CARGO_BIN_EXE_hacompile"))
        .args(args)
        .env("DOCKER_CONFIG", &empty)
        .env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    let start = Instant::now();
    let o = c.output().expect("python3 runs");
    let took = start.elapsed();
    let kib = fs::read_to_string(&rss).expect("peak RSS written").trim().parse().expect("a number");
    (o, took, kib)
}

fn all(o: &Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

/// A spec whose postgres and haproxy images are `pg` and `proxy`.
fn spec_with(dir: &Path, pg: &str, proxy: &str) {
    let example = fs::read_to_string(format!("{ROOT}/examples/ha-postgres.toml")).expect("example");
    let spec = example
        .replace("image = \"postgres:16\"", &format!("image = \"{pg}\""))
        .replace("image = \"haproxy:2.8\"", &format!("image = \"{proxy}\""));
    fs::write(dir.join("spec.toml"), spec).expect("write");
}

fn lock_digests(dir: &Path) -> Vec<(String, String, String)> {
    let lock = hacompile_image::LockFile::parse(&fs::read_to_string(dir.join("hacompile.lock")).expect("lock written"))
        .expect("valid lock");
    lock.entries().iter().map(|e| (e.reference.clone(), e.digest.clone(), e.media_type.clone())).collect()
}

#[test]
fn digests_match_skopeo_for_every_manifest_kind_and_lists_pin_the_list() {
    let reg = Registry::start();
    reg.push_fixtures("fx", "1", "v1");
    let dir = tempfile::tempdir().expect("temp dir");
    let h = &reg.host;
    spec_with(dir.path(), &format!("{h}/fx/oci-index:1"), &format!("{h}/fx/docker-list:1"));
    let o = hc(dir.path(), &["lock", "spec.toml", "--insecure-registry", h]);
    assert!(o.status.success(), "{}", all(&o));
    let locked = lock_digests(dir.path());
    for (reference, digest, media_type) in &locked {
        let repo_tag = reference.strip_prefix(&format!("{h}/")).expect("prefix");
        assert_eq!(*digest, reg.skopeo_digest(repo_tag), "{reference}: hacompile and skopeo agree");
        let expected = if repo_tag.contains("oci-index") {
            "application/vnd.oci.image.index.v1+json"
        } else {
            "application/vnd.docker.distribution.manifest.list.v2+json"
        };
        assert_eq!(media_type, expected);
    }
    // Regression: the manifest list's digest, not its linux/amd64 child's.
    let raw = tool(
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", &format!("docker://{h}/fx/docker-list:1")],
        dir.path(),
    );
    let list: serde_json::Value = serde_json::from_slice(&raw.stdout).expect("list JSON");
    let amd64 = list["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .expect("amd64 child");
    let list_pin = &locked.iter().find(|(r, _, _)| r.contains("docker-list")).expect("locked").1;
    assert_ne!(list_pin, amd64["digest"].as_str().expect("digest"));

    // pin: all four kinds, each equal to skopeo's answer.
    let stack = format!(
        "services:\n{}",
        ["oci-index", "docker-list", "oci-single", "docker-single"]
            .iter()
            .map(|r| format!("  {r}:\n    image: {h}/fx/{r}:1\n"))
            .collect::<String>()
    );
    fs::write(dir.path().join("docker-stack.yml"), &stack).expect("write");
    let o = hc(dir.path(), &["pin", "docker-stack.yml", "--insecure-registry", h]);
    assert!(o.status.success(), "{}", all(&o));
    let pinned = fs::read_to_string(dir.path().join("docker-stack.yml")).expect("read");
    for r in ["oci-index", "docker-list", "oci-single", "docker-single"] {
        let want = format!("image: {h}/fx/{r}:1@{}", reg.skopeo_digest(&format!("fx/{r}:1")));
        assert!(pinned.contains(&want), "{r}: {want}\n{pinned}");
    }

    // --platform opts into the child, with a warning.
    let o = hc(dir.path(), &["lock", "spec.toml", "--update", "--insecure-registry", h, "--platform", "linux/amd64"]);
    assert!(o.status.success(), "{}", all(&o));
    assert!(text(&o.stderr).contains("not the multi-arch index"));
    let platform_pin =
        lock_digests(dir.path()).into_iter().find(|(r, _, _)| r.contains("docker-list")).expect("locked").1;
    assert_eq!(platform_pin, amd64["digest"].as_str().expect("digest"));
}

#[test]
fn a_moved_tag_is_drift_for_lock_check_and_pin_check() {
    let reg = Registry::start();
    reg.push_fixtures("fx", "1", "v1");
    let dir = tempfile::tempdir().expect("temp dir");
    let h = &reg.host;
    spec_with(dir.path(), &format!("{h}/fx/oci-index:1"), &format!("{h}/fx/docker-single:1"));
    assert!(hc(dir.path(), &["lock", "spec.toml", "--insecure-registry", h]).status.success());
    fs::write(dir.path().join("docker-stack.yml"), format!("services:\n  db:\n    image: {h}/fx/oci-index:1\n"))
        .expect("write");
    assert!(hc(dir.path(), &["pin", "docker-stack.yml", "--insecure-registry", h]).status.success());
    let (lock_before, stack_before) = (
        fs::read(dir.path().join("hacompile.lock")).expect("r"),
        fs::read(dir.path().join("docker-stack.yml")).expect("r"),
    );
    let old = reg.skopeo_digest("fx/oci-index:1");
    let o = hc(dir.path(), &["lock", "--check", "spec.toml", "--insecure-registry", h]);
    assert_eq!(o.status.code(), Some(0), "no drift yet: {}", all(&o));

    reg.push_fixtures("fx", "1", "v2"); // the same tags now name new images
    let new = reg.skopeo_digest("fx/oci-index:1");
    assert_ne!(old, new);
    let o = hc(dir.path(), &["lock", "--check", "spec.toml", "--insecure-registry", h]);
    let out = all(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("{h}/fx/oci-index:1")) && out.contains(&old) && out.contains(&new),
        "names image, old and new digest:\n{out}"
    );
    let o = hc(dir.path(), &["pin", "--check", "docker-stack.yml", "--insecure-registry", h]);
    let out = all(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("drifted") && out.contains(&old) && out.contains(&new), "{out}");
    assert_eq!(fs::read(dir.path().join("hacompile.lock")).expect("r"), lock_before, "--check writes nothing");
    assert_eq!(fs::read(dir.path().join("docker-stack.yml")).expect("r"), stack_before, "--check writes nothing");

    let o = hc(dir.path(), &["lock", "--update", "spec.toml", "--insecure-registry", h]);
    assert!(o.status.success() && all(&o).contains(&format!("(was {old})")), "{}", all(&o));

    // 404s say which of repository and tag is missing.
    spec_with(dir.path(), &format!("{h}/fx/oci-index:9"), &format!("{h}/fx/no-such-repo:1"));
    let o = hc(dir.path(), &["lock", "--update", "spec.toml", "--insecure-registry", h]);
    let out = all(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("has no tag `9` in repository `fx/oci-index`"), "{out}");
    assert!(out.contains("has no repository `fx/no-such-repo`"), "{out}");
    assert!(lock_digests(dir.path()).iter().any(|(_, d, _)| *d == new));
}

#[test]
fn build_from_the_lock_makes_no_network_connection() {
    let reg = Registry::start();
    reg.push_fixtures("fx", "1", "v1");
    let dir = tempfile::tempdir().expect("temp dir");
    let h = reg.host.clone();
    spec_with(dir.path(), &format!("{h}/fx/oci-index:1"), &format!("{h}/fx/oci-single:1"));
    assert!(hc(dir.path(), &["lock", "spec.toml", "--insecure-registry", &h]).status.success());
    drop(reg); // the registry is gone
    // A network namespace with no interface up: any connection would fail.
    let o = std::process::Command::new("unshare")
        .args(["--net", env!("CARGO_BIN_EXE_hacompile"), "build", "spec.toml", "-o", "out"])
        .current_dir(dir.path())
        .output()
        .expect("unshare (util-linux) runs");
    assert!(o.status.success(), "{}", all(&o));
    let stack = fs::read_to_string(dir.path().join("out/docker-stack.yml")).expect("stack");
    for (reference, digest, _) in lock_digests(dir.path()) {
        assert!(stack.contains(&format!("{reference}@{digest}")), "{reference} pinned from the lock");
    }
}

#[test]
fn tls_and_credentials_from_docker_config_and_a_credential_helper() {
    let work = tempfile::tempdir().expect("temp dir");
    let tls = make_tls(work.path());
    let reg = Registry::start_with(Some(&tls), Some(("ci", "s3cret-pw")));
    let h = reg.host.clone();
    let layout = work.path().join("layout");
    let out = tool(
        "python3",
        &[&format!("{ROOT}/tests/registry/make-layout.py"), layout.to_str().expect("utf-8"), "auth"],
        work.path(),
    );
    assert!(out.status.success());
    let pushed = tool(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--dest-cert-dir",
            tls.cert_dir.to_str().expect("utf-8"),
            "--dest-creds",
            "ci:s3cret-pw",
            &format!("oci:{}:multi", layout.display()),
            &format!("docker://{h}/private/pg:16"),
        ],
        work.path(),
    );
    assert!(pushed.status.success(), "push over TLS with auth: {}", text(&pushed.stderr));
    let dir = work.path();
    spec_with(dir, &format!("{h}/private/pg:16"), &format!("{h}/private/pg:16"));
    let ca = tls.ca.display().to_string();

    // No --ca-file: a TLS error that says what to do.
    let o = hc(dir, &["lock", "spec.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(all(&o).contains("TLS with") && all(&o).contains("--ca-file"), "{}", all(&o));
    // The CA but no credentials: 401, and it says none were found.
    let o = hc(dir, &["lock", "spec.toml", "--ca-file", &ca]);
    assert_eq!(o.status.code(), Some(2));
    assert!(all(&o).contains("HTTP 401") && all(&o).contains("no credentials were found"), "{}", all(&o));

    // Credentials in a docker config file (`auths`).
    let cfg = dir.join("docker-auths");
    fs::create_dir_all(&cfg).expect("mkdir");
    let auth = tool("bash", &["-c", "printf 'ci:s3cret-pw' | base64"], dir);
    fs::write(
        cfg.join("config.json"),
        format!("{{\"auths\":{{\"{h}\":{{\"auth\":\"{}\"}}}}}}", text(&auth.stdout).trim()),
    )
    .expect("write");
    let o = hc_env(dir, &["lock", "spec.toml", "--ca-file", &ca], &[("DOCKER_CONFIG", cfg.to_str().expect("utf-8"))]);
    assert!(o.status.success(), "{}", all(&o));
    let want = tool(
        "skopeo",
        &[
            "inspect",
            "--cert-dir",
            tls.cert_dir.to_str().expect("utf-8"),
            "--creds",
            "ci:s3cret-pw",
            "--format",
            "{{.Digest}}",
            &format!("docker://{h}/private/pg:16"),
        ],
        dir,
    );
    assert_eq!(lock_digests(dir)[0].1, text(&want.stdout).trim(), "same digest as skopeo");
    assert!(!all(&o).contains("s3cret-pw"));

    // A wrong password: the 401 message, not a crash, and no secret printed.
    fs::write(cfg.join("config.json"), format!("{{\"auths\":{{\"{h}\":{{\"auth\":\"{}\"}}}}}}", "Y2k6d3Jvbmc="))
        .expect("write"); // ci:wrong
    let o = hc_env(
        dir,
        &["lock", "--update", "spec.toml", "--ca-file", &ca],
        &[("DOCKER_CONFIG", cfg.to_str().expect("utf-8"))],
    );
    assert_eq!(o.status.code(), Some(2), "{}", all(&o));
    assert!(
        all(&o).contains("refused access (HTTP 401)")
            && all(&o).contains("credentials from the docker config were sent and rejected"),
        "{}",
        all(&o)
    );
    assert!(!all(&o).contains("wrong"));

    // A credential helper on PATH (`credHelpers`).
    let helper_dir = dir.join("helpers");
    fs::create_dir_all(&helper_dir).expect("mkdir");
    let helper = helper_dir.join("docker-credential-hctest");
    fs::write(&helper, "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"ci\",\"Secret\":\"s3cret-pw\"}\\n' \"$server\"\n").expect("write");
    tool("chmod", &["+x", helper.to_str().expect("utf-8")], dir);
    fs::write(cfg.join("config.json"), format!("{{\"credHelpers\":{{\"{h}\":\"hctest\"}}}}")).expect("write");
    let path = format!("{}:{}", helper_dir.display(), std::env::var("PATH").unwrap_or_default());
    let o = hc_env(
        dir,
        &["lock", "--update", "spec.toml", "--ca-file", &ca],
        &[("DOCKER_CONFIG", cfg.to_str().expect("utf-8")), ("PATH", &path)],
    );
    assert!(o.status.success(), "credential helper: {}", all(&o));
    assert!(!all(&o).contains("s3cret-pw"));

    // The CI override.
    let o = hc_env(
        dir,
        &["lock", "--update", "spec.toml", "--ca-file", &ca],
        &[
            ("HACOMPILE_REGISTRY_HOST", &h),
            ("HACOMPILE_REGISTRY_USERNAME", "ci"),
            ("HACOMPILE_REGISTRY_PASSWORD", "s3cret-pw"),
        ],
    );
    assert!(o.status.success(), "environment credentials: {}", all(&o));
}

#[test]
fn injected_faults_end_in_the_documented_behaviour_within_bounded_time() {
    let reg = Registry::start();
    reg.push_fixtures("fx", "1", "v1");
    let proxy = FaultProxy::start(reg.port, Fault::None);
    let h = proxy.host.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    spec_with(dir.path(), &format!("{h}/fx/oci-index:1"), &format!("{h}/fx/oci-index:1"));
    let lock = |extra: &[&str]| {
        let mut args =
            vec!["lock", "--update", "spec.toml", "--insecure-registry", &h, "--retries", "2", "--timeout", "3"];
        args.extend_from_slice(extra);
        let start = Instant::now();
        let o = hc(dir.path(), &args);
        (o, start.elapsed())
    };
    let (o, _) = lock(&[]);
    assert!(o.status.success(), "{}", all(&o));
    let good = fs::read(dir.path().join("hacompile.lock")).expect("lock");

    proxy.set(Fault::TooManyThenOk(2));
    let (o, took) = lock(&[]);
    assert!(o.status.success(), "429 with Retry-After then success: {}", all(&o));
    assert!(proxy.manifest_requests.load(std::sync::atomic::Ordering::SeqCst) >= 3, "it retried");
    assert!(took >= Duration::from_secs(2), "Retry-After was honoured ({took:?})");

    let cases: [(Fault, &[&str], Duration); 4] = [
        (Fault::TooMany, &["HTTP 429", "after 3 attempts", "ratelimit-remaining: 0;w=21600"], Duration::from_secs(15)),
        (Fault::ServerError, &["HTTP 500 after 3 attempts"], Duration::from_secs(15)),
        (Fault::Stall, &["did not answer in time"], Duration::from_secs(30)),
        (Fault::BadBody, &["hashes to", "refusing to pin"], Duration::from_secs(15)),
    ];
    for (fault, expect, bound) in cases {
        proxy.set(fault.clone());
        let (o, took) = lock(&[]);
        let out = all(&o);
        assert_eq!(o.status.code(), Some(2), "{fault:?}: {out}");
        for e in expect {
            assert!(out.contains(e), "{fault:?}: expected {e:?} in:\n{out}");
        }
        assert!(out.contains(&format!("{h}/fx/oci-index:1")), "{fault:?}: names the image");
        assert!(took < bound, "{fault:?} took {took:?}");
        assert_eq!(
            fs::read(dir.path().join("hacompile.lock")).expect("lock"),
            good,
            "{fault:?}: the lock is untouched"
        );
    }
}

#[test]
fn pin_changes_nothing_but_image_values_and_is_idempotent() {
    let reg = Registry::start();
    reg.push_fixtures("fx", "1", "v1");
    let h = &reg.host;
    let dir = tempfile::tempdir().expect("temp dir");
    let original = format!(
        "# Production stack -- keep comments!\nversion: \"3.8\"\nx-img: &img \"{h}/fx/oci-single:1\"   # anchored, quoted\nservices:\n  a:\n    image: *img\n  b:\n    image:   {h}/fx/docker-single:1    # odd spacing\n  c:\n    image: '{h}/fx/oci-index:1'\n  d:\n    image: ${{DYNAMIC_IMAGE}}\n  e:\n    <<: {{}}\n    image: {h}/fx/docker-list:1 # trailing\n"
    );
    fs::write(dir.path().join("docker-stack.yml"), &original).expect("write");
    let o = hc(dir.path(), &["pin", "docker-stack.yml", "--insecure-registry", h]);
    assert!(o.status.success(), "{}", all(&o));
    let pinned = fs::read_to_string(dir.path().join("docker-stack.yml")).expect("read");
    let (a, b): (Vec<&str>, Vec<&str>) = (original.lines().collect(), pinned.lines().collect());
    assert_eq!(a.len(), b.len(), "no line added or removed");
    for (before, after) in a.iter().zip(&b) {
        if before == after {
            continue;
        }
        // Only the reference changed: the line minus `@sha256:<64 hex>` is the original.
        let at = after.find("@sha256:").unwrap_or_else(|| panic!("unexpected change:\n{before}\n{after}"));
        let restored = format!("{}{}", &after[..at], &after[at + 8 + 64..]);
        assert_eq!(&restored, before, "only the digest was inserted");
    }
    assert_eq!(
        b.iter().filter(|l| l.contains("@sha256:")).count(),
        4,
        "four literal images pinned, ${{DYNAMIC_IMAGE}} left alone"
    );
    let o = hc(dir.path(), &["pin", "docker-stack.yml", "--insecure-registry", h]);
    assert!(o.status.success());
    assert_eq!(
        fs::read_to_string(dir.path().join("docker-stack.yml")).expect("read"),
        pinned,
        "a second run changes nothing"
    );
    assert_eq!(
        hc(dir.path(), &["pin", "--check", "docker-stack.yml", "--insecure-registry", h]).status.code(),
        Some(0)
    );
}

#[test]
fn refused_connections_and_unknown_hosts_are_named_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Nothing listens on this port.
    let port = support::registry::free_port();
    let host = format!("127.0.0.1:{port}");
    spec_with(dir.path(), &format!("{host}/team/pg:16"), &format!("{host}/team/pg:16"));
    let start = Instant::now();
    let o = hc(dir.path(), &["lock", "spec.toml", "--insecure-registry", &host, "--timeout", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(all(&o).contains(&format!("{host} refused the connection")), "{}", all(&o));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(!dir.path().join("hacompile.lock").exists(), "nothing written");

    // A name that cannot resolve (`.invalid` is reserved for exactly that).
    spec_with(dir.path(), "registry.hacompile.invalid/team/pg:16", "registry.hacompile.invalid/team/pg:16");
    let o = hc(dir.path(), &["lock", "spec.toml", "--timeout", "5", "--retries", "0"]);
    assert_eq!(o.status.code(), Some(2));
    let out = all(&o);
    assert!(out.contains("cannot resolve the host of registry.hacompile.invalid"), "{out}");
}

/// The peak RSS allowed while a gibibyte is offered: the limits are a few MiB.
const RSS_BOUND_KIB: u64 = 200 * 1024;

#[test]
fn huge_registry_bodies_are_refused_with_bounded_time_and_memory() {
    // No images needed: the proxy answers the manifest and tag-list requests itself.
    let reg = Registry::start();
    let proxy = FaultProxy::start(reg.port, Fault::None);
    let h = proxy.host.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    // Two repositories: two huge bodies offered at once.
    spec_with(dir.path(), &format!("{h}/fx/a:1"), &format!("{h}/fx/b:1"));
    let cases = [
        (Fault::HugeManifest { declared: false }, "the manifest from", "larger than 4 MiB"),
        (Fault::HugeManifest { declared: true }, "the manifest from", "larger than 4 MiB"),
        (Fault::HugeTagList, "the tag list from", "larger than 64 KiB"),
    ];
    for (fault, what, limit) in cases {
        proxy.set(fault.clone());
        let (o, took, kib) =
            hc_measured(dir.path(), &["lock", "spec.toml", "--insecure-registry", &h, "--timeout", "20"], &[]);
        let out = all(&o);
        eprintln!("{fault:?}: exit {:?}, {took:?}, peak RSS {} MiB", o.status.code(), kib / 1024);
        assert_eq!(o.status.code(), Some(2), "{fault:?}: {out}");
        assert!(out.contains(&format!("{h}/fx/a:1: {what} {h}")) && out.contains(limit), "{fault:?}: {out}");
        assert!(kib < RSS_BOUND_KIB, "{fault:?}: peak RSS {kib} KiB");
        assert!(took < Duration::from_secs(15), "{fault:?} took {took:?}");
        assert!(!dir.path().join("hacompile.lock").exists(), "{fault:?}: nothing written");
    }

    // A token service that streams a gibibyte.
    let work = tempfile::tempdir().expect("temp dir");
    let tls = make_tls(work.path());
    let tokens = TokenServer::start(TokenMode::Huge);
    let treg = Registry::start_token(
        None,
        &TokenAuth { realm: format!("http://{}/token", tokens.host), root: tls.ca.clone() },
    );
    let t = treg.host.clone();
    spec_with(dir.path(), &format!("{t}/fx/a:1"), &format!("{t}/fx/b:1"));
    let (o, took, kib) = hc_measured(
        dir.path(),
        &["lock", "spec.toml", "--insecure-registry", &t, "--insecure-registry", &tokens.host, "--timeout", "20"],
        &[],
    );
    let out = all(&o);
    eprintln!("token: exit {:?}, {took:?}, peak RSS {} MiB", o.status.code(), kib / 1024);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!("{t}/fx/a:1: the token response from {t}")) && out.contains("larger than 1 MiB"),
        "{out}"
    );
    assert!(kib < RSS_BOUND_KIB, "token: peak RSS {kib} KiB");
    assert!(took < Duration::from_secs(15), "token took {took:?}");
    assert!(!dir.path().join("hacompile.lock").exists(), "nothing written");
}

#[test]
fn the_timeout_bounds_the_whole_resolution_token_included() {
    let work = tempfile::tempdir().expect("temp dir");
    let tls = make_tls(work.path());
    // A token service that sends one byte every 2 s.
    let tokens = TokenServer::start(TokenMode::Trickle);
    let reg = Registry::start_token(
        None,
        &TokenAuth { realm: format!("http://{}/token", tokens.host), root: tls.ca.clone() },
    );
    let h = reg.host.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    spec_with(dir.path(), &format!("{h}/fx/a:1"), &format!("{h}/fx/a:1"));
    let start = Instant::now();
    let o = hc(
        dir.path(),
        &["lock", "spec.toml", "--insecure-registry", &h, "--insecure-registry", &tokens.host, "--timeout", "3"],
    );
    let took = start.elapsed();
    let out = all(&o);
    eprintln!("trickling token service: exit {:?} after {took:?}", o.status.code());
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains(&format!("{h}/fx/a:1: {h} did not answer in time")), "{out}");
    assert!(out.contains("token"), "says which step ran out of time: {out}");
    assert!(took < Duration::from_secs(8), "--timeout 3 took {took:?}");
    assert!(!tokens.received().is_empty(), "the token service was asked");
    assert!(!dir.path().join("hacompile.lock").exists(), "nothing written");
}

#[test]
fn credentials_never_travel_over_plain_http_to_hosts_not_named_insecure() {
    let work = tempfile::tempdir().expect("temp dir");
    let tls = make_tls(work.path());
    let ca = tls.ca.display().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = TokenServer::start(TokenMode::Json("{\"token\":\"t\"}".into()));
    let creds = |host: &str| {
        [
            ("HACOMPILE_REGISTRY_HOST", host.to_owned()),
            ("HACOMPILE_REGISTRY_USERNAME", "ci".to_owned()),
            ("HACOMPILE_REGISTRY_PASSWORD", "s3cret-pw".to_owned()),
        ]
    };
    // An HTTPS registry whose token realm is plain HTTP, on the same host
    // name and on another one.
    for realm_host in [tokens.host.clone(), format!("localhost:{}", tokens.port)] {
        let reg = Registry::start_token(
            Some(&tls),
            &TokenAuth { realm: format!("http://{realm_host}/token"), root: tls.ca.clone() },
        );
        let h = reg.host.clone();
        spec_with(dir.path(), &format!("{h}/team/pg:16"), &format!("{h}/team/pg:16"));
        let env = creds(&h);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let o = hc_env(dir.path(), &["lock", "spec.toml", "--ca-file", &ca, "--timeout", "10"], &env);
        let out = all(&o);
        assert_eq!(o.status.code(), Some(2), "{realm_host}: {out}");
        assert!(
            out.contains(&format!("{h}/team/pg:16: {h} names a token service on plain HTTP (http://{realm_host}"))
                && out.contains(&format!("--insecure-registry {realm_host}")),
            "{realm_host}: {out}"
        );
        assert!(!out.contains("s3cret-pw"), "{out}");
        assert_eq!(tokens.received(), Vec::<String>::new(), "{realm_host}: nothing reached the plain-HTTP realm");
        assert!(!dir.path().join("hacompile.lock").exists(), "nothing written");
    }

    // An HTTPS registry that redirects its manifests to plain HTTP.
    let plain = Registry::start();
    plain.push_fixtures("fx", "1", "v1");
    let recorder = FaultProxy::start(plain.port, Fault::None);
    let redirector = FaultProxy::start(plain.port, Fault::RedirectTo(format!("http://{}", recorder.host)));
    let front = TlsFront::start(&tls, redirector.port);
    let h = front.host.clone();
    spec_with(dir.path(), &format!("{h}/fx/oci-index:1"), &format!("{h}/fx/oci-index:1"));
    let env = creds(&h);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let o = hc_env(dir.path(), &["lock", "spec.toml", "--ca-file", &ca, "--timeout", "10"], &env);
    let out = all(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!("{h}/fx/oci-index:1: {h} redirected to plain HTTP (http://{})", recorder.host)),
        "{out}"
    );
    assert!(redirector.received().iter().any(|r| r.contains("/manifests/")), "the manifest was asked over HTTPS first");
    assert_eq!(recorder.received(), Vec::<String>::new(), "nothing reached the plain-HTTP listener");
    assert!(!dir.path().join("hacompile.lock").exists(), "nothing written");

    // A redirect to HTTPS on another port is followed, without the credentials.
    let other = TlsFront::start(&tls, recorder.port);
    redirector.set(Fault::RedirectTo(format!("https://{}", other.host)));
    let o = hc_env(dir.path(), &["lock", "spec.toml", "--ca-file", &ca, "--timeout", "10"], &env);
    assert!(o.status.success(), "{}", all(&o));
    assert_eq!(lock_digests(dir.path())[0].1, plain.skopeo_digest("fx/oci-index:1"));
    let sent = |proxy: &FaultProxy| {
        proxy
            .received()
            .iter()
            .filter(|r| r.contains("/manifests/"))
            .map(|r| r.to_ascii_lowercase().contains("\r\nauthorization: basic "))
            .collect::<Vec<bool>>()
    };
    assert!(sent(&redirector).contains(&true), "the credentials went to the registry over HTTPS");
    let followed = sent(&recorder);
    assert!(!followed.is_empty() && !followed.contains(&true), "no credentials to another host: {followed:?}");
}

#[test]
fn bearer_tokens_from_a_real_token_auth_registry_and_token_service_failures() {
    let work = tempfile::tempdir().expect("temp dir");
    let tls = make_tls(work.path());
    let plain = Registry::start();
    plain.push_fixtures("fx", "1", "v1");
    let want = [plain.skopeo_digest("fx/oci-index:1"), plain.skopeo_digest("fx/docker-list:1")];
    let jwt = make_jwt(&tls, work.path(), &["fx/oci-index", "fx/docker-list"]);
    let tokens = TokenServer::start(TokenMode::Json(format!("{{\"token\":\"{jwt}\",\"expires_in\":900}}")));
    let reg =
        plain.into_token_auth(&TokenAuth { realm: format!("http://{}/token", tokens.host), root: tls.ca.clone() });
    let h = reg.host.clone();
    let t = tokens.host.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    spec_with(dir.path(), &format!("{h}/fx/oci-index:1"), &format!("{h}/fx/docker-list:1"));
    let env = [
        ("HACOMPILE_REGISTRY_HOST", h.as_str()),
        ("HACOMPILE_REGISTRY_USERNAME", "ci"),
        ("HACOMPILE_REGISTRY_PASSWORD", "s3cret-pw"),
    ];

    // The registry is named insecure, its token service is not: refused, and
    // the credentials never reach it.
    let o = hc_env(dir.path(), &["lock", "spec.toml", "--insecure-registry", &h], &env);
    let out = all(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains(&format!("names a token service on plain HTTP (http://{t}")), "{out}");
    assert_eq!(tokens.received(), Vec::<String>::new(), "nothing reached the token service");

    // Both named: Basic credentials to the realm for the pull scope, then the
    // registry accepts the bearer token and the digests are skopeo's.
    let named = ["--insecure-registry", h.as_str(), "--insecure-registry", t.as_str()];
    let mut args = vec!["lock", "spec.toml"];
    args.extend_from_slice(&named);
    let o = hc_env(dir.path(), &args, &env);
    assert!(o.status.success(), "{}", all(&o));
    let locked: Vec<String> = lock_digests(dir.path()).into_iter().map(|(_, d, _)| d).collect();
    assert_eq!(locked.len(), 2);
    assert!(locked.contains(&want[0]) && locked.contains(&want[1]), "{locked:?} vs {want:?}");
    let asked = tokens.received();
    let basic = tool("bash", &["-c", "printf 'ci:s3cret-pw' | base64"], dir.path());
    let basic = format!("authorization: basic {}", text(&basic.stdout).trim()).to_ascii_lowercase();
    for repo in ["fx%2Foci-index", "fx%2Fdocker-list"] {
        assert!(
            asked.iter().any(|r| {
                let r = r.to_ascii_lowercase();
                r.starts_with("get /token?")
                    && r.contains(&format!("scope=repository%3a{}%3apull", repo.to_ascii_lowercase()))
                    && r.contains("service=hacompile-test")
                    && r.contains(&basic)
            }),
            "{repo}: {asked:#?}"
        );
    }
    let good = fs::read(dir.path().join("hacompile.lock")).expect("lock");

    // `access_token` (OAuth2) is a token too.
    tokens.set(TokenMode::Json(format!("{{\"access_token\":\"{jwt}\"}}")));
    let mut update = vec!["lock", "--update", "spec.toml", "--retries", "2", "--timeout", "10"];
    update.extend_from_slice(&named);
    let o = hc_env(dir.path(), &update, &env);
    assert!(o.status.success(), "{}", all(&o));
    assert_eq!(fs::read(dir.path().join("hacompile.lock")).expect("lock"), good);

    // An identity token from `docker login` is a refresh token: Docker's
    // OAuth2 grant, POSTed to the realm.
    let cfg = dir.path().join("docker-identity");
    fs::create_dir_all(&cfg).expect("mkdir");
    fs::write(cfg.join("config.json"), format!("{{\"auths\":{{\"{h}\":{{\"identitytoken\":\"idt-s3cret\"}}}}}}"))
        .expect("write");
    let before = tokens.received().len();
    let o = hc_env(dir.path(), &update, &[("DOCKER_CONFIG", cfg.to_str().expect("utf-8"))]);
    assert!(o.status.success(), "{}", all(&o));
    assert!(!all(&o).contains("idt-s3cret"));
    let grants = &tokens.received()[before..];
    assert_eq!(grants.len(), 2, "one grant per repository: {grants:#?}");
    for g in grants {
        assert!(
            g.starts_with("POST /token HTTP/1.1\r\n")
                && g.contains("grant_type=refresh_token")
                && g.contains("refresh_token=idt-s3cret")
                && g.contains("service=hacompile-test")
                && !g.to_ascii_lowercase().contains("authorization:"),
            "{g}"
        );
    }
    assert_eq!(fs::read(dir.path().join("hacompile.lock")).expect("lock"), good);

    // A 500 from the token service is a server error, retried, not a 401.
    tokens.set(TokenMode::Status(500));
    let before = tokens.received().len();
    let o = hc_env(dir.path(), &update, &env);
    let out = all(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!("{h}/fx/oci-index:1: {h} answered HTTP 500 after 3 attempts while fetching a token")),
        "{out}"
    );
    assert!(!out.contains("401") && !out.contains("refused access"), "{out}");
    assert!(tokens.received().len() - before >= 3, "retried");
    assert_eq!(fs::read(dir.path().join("hacompile.lock")).expect("lock"), good, "the lock is untouched");

    // A 401 from the token service: the credentials were rejected.
    tokens.set(TokenMode::Status(401));
    let o = hc_env(dir.path(), &update, &env);
    let out = all(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("refused access (HTTP 401)") && out.contains("HACOMPILE_REGISTRY_"), "{out}");
    assert!(!out.contains("s3cret-pw"));
    assert_eq!(fs::read(dir.path().join("hacompile.lock")).expect("lock"), good, "the lock is untouched");
}

#[test]
fn a_digest_claimed_in_another_algorithm_is_verified_before_it_is_pinned() {
    let reg = Registry::start();
    reg.push_fixtures("fx", "1", "v1");
    let dir = tempfile::tempdir().expect("temp dir");
    // The manifest's bytes, independently: curl, checked against skopeo's digest.
    let url = format!("http://{}/v2/fx/oci-index/manifests/1", reg.host);
    let fetched = tool(
        "bash",
        &[
            "-c",
            &format!(
                "curl -fsS -H 'Accept: application/vnd.oci.image.index.v1+json' '{url}' > manifest && sha256sum manifest && sha512sum manifest"
            ),
        ],
        dir.path(),
    );
    assert!(fetched.status.success(), "{}", text(&fetched.stderr));
    let sums = text(&fetched.stdout);
    let hexes: Vec<&str> = sums.lines().map(|l| l.split(' ').next().expect("hex")).collect();
    assert_eq!(format!("sha256:{}", hexes[0]), reg.skopeo_digest("fx/oci-index:1"), "curl got the manifest's bytes");
    let sha512 = format!("sha512:{}", hexes[1]);

    let forged = format!("sha512:{}", "ab".repeat(64));
    let proxy = FaultProxy::start(reg.port, Fault::ClaimDigest(forged.clone()));
    let h = proxy.host.clone();
    spec_with(dir.path(), &format!("{h}/fx/oci-index:1"), &format!("{h}/fx/oci-index:1"));
    let o = hc(dir.path(), &["lock", "spec.toml", "--insecure-registry", &h]);
    let out = all(&o);
    assert_eq!(o.status.code(), Some(2), "a forged sha512 is never pinned: {out}");
    assert!(out.contains(&format!("hashes to {sha512}, not the {forged}")) && out.contains("refusing to pin"), "{out}");
    assert!(!dir.path().join("hacompile.lock").exists(), "nothing written");

    // The true sha512: verified against the bytes, then pinned as claimed.
    proxy.set(Fault::ClaimDigest(sha512.clone()));
    let o = hc(dir.path(), &["lock", "spec.toml", "--insecure-registry", &h]);
    assert!(o.status.success(), "{}", all(&o));
    assert_eq!(lock_digests(dir.path())[0].1, sha512);
    assert!(
        proxy.received().iter().any(|r| r.starts_with("GET ") && r.contains("/manifests/1")),
        "the body was fetched"
    );
}

/// The patroni example names five images (with its exporter): `lock`
/// resolves every one, each equal to skopeo's digest, and `build` then pins
/// them all.
#[test]
fn lock_pins_the_patroni_topologys_five_images() {
    let reg = Registry::start();
    reg.push_fixtures("fx", "1", "patroni");
    let dir = tempfile::tempdir().expect("temp dir");
    let h = &reg.host;
    reg.skopeo_copy(&format!("docker://{h}/fx/docker-single:1"), "fx/exporter:1", &["--src-tls-verify=false"]);
    let example = fs::read_to_string(format!("{ROOT}/examples/ha-patroni.toml")).expect("example");
    let refs = [
        ("postgres:16", format!("{h}/fx/oci-index:1")),
        ("haproxy:2.8", format!("{h}/fx/docker-list:1")),
        ("registry.example.com/ha_db/patroni:16", format!("{h}/fx/oci-single:1")),
        ("quay.io/coreos/etcd:v3.5.17", format!("{h}/fx/docker-single:1")),
        ("quay.io/prometheuscommunity/postgres-exporter:v0.16.0", format!("{h}/fx/exporter:1")),
    ];
    let mut spec = example.clone();
    for (from, to) in &refs {
        let written = format!("image = \"{from}\"");
        assert!(spec.contains(&written), "the example names {from}");
        spec = spec.replace(&written, &format!("image = \"{to}\""));
    }
    fs::write(dir.path().join("spec.toml"), spec).expect("write");
    let o = hc(dir.path(), &["lock", "spec.toml", "--insecure-registry", h]);
    assert!(o.status.success(), "{}", all(&o));
    let locked = lock_digests(dir.path());
    assert_eq!(locked.len(), 5, "every image of the spec: {locked:?}");
    for (reference, digest, _) in &locked {
        let repo_tag = reference.strip_prefix(&format!("{h}/")).expect("prefix");
        assert_eq!(*digest, reg.skopeo_digest(repo_tag), "{reference}: hacompile and skopeo agree");
    }
    let build = hc(dir.path(), &["build", "spec.toml", "--stack-only"]);
    assert!(build.status.success(), "{}", all(&build));
    let stack = text(&build.stdout);
    let recipe = hc(dir.path(), &["dockerfile", "spec.toml"]);
    assert!(recipe.status.success(), "{}", all(&recipe));
    let recipe = text(&recipe.stdout);
    for (reference, digest, _) in &locked {
        let pinned = format!("{reference}@{digest}");
        if reference.contains("oci-index") {
            // The base image: only the members' image recipe names it.
            assert!(recipe.contains(&format!("FROM {pinned}\n")), "{reference} pinned in the recipe:\n{recipe}");
        } else {
            assert!(stack.contains(&pinned), "{reference} pinned in the stack");
        }
    }
}

/// The first deploy of the patroni topology: its members' image does not
/// exist before it is built from the recipe, and the recipe needs its base
/// image locked. `lock --only` resolves just that one and keeps the rest of
/// the lock; a plain `lock` fails on the missing image and writes nothing.
#[test]
fn lock_only_pins_the_recipes_base_before_the_image_it_builds_exists() {
    let reg = Registry::start();
    reg.push_fixtures("fx", "1", "only");
    let dir = tempfile::tempdir().expect("temp dir");
    let h = &reg.host;
    let base = format!("{h}/fx/oci-index:1");
    let spec = fs::read_to_string(format!("{ROOT}/examples/ha-patroni.toml"))
        .expect("example")
        .replace("image = \"postgres:16\"", &format!("image = \"{base}\""))
        .replace("image = \"haproxy:2.8\"", &format!("image = \"{h}/fx/docker-list:1\""))
        .replace("image = \"registry.example.com/ha_db/patroni:16\"", &format!("image = \"{h}/fx/not-built-yet:1\""))
        .replace("image = \"quay.io/coreos/etcd:v3.5.17\"", &format!("image = \"{h}/fx/docker-single:1\""))
        .replace(
            "image = \"quay.io/prometheuscommunity/postgres-exporter:v0.16.0\"",
            &format!("image = \"{h}/fx/docker-single:1\""),
        );
    fs::write(dir.path().join("spec.toml"), spec).expect("write");

    let all = hc(dir.path(), &["lock", "spec.toml", "--insecure-registry", h]);
    assert_eq!(all.status.code(), Some(2), "the image to build does not exist yet: {}", text(&all.stderr));
    assert!(!dir.path().join("hacompile.lock").exists(), "a failed lock writes nothing");

    let only = hc(dir.path(), &["lock", "spec.toml", "--only", &base, "--insecure-registry", h]);
    assert!(only.status.success(), "{}", text(&only.stderr));
    let locked = lock_digests(dir.path());
    assert_eq!(locked.len(), 1, "only the base image: {locked:?}");
    assert_eq!(locked[0].1, reg.skopeo_digest("fx/oci-index:1"));
    let recipe = hc(dir.path(), &["dockerfile", "spec.toml"]);
    assert!(recipe.status.success(), "{}", text(&recipe.stderr));
    assert!(text(&recipe.stdout).contains(&format!("FROM {base}@{}", locked[0].1)));

    // The image is built and pushed: a plain lock now adds the others and keeps the base.
    reg.skopeo_copy(&format!("docker://{h}/fx/docker-single:1"), "fx/not-built-yet:1", &["--src-tls-verify=false"]);
    let rest = hc(dir.path(), &["lock", "spec.toml", "--insecure-registry", h]);
    assert!(rest.status.success(), "{}", text(&rest.stderr));
    assert_eq!(lock_digests(dir.path()).len(), 4, "the exporter shares etcd's fixture image");
    assert!(lock_digests(dir.path()).contains(&locked[0]), "the base entry kept");

    let unknown = hc(dir.path(), &["lock", "spec.toml", "--only", "postgres:17", "--insecure-registry", h]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("the spec names no such image"), "{}", text(&unknown.stderr));
}

/// `lock` on a terminal draws a progress line (the count of images, the
/// waits a registry imposes); with stderr in a pipe it draws nothing: the
/// same run's stderr then holds no control sequence and no progress text.
/// The terminal is a real pty (util-linux `script`).
#[test]
fn lock_shows_progress_on_a_terminal_and_nothing_in_a_pipe() {
    let reg = Registry::start();
    reg.push_fixtures("fx", "1", "progress");
    let proxy = FaultProxy::start(reg.port, Fault::None);
    let h = proxy.host.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    spec_with(dir.path(), &format!("{h}/fx/oci-index:1"), &format!("{h}/fx/docker-list:1"));
    let empty = dir.path().join(".docker-empty");
    fs::create_dir_all(&empty).expect("mkdir");

    // In a pipe: a 429 then success, and not one byte of progress.
    proxy.set(Fault::TooManyThenOk(1));
    let piped = hc(dir.path(), &["lock", "--update", "spec.toml", "--insecure-registry", &h]);
    assert!(piped.status.success(), "{}", all(&piped));
    let err = text(&piped.stderr);
    assert!(!err.contains('\u{1b}') && !err.contains('\r'), "no control sequence in a pipe: {err:?}");
    assert!(!err.contains("resolving images") && !err.contains("retrying"), "no progress in a pipe: {err}");
    assert!(err.contains("unchanged") || err.contains("added"), "the result lines are still there: {err}");

    // On a pty: the counter, and the wait the registry asked for.
    proxy.set(Fault::TooManyThenOk(1));
    let command = format!("{} lock --update spec.toml --insecure-registry {h}", env!("CARGO_BIN_EXE_hacompile"));
    let on_pty = |term: &str| {
        let o = std::process::Command::new("timeout")
            .args(["60", "script", "-qfec", &command, "/dev/null"])
            .current_dir(dir.path())
            .env("DOCKER_CONFIG", &empty)
            .env("TERM", term)
            .output()
            .expect("script runs");
        (o.status.success(), text(&o.stdout))
    };
    let (ok, shown) = on_pty("xterm");
    assert!(ok, "lock on a pty: {shown}");
    assert!(shown.contains("resolving images"), "the progress line is drawn on a terminal: {shown:?}");
    assert!(shown.contains("[2/2]"), "it counts both images: {shown:?}");
    assert!(shown.contains(&format!("{h}: rate limited (429); retrying")), "the registry's wait is shown: {shown:?}");

    // TERM=dumb: a terminal that cannot redraw a line gets none.
    proxy.set(Fault::None);
    let (ok, shown) = on_pty("dumb");
    assert!(ok, "lock on a dumb terminal: {shown}");
    assert!(!shown.contains("resolving images"), "no progress line when TERM=dumb: {shown:?}");
}
