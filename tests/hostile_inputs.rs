//! Hostile inputs to `hacompile lint`, `pin` and `build`, each found by an
//! attacker's review: recursive anchors, merge-key chains, long non-ASCII
//! lines, side files that are huge or endless, gaps in the directory walk,
//! floods of findings, and an image written with a YAML escape. Each is
//! refused (exit 2, with its place) or linted in bounded time and memory,
//! and every output format stays valid.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::registry::Registry;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_hacompile");

struct Run {
    code: i32,
    out: String,
    err: String,
    took: Duration,
    /// Peak resident memory of the run, from /usr/bin/time.
    peak_mib: u64,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.out, self.err))
    }

    /// Whether the report says the input leads outside its tree, and no
    /// output holds `secret` (a value of the file behind the link).
    fn refused_outside(&self, secret: &str) -> bool {
        self.out.contains("outside") && !self.out.contains(secret) && !self.err.contains(secret)
    }

    /// The findings of one code in a JSON report.
    fn findings(&self, code: &str) -> Vec<serde_json::Value> {
        self.json()["findings"].as_array().expect("findings").iter().filter(|f| f["code"] == code).cloned().collect()
    }
}

/// Runs the binary in `dir` with a 1 GiB address-space cap and a 60 s kill
/// switch (so a hang or a runaway read fails the test instead of the
/// machine), measuring wall time and peak memory.
fn run_in(dir: &Path, args: &[&str], stdin: Stdio) -> Run {
    run_as(dir, &[], args, stdin)
}

/// [`run_in`], started through `prefix` (e.g. `setpriv` to drop root).
fn run_as(dir: &Path, prefix: &[&str], args: &[&str], stdin: Stdio) -> Run {
    let stats = tempfile::NamedTempFile::new().expect("temp file");
    let start = Instant::now();
    let out = Command::new("bash")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec /usr/bin/time -q -f %M -o \"$0\" timeout -s KILL 60 \"$@\"")
        .arg(stats.path())
        .args(prefix)
        .arg(BIN)
        .args(args)
        .stdin(stdin)
        .output()
        .expect("bash runs");
    let took = start.elapsed();
    let kib: u64 = fs::read_to_string(stats.path())
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    Run {
        code: out.status.code().unwrap_or(-1),
        out: text(&out.stdout),
        err: text(&out.stderr),
        took,
        peak_mib: kib / 1024,
    }
}

/// 1-based line and column (in characters) of the first `needle` in `text`.
fn place(text: &str, needle: &str) -> (u64, u64) {
    let at = text.find(needle).unwrap_or_else(|| panic!("`{needle}` is in the text"));
    let before = &text[..at];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before.rsplit('\n').next().expect("a line").chars().count() as u64 + 1;
    (line, col)
}

/// A sparse file of `size` bytes: large to read, free to create.
fn sparse(path: &Path, size: u64) {
    fs::File::create(path).expect("create").set_len(size).expect("sparse file");
}

fn mkfifo(path: &Path) {
    let out = tool("mkfifo", &[path.to_str().expect("utf-8")], Path::new("/"));
    assert!(out.status.success(), "mkfifo: {}", text(&out.stderr));
}

const GOOD: &str = "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: hunter2-Xq9\n";

