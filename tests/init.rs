//! `hacompile init`: the starter spec builds and lints clean for both
//! topologies and several node counts, an existing file is kept, a bad flag
//! value exits 2 and writes nothing, and without a terminal nothing waits
//! for input. Each case runs in its own temp dir.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Output, Stdio};

use support::*;

fn init(dir: &Path, args: &[&str]) -> Output {
    bin().current_dir(dir).arg("init").args(args).stdin(Stdio::null()).output().expect("runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// The lock `build` and `lint` find beside the spec: the examples' real
/// digests plus the placeholders for the Patroni and etcd images.
fn lock_beside(dir: &Path) {
    let locks = tempfile::tempdir().expect("temp dir");
    fs::copy(examples_lock(locks.path()), dir.join("hacompile.lock")).expect("copied");
}

fn lint_findings(dir: &Path, target: &str) -> (serde_json::Value, i32) {
    let lint =
        bin().current_dir(dir).args(["lint", "--format", "json", "--fail-on", "info", target]).output().expect("runs");
    let report: serde_json::Value = serde_json::from_slice(&lint.stdout)
        .unwrap_or_else(|e| panic!("json from lint ({e}): {}{}", text(&lint.stdout), text(&lint.stderr)));
    (report["findings"].clone(), code(&lint))
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn every_topology_and_node_count_builds_and_lints_clean() {
    for (topology, nodes) in
        [("pinned", 2), ("pinned", 3), ("pinned", 5), ("patroni", 2), ("patroni", 3), ("patroni", 5)]
    {
        let case = format!("{topology} x {nodes}");
        let dir = tempfile::tempdir().expect("temp dir");
        let n = nodes.to_string();
        let run = init(dir.path(), &["--topology", topology, "--nodes", &n, "--stack", "orders_db", "--yes"]);
        assert_eq!(code(&run), 0, "{case}: {}", text(&run.stderr));
        assert!(run.stdout.is_empty(), "{case}: init prints nothing on stdout");
        assert!(text(&run.stderr).contains("wrote spec.toml"), "{case}: {}", text(&run.stderr));
        let spec = fs::read_to_string(dir.path().join("spec.toml")).expect("spec.toml written");

        // The shape asked for.
        assert!(spec.contains(&format!("topology = \"{topology}\"")), "{case}");
        assert!(spec.contains("stack = \"orders_db\""), "{case}");
        assert!(spec.contains("docker stack deploy -c deploy/docker-stack.yml orders_db"), "{case}");
        let (tables, labels) = if topology == "pinned" {
            (count(&spec, "[[postgres.replicas]]") + count(&spec, "[postgres.primary]"), "--label-add pg.role=")
        } else {
            (count(&spec, "[[patroni.members]]"), "--label-add pg.member=")
        };
        assert_eq!(tables, nodes, "{case}: one table per database node");
        assert_eq!(count(&spec, labels), nodes, "{case}: one label command per database node");
        if topology == "patroni" {
            assert_eq!(count(&spec, "[[dcs.members]]"), 3, "{case}: three etcd members");
            assert_eq!(count(&spec, "--label-add etcd.member="), 3, "{case}");
            assert!(spec.contains("# Before deploying"), "{case}");
            assert!(spec.contains("#   hacompile dockerfile spec.toml > patroni.Dockerfile"), "{case}");
        }

        // Every declared secret has its `docker secret create` in the header,
        // and every table opens under a comment that explains it.
        let lines: Vec<&str> = spec.lines().collect();
        let mut secrets = 0;
        let mut seen = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if let Some(name) = line.strip_prefix("[secrets.").and_then(|s| s.strip_suffix(']')) {
                secrets += 1;
                assert!(spec.contains(&format!("| docker secret create {name} -")), "{case}: {name} has its command");
            }
            // A repeated table (`[[...]]`) is explained once, above the first.
            if line.starts_with('[') && !line.starts_with("[secrets.") && !seen.contains(line) {
                seen.push(*line);
                let above = lines[..i].iter().rev().find(|l| !l.is_empty() && !l.starts_with('['));
                assert!(above.is_some_and(|l| l.starts_with("# ")), "{case}: table `{line}` has no comment above it");
            }
        }
        assert_eq!(secrets, if topology == "pinned" { 4 } else { 5 }, "{case}");

        // It builds, with the services asked for, and lints clean: the spec
        // with the lock beside it, and the compiled files.
        lock_beside(dir.path());
        let build = bin().current_dir(dir.path()).args(["build", "spec.toml", "-o", "deploy"]).output().expect("runs");
        assert_eq!(code(&build), 0, "{case}: {}", text(&build.stderr));
        let stack = fs::read_to_string(dir.path().join("deploy/docker-stack.yml")).expect("stack written");
        let last = if topology == "pinned" { format!("pg-replica-{}:", nodes - 1) } else { format!("pg-{nodes}:") };
        assert!(stack.contains(&last), "{case}: the stack has {last}");
        let extra = if topology == "pinned" { format!("pg-replica-{nodes}:") } else { format!("pg-{}:", nodes + 1) };
        assert!(!stack.contains(&extra), "{case}: the stack has no {extra}");
        // The spec lints clean; its output has only the `info` that it does
        // not archive WAL (init writes no [backup]: that needs an image you
        // build, see README "Backups").
        let (findings, status) = lint_findings(dir.path(), "spec.toml");
        assert_eq!(findings, serde_json::json!([]), "{case}: lint spec.toml");
        assert_eq!(status, 0, "{case}: lint spec.toml");
        let (findings, _) = lint_findings(dir.path(), "deploy");
        let codes: Vec<&str> =
            findings.as_array().expect("findings").iter().filter_map(|f| f["code"].as_str()).collect();
        assert_eq!(codes, ["HC414"], "{case}: lint deploy: {findings}");
        assert_eq!(findings[0]["severity"], "info", "{case}");
    }
}

#[test]
fn the_images_given_are_the_images_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = init(
        dir.path(),
        &[
            "--topology",
            "patroni",
            "--postgres-image",
            "postgres:17",
            "--haproxy-image",
            "haproxy:3.0",
            "--patroni-image",
            "registry.example.com:5000/team/patroni:17",
            "--etcd-image",
            "quay.io/coreos/etcd:v3.5.18",
            "-o",
            "cluster.toml",
            "--yes",
        ],
    );
    assert_eq!(code(&run), 0, "{}", text(&run.stderr));
    let spec = fs::read_to_string(dir.path().join("cluster.toml")).expect("written at -o");
    for line in [
        "image = \"postgres:17\"",
        "image = \"haproxy:3.0\"",
        "image = \"registry.example.com:5000/team/patroni:17\"",
        "image = \"quay.io/coreos/etcd:v3.5.18\"",
        "#   docker build -f patroni.Dockerfile -t registry.example.com:5000/team/patroni:17 .",
        "#   hacompile lock cluster.toml ",
    ] {
        assert!(spec.contains(line), "{line:?} in\n{spec}");
    }
    assert!(!dir.path().join("spec.toml").exists(), "only the file named by -o");
}

#[test]
fn an_existing_file_is_kept_unless_forced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("spec.toml");
    fs::write(&path, "# mine\n").expect("writable");
    let run = init(dir.path(), &["--yes"]);
    assert_eq!(code(&run), 2);
    let err = text(&run.stderr);
    assert!(err.contains("spec.toml exists; nothing was written"), "{err}");
    assert!(err.contains("--force"), "the help names the way out: {err}");
    assert_eq!(fs::read_to_string(&path).expect("readable"), "# mine\n", "the file is untouched");

    let forced = init(dir.path(), &["--yes", "--force"]);
    assert_eq!(code(&forced), 0, "{}", text(&forced.stderr));
    assert!(fs::read_to_string(&path).expect("readable").contains("[postgres]"), "replaced");
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .expect("listable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".hacompile-"))
        .collect();
    assert!(leftovers.is_empty(), "no temp file left: {leftovers:?}");

    let into_dir = init(dir.path(), &["--yes", "-o", "."]);
    assert_eq!(code(&into_dir), 2, "a directory is never replaced");
}

#[test]
fn bad_flag_values_exit_2_and_write_nothing() {
    for (args, expect) in [
        (vec!["--stack", "orders db"], "--stack orders db: not a valid stack name"),
        (vec!["--stack=-db"], "not a valid stack name"),
        (vec!["--stack", "db_"], "not a valid stack name"),
        (vec!["--nodes", "1"], "--nodes 1: the pinned topology has 2 to 17 database nodes"),
        (vec!["--nodes", "18"], "--nodes 18"),
        (vec!["--topology", "patroni", "--nodes", "17"], "the patroni topology has 2 to 16 members"),
        (vec!["--topology", "patroni", "--nodes", "1"], "--nodes 1"),
        (vec!["--nodes", "many"], "invalid value 'many'"),
        (vec!["--topology", "stolon"], "invalid value 'stolon'"),
        (vec!["--postgres-image", "postgres"], "the postgres image needs a tag"),
        (vec!["--postgres-image", "bitnamilegacy/postgresql:17"], "examples/bitnami.toml"),
        (vec!["--haproxy-image", "HAProxy:2.8"], "--haproxy-image HAProxy:2.8: not a valid image reference"),
        (vec!["--topology", "patroni", "--etcd-image", "quay.io/coreos/etcd"], "the etcd image needs a tag"),
        (vec!["--topology", "pinned", "--patroni-image", "x/patroni:16"], "only the patroni topology uses it"),
        (vec!["--etcd-image", "quay.io/coreos/etcd:v3.5.17"], "for the patroni topology only"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut all = args.clone();
        all.push("--yes");
        let run = init(dir.path(), &all);
        let err = text(&run.stderr);
        assert_eq!(code(&run), 2, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: expected {expect:?} in {err}");
        assert!(fs::read_dir(dir.path()).expect("listable").next().is_none(), "{args:?}: nothing written");
    }
}

#[test]
fn every_bad_flag_is_reported_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = init(dir.path(), &["--stack", "a b", "--nodes", "99", "--haproxy-image", "haproxy"]);
    assert_eq!(code(&run), 2);
    let err = text(&run.stderr);
    for flag in ["--stack a b", "--nodes 99", "--haproxy-image haproxy"] {
        assert!(err.contains(flag), "{flag} in {err}");
    }
}

#[test]
fn without_a_terminal_the_defaults_are_taken_and_said() {
    let dir = tempfile::tempdir().expect("temp dir");
    // No --yes: stdin is /dev/null, not a terminal.
    let run = init(dir.path(), &["--nodes", "3"]);
    assert_eq!(code(&run), 0, "{}", text(&run.stderr));
    let err = text(&run.stderr);
    assert!(err.contains("stdin is not a terminal: using the defaults --topology pinned"), "{err}");
    assert!(err.contains("--stack ha_db"), "{err}");
    assert!(!err.contains("--nodes"), "a given answer is not a default: {err}");
    let spec = fs::read_to_string(dir.path().join("spec.toml")).expect("written");
    assert_eq!(count(&spec, "[[postgres.replicas]]"), 2);
}

#[test]
fn an_open_pipe_on_stdin_is_never_read() {
    // A script's stdin may be a pipe nobody writes to or closes: init must
    // finish without reading it.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = bin()
        .current_dir(dir.path())
        .args(["init", "--topology", "patroni"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let _stdin = child.stdin.take().expect("piped");
    let mut status = None;
    // Bounded: 600 polls of 100 ms; a blocked read would never end.
    for _ in 0..600 {
        if let Some(s) = child.try_wait().expect("waitable") {
            status = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("init waited on a stdin that is not a terminal");
    }
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(fs::read_to_string(dir.path().join("spec.toml")).expect("written").contains("topology = \"patroni\""));
}