/// Item 2 and 17: an alias inside the value of its own anchor is a
/// recursive structure; go-yaml (and so `docker stack config`) refuses it
/// with "anchor ... value contains itself". It used to be counted as one
/// node, so merge keys over it ran for minutes, and `a: &x [*x]` passed.
#[test]
fn recursive_anchors_are_refused_at_the_alias_as_docker_does() {
    let mut many = String::from("version: \"3.8\"\nservices:\n");
    for i in 0..20 {
        many.push_str(&format!("  s{i}: &s{i} {{image: nginx:1, key: *s{i}}}\n"));
    }
    let cases: [(&str, String, &str); 6] = [
        ("flow merge", "version: \"3.8\"\nservices:\n  web: &w {image: nginx:1, <<: [*w, *w, *w]}\n".into(), "*w"),
        (
            "block merge",
            "version: \"3.8\"\nservices:\n  web: &w\n    image: nginx:1\n    <<: [*w, *w, *w]\n".into(),
            "*w",
        ),
        (
            "nested",
            "version: \"3.8\"\nservices:\n  web: &w\n    image: nginx:1\n    deploy:\n      labels:\n        <<: *w\n"
                .into(),
            "*w",
        ),
        ("sequence", "version: \"3.8\"\nx-a: &x [*x]\nservices:\n  web: {image: nginx:1}\n".into(), "*x"),
        ("20 services", many, "*s0"),
        (
            "inside a merged map",
            "version: \"3.8\"\nx-a: &a {k: v}\nservices:\n  web: &w {<<: [*a], image: nginx:1, labels: [*w]}\n".into(),
            "*w",
        ),
    ];
    for (what, yaml, alias) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("docker-stack.yml"), &yaml).expect("write");
        // The reference parser refuses the same file.
        let docker = tool("docker", &["stack", "config", "-c", "docker-stack.yml"], dir.path());
        assert!(
            !docker.status.success() && text(&docker.stderr).contains("contains itself"),
            "{what}: docker refuses it: {}",
            text(&docker.stderr)
        );
        let r = run_in(dir.path(), &["lint", "--format", "json", "docker-stack.yml"], Stdio::null());
        assert_eq!(r.code, 2, "{what}: exit 2\n{}", r.out);
        let refused = r.findings("HC001");
        assert_eq!(refused.len(), 1, "{what}: one HC001\n{}", r.out);
        let msg = refused[0]["message"].as_str().expect("message");
        let name = &alias[1..];
        assert!(msg.contains("contains itself") && msg.contains(&format!("`{name}`")), "{what}: {msg}");
        let (line, col) = place(&yaml, alias);
        assert_eq!((refused[0]["line"].as_u64(), refused[0]["column"].as_u64()), (Some(line), Some(col)), "{what}");
        assert!(r.took < Duration::from_secs(5), "{what} took {:?}", r.took);
    }
}

/// Item 2: `<<: [*a, *a, *a]` chains were expanded once per path (3^depth
/// visits for every lookup of a missing key); they are now expanded once per
/// map. The document is within the expanded-size limit, so it is linted,
/// not refused.
#[test]
fn merge_key_chains_are_expanded_once_per_map() {
    let chain = |width: usize, depth: usize, services: usize| {
        let mut s = String::from("version: \"3.8\"\nx-0: &a0 {image: nginx:1.27, k0: v}\n");
        for i in 1..=depth {
            let refs = vec![format!("*a{}", i - 1); width].join(", ");
            s.push_str(&format!("x-{i}: &a{i} {{<<: [{refs}], k{i}: v}}\n"));
        }
        s.push_str("services:\n");
        for i in 0..services {
            s.push_str(&format!("  s{i}: {{<<: *a{depth}, labels: {{n: \"{i}\"}}}}\n"));
        }
        s
    };
    for (width, depth, services) in [(2, 16, 5), (3, 11, 1), (10, 5, 7)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let yaml = chain(width, depth, services);
        fs::write(dir.path().join("docker-stack.yml"), &yaml).expect("write");
        let r = run_in(dir.path(), &["lint", "--format", "json", "docker-stack.yml"], Stdio::null());
        assert_eq!(r.code, 1, "{width}x{depth}: linted\n{}{}", r.out, r.err);
        let floating = r.findings("HC203");
        assert_eq!(floating.len(), 1, "the merged image is found, and reported once where it is written");
        assert_eq!(floating[0]["line"], 2);
        assert!(r.took < Duration::from_secs(5), "{width}x{depth}x{services} took {:?}", r.took);
    }
}

/// Item 10: columns were counted from the start of the line for every node,
/// so a one-line (JSON) compose with non-ASCII text was quadratic: 217 KB
/// took 7.7 s against 0.19 s for its ASCII twin.
#[test]
fn long_non_ascii_lines_are_linear() {
    let compose = |filler: &str| {
        let mut services = Vec::new();
        let mut size = 0;
        let mut i = 0;
        while size < 1_200_000 {
            let s = format!(
                "\"s{i}\": {{\"image\": \"nginx:1.27\", \"labels\": {{\"note\": \"{}\"}}, \"environment\": {{\"DB_PASSWORD\": \"pw-{i}-x\"}}}}",
                filler.repeat(24)
            );
            size += s.len() + 2;
            services.push(s);
            i += 1;
        }
        // One finding at the very end of the line.
        services.push("\"last\": {\"image\": \"nginx:1.27\", \"privileged\": true}".into());
        format!("{{\"services\": {{{}}}}}", services.join(", "))
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut took = Vec::new();
    for (name, filler) in [("compose.ascii.yml", "e"), ("compose.utf8.yml", "é")] {
        let json = compose(filler);
        fs::write(dir.path().join(name), &json).expect("write");
        let r = run_in(dir.path(), &["lint", "--format", "json", name], Stdio::null());
        assert_eq!(r.code, 1, "{name}: {}", r.err);
        // Columns far along the line are right (counted in characters).
        let pw = r.findings("HC101");
        assert_eq!(
            (pw[0]["line"].as_u64(), pw[0]["column"].as_u64()),
            (Some(1), Some(place(&json, "\"pw-").1)),
            "{name}"
        );
        let privileged = r.findings("HC501");
        let at = json.rfind("true").expect("privileged");
        assert_eq!(privileged[0]["column"].as_u64(), Some(json[..at].chars().count() as u64 + 1), "{name}");
        assert_eq!(privileged[0]["end"]["column"].as_u64(), Some(json[..at].chars().count() as u64 + 5), "{name}");
        // Only a hang guard: the comparison below is what shows linearity.
        assert!(r.took < Duration::from_secs(60), "{name} ({} bytes) took {:?}", json.len(), r.took);
        took.push(r.took);
    }
    // The same work in both files, only the filler's encoding differs: a
    // quadratic column count made the non-ASCII twin 40x slower. A loaded
    // machine slows both alike.
    assert!(took[1] < took[0] * 3 + Duration::from_secs(1), "ASCII {:?}, non-ASCII {:?}", took[0], took[1]);
}

/// Item 11: every side file lint (and build) reads goes through the bounded
/// reader: a 3 GiB lock or config took 30 s and 6-9 GiB; a lock that is a
/// symlink to /dev/zero read until memory ran out; a FIFO blocked forever.
#[test]
fn side_files_are_read_with_limits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    fs::copy(format!("{ROOT}/examples/ha-postgres.toml"), root.join("cluster.toml")).expect("copy");
    fs::write(root.join("docker-stack.yml"), GOOD).expect("write");
    let check = |what: &str, r: &Run, expect: &str| {
        assert_eq!(r.code, 2, "{what}: exit 2\n{}\n{}", r.out, r.err);
        assert!(r.out.contains(expect) || r.err.contains(expect), "{what}: `{expect}`\n{}\n{}", r.out, r.err);
        assert!(r.took < Duration::from_secs(5), "{what} took {:?}", r.took);
        assert!(r.peak_mib < 100, "{what} peaked at {} MiB", r.peak_mib);
    };
    let huge = 3 * 1024 * 1024 * 1024;

    // The lock beside a spec: reported as an input error of the lock, in the JSON report.
    sparse(&root.join("hacompile.lock"), huge);
    let r = run_in(root, &["lint", "--format", "json", "cluster.toml"], Stdio::null());
    check("lock beside the spec", &r, "larger than 4 MiB");
    assert!(r.findings("HC001").iter().any(|f| f["file"] == "hacompile.lock"), "{}", r.out);
    fs::remove_file(root.join("hacompile.lock")).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", root.join("hacompile.lock")).expect("symlink");
    check("lock -> /dev/zero", &run_in(root, &["lint", "cluster.toml"], Stdio::null()), "a character device");
    fs::remove_file(root.join("hacompile.lock")).expect("rm");

    // --lock and --config.
    sparse(&root.join("big.lock"), huge);
    check("--lock huge", &run_in(root, &["lint", "--lock", "big.lock", "."], Stdio::null()), "larger than 4 MiB");
    std::os::unix::fs::symlink("/dev/zero", root.join("zero")).expect("symlink");
    check("--lock /dev/zero", &run_in(root, &["lint", "--lock", "zero", "."], Stdio::null()), "a character device");
    check("--config /dev/zero", &run_in(root, &["lint", "--config", "zero", "."], Stdio::null()), "a character device");
    mkfifo(&root.join("fifo"));
    check("--config FIFO", &run_in(root, &["lint", "--config", "fifo", "."], Stdio::null()), "a FIFO");

    // A discovered .hacompile.toml, in every format.
    sparse(&root.join(".hacompile.toml"), huge);
    for format in ["human", "json", "sarif", "github"] {
        let r = run_in(root, &["lint", "--format", format, "docker-stack.yml"], Stdio::null());
        check(&format!("huge .hacompile.toml ({format})"), &r, "larger than 1 MiB");
        if format != "human" && format != "github" {
            r.json();
        }
    }
    fs::remove_file(root.join(".hacompile.toml")).expect("rm");

    // An haproxy.cfg a stack names.
    let stack = format!("{GOOD}configs:\n  proxy:\n    file: ./haproxy.cfg\n");
    fs::write(root.join("docker-stack.yml"), stack).expect("write");
    std::os::unix::fs::symlink("/dev/zero", root.join("haproxy.cfg")).expect("symlink");
    let r = run_in(root, &["lint", "--format", "json", "docker-stack.yml"], Stdio::null());
    check("haproxy.cfg -> /dev/zero", &r, "a character device");
    assert!(r.findings("HC001").iter().any(|f| f["file"] == "./haproxy.cfg"), "{}", r.out);
    assert!(!r.findings("HC101").is_empty(), "the stack itself is still linted");
    fs::remove_file(root.join("haproxy.cfg")).expect("rm");
    sparse(&root.join("haproxy.cfg"), huge);
    check("huge haproxy.cfg", &run_in(root, &["lint", "docker-stack.yml"], Stdio::null()), "larger than");

    // stdin that never ends.
    let zero = fs::File::open("/dev/zero").expect("/dev/zero");
    check("stdin /dev/zero", &run_in(root, &["lint", "-"], zero.into()), "larger than 16 MiB");

    // build reads the lock too.
    for (what, make) in [("FIFO", 0), ("/dev/zero", 1), ("3 GiB", 2)] {
        let lock = root.join("hacompile.lock");
        let _ = fs::remove_file(&lock);
        match make {
            0 => mkfifo(&lock),
            1 => std::os::unix::fs::symlink("/dev/zero", &lock).expect("symlink"),
            _ => sparse(&lock, huge),
        }
        let r = run_in(root, &["build", "cluster.toml", "--stack-only"], Stdio::null());
        check(&format!("build with a {what} lock"), &r, "hacompile.lock");
        assert!(r.out.is_empty(), "build wrote nothing:\n{}", r.out);
    }
}

/// Item 13: `pin --check` passed, and `pin` skipped, an image written with
/// a YAML escape, because its text is not in the file verbatim.
#[test]
fn an_image_written_with_escapes_is_pinned_as_a_whole_scalar() {
    let reg = Registry::start();
    reg.push_fixtures("fx", "1", "v1");
    let h = &reg.host;
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join(".docker-empty");
    fs::create_dir_all(&empty).expect("mkdir");
    let pin = |args: &[&str]| {
        bin()
            .current_dir(dir.path())
            .arg("pin")
            .args(args)
            .args(["docker-stack.yml", "--insecure-registry", h])
            .env("DOCKER_CONFIG", &empty)
            .output()
            .expect("runs")
    };
    let original = format!(
        "# keep me\nservices:\n  a:\n    image: \"{h}/fx/oci-singl\\u0065:1\"   # escaped\n  b:\n    image: &b \"{h}/fx/docker-\\\n      single:1\"\n  c:\n    image: {h}/fx/oci-index:1\n"
    );
    fs::write(dir.path().join("docker-stack.yml"), &original).expect("write");
    let o = pin(&["--check", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "unpinned: {}{}", text(&o.stdout), text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let images = v["images"].as_array().expect("images");
    assert_eq!(images.len(), 3, "every image is seen: {v}");
    assert!(images.iter().all(|i| i["status"] == "unpinned"), "{v}");
    assert!(images.iter().any(|i| i["image"] == format!("{h}/fx/oci-single:1")), "{v}");
    assert_eq!(
        fs::read_to_string(dir.path().join("docker-stack.yml")).expect("read"),
        original,
        "--check writes nothing"
    );

    let o = pin(&[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pinned = fs::read_to_string(dir.path().join("docker-stack.yml")).expect("read");
    let single = reg.skopeo_digest("fx/oci-single:1");
    let docker = reg.skopeo_digest("fx/docker-single:1");
    let index = reg.skopeo_digest("fx/oci-index:1");
    assert_eq!(
        pinned,
        format!(
            "# keep me\nservices:\n  a:\n    image: \"{h}/fx/oci-single:1@{single}\"   # escaped\n  b:\n    image: &b \"{h}/fx/docker-single:1@{docker}\"\n  c:\n    image: {h}/fx/oci-index:1@{index}\n"
        ),
        "the escaped scalars are rewritten whole; nothing else changes"
    );
    assert_eq!(pin(&["--check"]).status.code(), Some(0), "pinned now");
}

/// Item 15: gaps in the walk ended with exit 0 (an unreadable directory, a
/// symlinked stack, a dangling one), an explicit FIFO blocked forever, and
/// a missing path ended before any report was printed.
#[test]
fn walk_gaps_are_input_errors_and_symlinked_stacks_are_linted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    // Readable by `nobody`, who runs the walk below.
    fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    fs::create_dir_all(root.join("repo/locked")).expect("mkdir");
    fs::write(root.join("repo/locked/docker-stack.yml"), GOOD).expect("write");
    fs::write(root.join("repo/compose.yml"), "services:\n  web:\n    image: nginx:1.27\n").expect("write");
    fs::set_permissions(root.join("repo/locked"), std::os::unix::fs::PermissionsExt::from_mode(0o000)).expect("chmod");
    let r = run_as(
        &root.join("repo"),
        &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
        &["lint", "--format", "json", "."],
        Stdio::null(),
    );
    fs::set_permissions(root.join("repo/locked"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    assert_eq!(r.code, 2, "an unreadable directory is an input error\n{}{}", r.out, r.err);
    let refused = r.findings("HC001");
    assert!(
        refused
            .iter()
            .any(|f| f["file"] == "./locked" && f["message"].as_str().is_some_and(|m| m.contains("ermission"))),
        "{}",
        r.out
    );
    assert!(!r.findings("HC203").is_empty(), "the readable file is still linted");

    // A symlinked stack is linted through a link inside its tree (the
    // working directory here, or its repository); a link out of it is an
    // input error that shows nothing of the file it leads to (a link in a
    // pull request could show the runner's ~/.pgpass in an excerpt);
    // dangling and looping links are errors.
    let walked = root.join("walked");
    fs::create_dir_all(walked.join("shared")).expect("mkdir");
    fs::write(walked.join("shared/stack.yml"), GOOD).expect("write");
    fs::write(root.join("elsewhere.yml"), "db.internal:5432:app:appuser:Zz-pgpass-Pw-77\n").expect("write");
    std::os::unix::fs::symlink("shared/stack.yml", walked.join("docker-stack.yml")).expect("symlink");
    let r = run_in(&walked, &["lint", "--format", "json", "."], Stdio::null());
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    assert!(r.findings("HC101").iter().any(|f| f["file"] == "./docker-stack.yml"), "{}", r.out);
    std::os::unix::fs::symlink("../elsewhere.yml", walked.join("docker-stack.prod.yml")).expect("symlink");
    for format in ["human", "json", "sarif", "github", "concise"] {
        for args in [&["lint", "--format", format, "."][..], &["lint", "--format", format, "docker-stack.prod.yml"][..]]
        {
            let r = run_in(&walked, args, Stdio::null());
            assert_eq!(r.code, 2, "{args:?}: {}{}", r.out, r.err);
            assert!(r.refused_outside("Zz-pgpass"), "{args:?}: {}{}", r.out, r.err);
        }
    }
    fs::remove_file(walked.join("docker-stack.prod.yml")).expect("rm");
    // In a repository, a link anywhere in it is followed.
    let repo = root.join("linked-repo");
    fs::create_dir_all(repo.join(".git")).expect("mkdir");
    fs::create_dir_all(repo.join("deploy")).expect("mkdir");
    fs::write(repo.join("common.yml"), GOOD).expect("write");
    std::os::unix::fs::symlink("../common.yml", repo.join("deploy/docker-stack.yml")).expect("symlink");
    let r = run_in(&repo.join("deploy"), &["lint", "--format", "json", "."], Stdio::null());
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    // A stack's env_file outside its tree (an absolute path) is not read:
    // it names a file of the machine that deploys.
    let env_stack =
        format!("services:\n  db:\n    image: postgres:16.4\n    env_file: {}\n", root.join("outside.env").display());
    fs::write(root.join("outside.env"), "POSTGRES_PASSWORD=Zz-env-Pw-77\n").expect("write");
    fs::write(repo.join("compose.yml"), env_stack).expect("write");
    let r = run_in(&repo, &["lint", "compose.yml"], Stdio::null());
    assert!(
        !r.out.contains("outside.env:") && !r.out.contains("Zz-env") && !r.err.contains("Zz-env"),
        "{}{}",
        r.out,
        r.err
    );
    std::os::unix::fs::symlink("missing.yml", walked.join("compose.yml")).expect("symlink");
    std::os::unix::fs::symlink("docker-stack.loop.yml", walked.join("docker-stack.loop.yml")).expect("symlink");
    let r = run_in(&walked, &["lint", "--format", "json", "."], Stdio::null());
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
    let files: Vec<_> = r.findings("HC001").iter().map(|f| f["file"].as_str().expect("file").to_owned()).collect();
    assert_eq!(files, ["./compose.yml", "./docker-stack.loop.yml"], "{}", r.out);

    // FIFOs: refused at once, named or walked.
    mkfifo(&walked.join("docker-stack.fifo.yml"));
    for args in [&["lint", "--format", "json", "docker-stack.fifo.yml"][..], &["lint", "--format", "json", "."][..]] {
        let r = run_in(&walked, args, Stdio::null());
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.out, r.err);
        assert!(r.took < Duration::from_secs(5), "{args:?} took {:?}", r.took);
        assert!(
            r.findings("HC001")
                .iter()
                .any(|f| f["file"].as_str().is_some_and(|n| n.ends_with("docker-stack.fifo.yml"))
                    && f["message"].as_str().is_some_and(|m| m.contains("FIFO"))),
            "{}",
            r.out
        );
    }

    // A missing path is an entry of the report, in every format; the other files are still linted.
    let only = root.join("only");
    fs::create_dir_all(&only).expect("mkdir");
    fs::write(only.join("docker-stack.yml"), GOOD).expect("write");
    for format in ["human", "json", "sarif", "github"] {
        let r = run_in(&only, &["lint", "--format", format, "no-such.yml", "docker-stack.yml"], Stdio::null());
        assert_eq!(r.code, 2, "{format}: {}{}", r.out, r.err);
        match format {
            "json" => {
                let missing = r.findings("HC001");
                assert_eq!(missing.len(), 1, "{}", r.out);
                assert_eq!(missing[0]["file"], "no-such.yml");
                assert!(missing[0]["message"].as_str().is_some_and(|m| m.contains("does not exist")));
                assert!(!r.findings("HC101").is_empty(), "the other file is linted");
            }
            "sarif" => {
                let log: serde_sarif::sarif::Sarif = serde_json::from_str(&r.out).expect("valid SARIF");
                drop(log);
                let v = r.json();
                let results = v["runs"][0]["results"].as_array().expect("results");
                assert!(results.iter().any(|x| x["ruleId"] == "HC001"), "{}", r.out);
                assert!(results.iter().any(|x| x["ruleId"] == "HC101"), "{}", r.out);
            }
            "github" => {
                assert!(
                    r.out.lines().any(|l| l.starts_with("::error file=no-such.yml") && l.contains("HC001")),
                    "{}",
                    r.out
                );
            }
            _ => assert!(r.out.contains("does not exist") && r.out.contains("HC101"), "{}", r.out),
        }
    }
}

/// Item 17: a million duplicate keys took 8.6 s and 541 MiB and printed a
/// 381 MB report; on one line, columns made it quadratic too. Findings are
/// capped per rule and file, with one more finding of the same rule saying
/// how many were left out; duplicates past that are counted, not recorded.
#[test]
fn floods_of_findings_are_capped_per_rule_and_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut block = String::from("services:\n  web:\n    image: nginx:1.27\nx-d:\n");
    block.push_str(&"  a: 1\n".repeat(400_000));
    fs::write(dir.path().join("docker-stack.block.yml"), &block).expect("write");
    let flow = format!("services:\n  web:\n    image: nginx:1.27\nx-d: {{{}}}\n", vec!["a: é"; 300_000].join(", "));
    fs::write(dir.path().join("docker-stack.flow.yml"), &flow).expect("write");
    // Every format carries the note. The human format shows each finding's
    // whole line, so the one-line file is checked in the machine formats
    // (shortening the snippet of a 2 MB line is the renderer's job).
    let cases = [
        ("docker-stack.block.yml", 399_999, &["json", "human"][..]),
        ("docker-stack.flow.yml", 299_999, &["json", "sarif", "github"][..]),
    ];
    // What a report holds whatever the findings (SARIF carries the whole rule
    // catalogue, which grows with every rule): measured on a clean file.
    fs::write(dir.path().join("docker-stack.clean.yml"), "services:\n  web:\n    image: nginx:1.27\n").expect("write");
    let base = |format: &str| {
        run_in(dir.path(), &["lint", "--format", format, "docker-stack.clean.yml"], Stdio::null()).out.len()
    };
    for (name, dups, formats) in cases {
        for &format in formats {
            let r = run_in(dir.path(), &["lint", "--format", format, name], Stdio::null());
            assert_eq!(r.code, 1, "{name} {format}: {}", r.err);
            assert!(r.took < Duration::from_secs(30), "{name} {format} took {:?}", r.took);
            assert!(r.peak_mib < 200, "{name} {format} peaked at {} MiB", r.peak_mib);
            let findings_bytes = r.out.len().saturating_sub(base(format));
            assert!(findings_bytes < 200_000, "{name} {format}: {findings_bytes} bytes of findings");
            let note = format!("{} more findings of HC304 left out", dups - 100);
            assert!(r.out.contains(&note), "{name} {format}: `{note}`");
            let shown = match format {
                "json" => r.findings("HC304").len(),
                "sarif" => r.json()["runs"][0]["results"]
                    .as_array()
                    .expect("results")
                    .iter()
                    .filter(|x| x["ruleId"] == "HC304")
                    .count(),
                "github" => r.out.lines().filter(|l| l.contains("title=HC304")).count(),
                _ => r.out.matches("HC304 duplicate-key").count(),
            };
            assert_eq!(shown, 101, "{name} {format}: 100 findings and the note");
        }
    }

    // Left-out findings that are all suppressed make a suppressed note.
    let mut suppressed = String::from(
        "# hacompile-ignore-file HC304, HC203: generated fixture\nservices:\n  web:\n    image: nginx:1.27\nx-d:\n",
    );
    suppressed.push_str(&"  a: 1\n".repeat(1_000));
    fs::write(dir.path().join("docker-stack.suppressed.yml"), &suppressed).expect("write");
    let r = run_in(
        dir.path(),
        &["lint", "--format", "json", "--fail-on", "error", "docker-stack.suppressed.yml"],
        Stdio::null(),
    );
    assert_eq!(r.code, 0, "every HC304 is suppressed: {}", r.out);
    let hc304 = r.findings("HC304");
    assert_eq!(hc304.len(), 101);
    assert!(hc304.iter().all(|f| f["suppressed"].is_string()), "{}", r.out);
    assert!(hc304[100]["message"].as_str().is_some_and(|m| m.starts_with("899 more findings of HC304 left out")));
}

/// With no repository around a checkout and the working directory at `/`
/// (or any directory above it), the working directory bounded the tree: a
/// committed link to a runner's file was followed and printed, and a
/// `.hacompile.toml` planted above the checkout turned the gate off. The
/// working directory `/` is no tree; each path stays in its own directory.
#[test]
fn from_the_root_directory_links_and_configs_stay_in_their_own_tree() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    fs::create_dir_all(root.join("ws/pr")).expect("mkdir");
    fs::create_dir_all(root.join("runner")).expect("mkdir");
    fs::write(root.join("runner/.pgpass"), "db.internal:5432:app:app:Zz-runner-Pw-77\n").expect("write");
    std::os::unix::fs::symlink("../../runner/.pgpass", root.join("ws/pr/docker-stack.yml")).expect("symlink");
    fs::write(root.join(".hacompile.toml"), "exclude = [\"**\"]\n").expect("write");
    let link = root.join("ws/pr/docker-stack.yml");
    let r = run_in(Path::new("/"), &["lint", "--format", "json", link.to_str().expect("utf-8")], Stdio::null());
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
    assert!(r.refused_outside("Zz-runner"), "{}{}", r.out, r.err);
    fs::remove_file(&link).expect("rm");
    fs::write(root.join("ws/pr/compose.yml"), GOOD).expect("write");
    let pr = root.join("ws/pr");
    let r = run_in(Path::new("/"), &["lint", "--format", "json", pr.to_str().expect("utf-8")], Stdio::null());
    assert_eq!(r.code, 1, "the planted config above is not used: {}{}", r.out, r.err);
    assert!(!r.findings("HC101").is_empty(), "{}", r.out);
}
