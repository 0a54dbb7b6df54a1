//! `hacompile preflight`'s error paths, end to end, with a fake `docker`
//! (a shell script) where the real CLI cannot be made to fail this way.
//! What preflight finds in a real swarm is proven by tests/swarm/preflight.sh
//! on a real single-node swarm.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::*;

const SPEC: &str = include_str!("../examples/ha-postgres.toml");

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("spec.toml"), SPEC).expect("writable");
        Case { dir }
    }

    /// A fake docker CLI: `body` is the shell script's text after the shebang.
    fn docker(&self, body: &str) -> PathBuf {
        let bin = self.dir.path().join("bin");
        fs::create_dir_all(&bin).expect("bin dir");
        let path = bin.join("docker");
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("writable");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn run(&self, args: &[&str], path_env: Option<&Path>) -> Run {
        let mut cmd = bin();
        cmd.current_dir(self.dir.path()).arg("preflight").arg("spec.toml").args(args).env_remove("DOCKER_HOST");
        if let Some(p) = path_env {
            cmd.env("PATH", p);
        }
        Run::of(&cmd.output().expect("runs"))
    }
}

fn assert_exit2(run: &Run, message: &str, help: &str) {
    assert_eq!(run.code, 2, "exit 2; stderr:\n{}", run.stderr);
    assert!(run.stdout.is_empty(), "nothing on stdout: {}", run.stdout);
    assert!(run.stderr.contains(message), "stderr should say {message:?}:\n{}", run.stderr);
    assert!(run.stderr.contains(help), "stderr should help with {help:?}:\n{}", run.stderr);
}

#[test]
fn no_docker_cli_is_exit_2_with_a_hint() {
    let case = Case::new();
    let empty = case.dir.path().join("empty");
    fs::create_dir_all(&empty).expect("dir");
    // Not on PATH.
    let run = case.run(&[], Some(&empty));
    assert_exit2(&run, "cannot run `docker`", "install the docker CLI or name it with --docker PATH");
    // Named, but absent.
    let run = case.run(&["--docker", "/nonexistent/docker"], None);
    assert_exit2(&run, "cannot run `/nonexistent/docker`", "--docker PATH");
}

#[test]
fn a_daemon_outside_any_swarm_is_exit_2_with_swarm_init_as_the_hint() {
    let case = Case::new();
    let docker = case.docker(r#"echo '{"Swarm":{"NodeID":"","LocalNodeState":"inactive","ControlAvailable":false}}'"#);
    // Found on PATH, as `docker`.
    let run = case.run(&[], Some(docker.parent().expect("bin")));
    assert_exit2(&run, "not part of an active swarm (its state: inactive)", "docker swarm init");
}

#[test]
fn a_worker_is_exit_2_pointing_at_a_manager() {
    let case = Case::new();
    let docker = case.docker(r#"echo '{"Swarm":{"NodeID":"n1","LocalNodeState":"active","ControlAvailable":false}}'"#);
    let run = case.run(&["--docker", docker.to_str().expect("utf-8")], None);
    assert_exit2(&run, "is a swarm worker", "point DOCKER_HOST");
}

#[test]
fn a_daemon_that_does_not_answer_is_exit_2_after_the_timeout() {
    let case = Case::new();
    // A child keeps stdout open after the CLI is killed: no hang either way.
    let docker = case.docker("sleep 20 &\nsleep 20");
    let run = case.run(&["--docker", docker.to_str().expect("utf-8"), "--timeout", "1"], None);
    assert_exit2(&run, "`docker info --format {{json .}}` did not answer within 1 s", "raise --timeout");
}

#[test]
fn a_failing_daemon_is_exit_2_with_its_message_sanitized() {
    let case = Case::new();
    let docker = case.docker(
        r"printf 'Cannot connect to the Docker daemon\033]0;pwned\007 at unix:///var/run/docker.sock\n' >&2; exit 1",
    );
    let run = case.run(&["--docker", docker.to_str().expect("utf-8")], None);
    assert_exit2(&run, "Cannot connect to the Docker daemon", "check DOCKER_HOST");
    assert!(
        !run.stderr.contains('\u{1b}') && !run.stderr.contains('\u{7}'),
        "raw control characters: {:?}",
        run.stderr
    );
    assert!(run.stderr.contains(r"\u{001b}]0;pwned\u{0007}"), "{:?}", run.stderr);
}

#[test]
fn huge_or_garbled_answers_are_exit_2() {
    let case = Case::new();
    // More than the 16 MiB bound: refused, not read whole.
    let docker = case.docker("head -c 20000000 /dev/zero");
    let run = case.run(&["--docker", docker.to_str().expect("utf-8")], None);
    assert_exit2(&run, "wrote more than 16777216 bytes", "not the answer of a docker CLI");
    let docker = case.docker("echo 'this is not json'");
    let run = case.run(&["--docker", docker.to_str().expect("utf-8")], None);
    assert_exit2(&run, "cannot read the answer of `docker info`", "not the answer of a docker CLI");
}

#[test]
fn an_invalid_spec_is_exit_2_before_docker_is_asked() {
    let case = Case::new();
    fs::write(case.dir.path().join("spec.toml"), SPEC.replacen("database = \"app\"", "databse = \"app\"", 1))
        .expect("w");
    let marker = case.dir.path().join("asked");
    let docker = case.docker(&format!("touch '{}'", marker.display()));
    let run = case.run(&["--docker", docker.to_str().expect("utf-8")], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("unknown key `databse`"), "{}", run.stderr);
    assert!(!marker.exists(), "docker was run for an invalid spec");
}

/// A fake manager of a one-node swarm whose node has this machine's
/// hostname: enough for preflight to get to its checks.
fn one_node_swarm(case: &Case) -> PathBuf {
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let node = format!(
        r#"[{{"ID":"n1","Spec":{{"Role":"manager","Availability":"active"}},"Description":{{"Hostname":"{}","Platform":{{"OS":"linux","Architecture":"x86_64"}},"Engine":{{"EngineVersion":"20.10.24"}},"Resources":{{"NanoCPUs":4000000000,"MemoryBytes":8589934592}}}},"Status":{{"State":"ready"}}}}]"#,
        hostname.trim()
    );
    case.docker(&format!(
        r#"case "$1 $2" in
  "info --format") echo '{{"Swarm":{{"NodeID":"n1","LocalNodeState":"active","ControlAvailable":true}}}}' ;;
  "version --format") echo '{{"Client":{{"ApiVersion":"1.41"}},"Server":{{"ApiVersion":"1.41"}}}}' ;;
  "node ls") echo n1 ;;
  "node inspect") echo '{node}' ;;
  *) ;;
esac"#
    ))
}

/// Ports are tested by binding them only when the daemon is this machine:
/// with DOCKER_HOST naming another one, a port held here says nothing
/// about the swarm's node and is reported as not tested.
#[test]
fn ports_are_bound_here_only_when_the_daemon_is_here() {
    let case = Case::new();
    let held = std::net::TcpListener::bind(("0.0.0.0", 0)).expect("a free port");
    let port = held.local_addr().expect("addr").port();
    let free = || std::net::TcpListener::bind(("0.0.0.0", 0)).expect("bind").local_addr().expect("addr").port();
    let spec = SPEC
        .replacen("write_port = 5000", &format!("write_port = {port}"), 1)
        .replacen("read_port = 5001", &format!("read_port = {}", free()), 1)
        .replacen("port = 8080", &format!("port = {}", free()), 1);
    fs::write(case.dir.path().join("spec.toml"), spec).expect("writable");
    let docker = one_node_swarm(&case);
    let docker = docker.to_str().expect("utf-8");
    let here = case.run(&["--docker", docker], None);
    assert_eq!(here.code, 1, "{}", here.stderr);
    assert!(
        here.stdout.contains(&format!("publishes {port}/tcp in host mode, but a process on this node")),
        "{}",
        here.stdout
    );
    let mut cmd = bin();
    cmd.current_dir(case.dir.path()).args(["preflight", "spec.toml", "--docker", docker]);
    let remote = Run::of(&cmd.env("DOCKER_HOST", "tcp://192.0.2.1:2376").output().expect("runs"));
    assert!(!remote.stdout.contains("a process on this node"), "{}", remote.stdout);
    assert!(
        remote.stdout.contains(&format!("port {port}/tcp on this node"))
            && remote.stdout.contains("not tested (the docker daemon is not on this machine)"),
        "{}",
        remote.stdout
    );
    drop(held);
}

/// A swarm whose nodes are named to turn the printed fixes against the
/// user: a hostname that is a flag, a node ID that is a flag and a shell
/// word, a hostname with terminal escapes. Every printed fix must parse in
/// bash, and run (against a recording `docker`) it must name an existing
/// node exactly and pass no option the fix does not mean.
#[test]
fn printed_fixes_name_hostile_nodes_safely_and_do_what_they_say() {
    let case = Case::new();
    let node = |id: &str, host: &str, availability: &str, labels: &str| {
        format!(
            r#"{{"ID":{id},"Spec":{{"Role":"worker","Availability":"{availability}","Labels":{{{labels}}}}},"Description":{{"Hostname":{host},"Platform":{{"OS":"linux","Architecture":"x86_64"}},"Engine":{{"EngineVersion":"20.10.24"}},"Resources":{{"NanoCPUs":4000000000,"MemoryBytes":8589934592}}}},"Status":{{"State":"ready"}}}}"#,
            id = serde_json::to_string(id).expect("json"),
            host = serde_json::to_string(host).expect("json"),
        )
    };
    let nodes = [
        ("n1", "--availability=drain", "active", ""),
        ("n2", "evil\u{1b}]0;x\u{7}", "drain", r#""pg.role":"primary""#),
        ("-x;rm -rf ~", "dup", "active", ""),
        ("n4", "dup", "active", ""),
    ];
    let json = format!("[{}]", nodes.iter().map(|(i, h, a, l)| node(i, h, a, l)).collect::<Vec<_>>().join(","));
    fs::write(case.dir.path().join("nodes.json"), &json).expect("w");
    let docker = case.docker(&format!(
        r#"case "$1 $2" in
  "info --format") echo '{{"Swarm":{{"NodeID":"n4","LocalNodeState":"active","ControlAvailable":true}}}}' ;;
  "version --format") echo '{{"Client":{{"ApiVersion":"1.41"}},"Server":{{"ApiVersion":"1.41"}}}}' ;;
  "node ls") printf 'n1\nn2\nn3\nn4\n' ;;
  "node inspect") cat '{}' ;;
  *) ;;
esac"#,
        case.dir.path().join("nodes.json").display()
    ));
    let run = case.run(&["--docker", docker.to_str().expect("utf-8")], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stdout.contains('\u{1b}') && !run.stdout.contains('\u{7}'), "{:?}", run.stdout);
    let fixes: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("fix: "))
        .filter(|c| c.contains("node"))
        .collect();
    assert!(fixes.len() >= 2, "{}", run.stdout);
    // A recording docker: one argument per line.
    let rec = case.dir.path().join("rec");
    fs::create_dir_all(&rec).expect("dir");
    let argv = case.dir.path().join("argv");
    fs::write(rec.join("docker"), format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", argv.display())).expect("w");
    fs::set_permissions(rec.join("docker"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let ids: Vec<&str> = nodes.iter().map(|n| n.0).collect();
    let unique_hosts = ["--availability=drain"];
    for fix in fixes {
        let syntax = std::process::Command::new("bash").args(["-n", "-c", fix]).output().expect("bash");
        assert!(syntax.status.success(), "bash -n refuses {fix:?}");
        let _ = fs::remove_file(&argv);
        let ran = std::process::Command::new("/bin/bash").args(["-c", fix]).env("PATH", &rec).output().expect("bash");
        assert!(ran.status.success(), "{fix:?}: {}", String::from_utf8_lossy(&ran.stderr));
        let args =
            fs::read_to_string(&argv).unwrap_or_else(|e| panic!("{fix:?}: docker did not run ({e}):\n{}", run.stdout));
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(&args[..2], ["node", "update"], "{fix:?}");
        // Options the fix means, each with its value; then `--` and the node.
        let mut i = 2;
        while i < args.len() && matches!(args[i], "--label-add" | "--label-rm" | "--availability") {
            i += 2;
        }
        assert_eq!(args.get(i), Some(&"--"), "{fix:?} passes an option it does not mean: {args:?}");
        assert_eq!(args.len(), i + 2, "{fix:?}: one node: {args:?}");
        let target = args[i + 1];
        // A hostname only when unique and not a flag's look-alike would
        // do; a plain node ID always does.
        assert!(
            (ids.contains(&target) && target.bytes().all(|b| b.is_ascii_alphanumeric()))
                || unique_hosts.contains(&target),
            "{fix:?} names {target:?}, not a node"
        );
    }
    // The node with a hostile ID and a shared hostname cannot be named: no
    // command for it; the other node of that hostname is named by its ID.
    assert!(!run.stdout.lines().any(|l| l.contains("fix:") && l.contains("rm -rf")), "{}", run.stdout);
    assert!(run.stdout.contains("fix: docker node update --label-add pg.role=replica -- n4"), "{}", run.stdout);
}

/// A swarm that lists many services publishing host-mode ports, its CLI
/// slow on each `service ps`: preflight's docker calls are bounded in
/// number whatever the swarm holds (each call has its deadline, so the
/// whole read is bounded in time), not one call per service.
#[test]
fn docker_calls_are_bounded_whatever_the_number_of_services() {
    let case = Case::new();
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let node = format!(
        r#"[{{"ID":"n1","Spec":{{"Role":"manager","Availability":"active"}},"Description":{{"Hostname":"{}","Engine":{{"EngineVersion":"20.10.24"}}}},"Status":{{"State":"ready"}}}}]"#,
        hostname.trim()
    );
    let count = 40;
    let services: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#"{{"ID":"s{i}","Spec":{{"Name":"other_{i}","Labels":{{"com.docker.stack.namespace":"other"}},"EndpointSpec":{{"Ports":[{{"Protocol":"tcp","PublishedPort":{},"PublishMode":"host"}}]}}}}}}"#,
                40000 + i
            )
        })
        .collect();
    fs::write(case.dir.path().join("services.json"), format!("[{}]", services.join(","))).expect("w");
    fs::write(case.dir.path().join("node.json"), node).expect("w");
    let ids: String = (0..count).map(|i| format!("s{i}\n")).collect();
    let calls = case.dir.path().join("calls");
    let tasks: String = (0..count)
        .map(|i| format!(r#"{{"ID":"t{i}","ServiceID":"s{i}","NodeID":"n1"}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let docker = case.docker(&format!(
        r#"echo "$*" >> '{calls}'
case "$1 $2" in
  "info --format") echo '{{"Swarm":{{"NodeID":"n1","LocalNodeState":"active","ControlAvailable":true}}}}' ;;
  "version --format") echo '{{"Client":{{"ApiVersion":"1.41"}},"Server":{{"ApiVersion":"1.41"}}}}' ;;
  "node ls") echo n1 ;;
  "node inspect") cat '{dir}/node.json' ;;
  "service ls") printf '{ids}' ;;
  "service inspect") cat '{dir}/services.json' ;;
  "service ps") sleep 0.2; for s in "$@"; do case "$s" in s*) echo "t${{s#s}}" ;; esac; done ;;
  "inspect --type") echo '[{tasks}]' ;;
  *) ;;
esac"#,
        calls = calls.display(),
        dir = case.dir.path().display(),
        ids = ids.replace('\n', "\\n"),
    ));
    let run = case.run(&["--docker", docker.to_str().expect("utf-8")], None);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let calls = fs::read_to_string(&calls).expect("calls");
    let n = calls.lines().count();
    assert!(n <= 9, "{n} docker calls:\n{calls}");
    // The tasks were read: service ps and task inspect once each.
    assert_eq!(calls.lines().filter(|l| l.starts_with("service ps")).count(), 1, "{calls}");
    assert_eq!(calls.lines().filter(|l| l.starts_with("inspect --type task")).count(), 1, "{calls}");
}

/// A CLI that answers with tens of thousands of nodes (7 MB, under the
/// output bound) is refused, exit 2: checking every service against every
/// node took minutes.
#[test]
fn more_nodes_than_preflight_reads_is_exit_2() {
    let case = Case::new();
    let nodes: Vec<String> = (0..60_000)
        .map(|i| {
            format!(
                r#"{{"ID":"n{i}","Description":{{"Hostname":"h{i}"}},"Spec":{{"Availability":"active"}},"Status":{{"State":"ready"}}}}"#
            )
        })
        .collect();
    fs::write(case.dir.path().join("nodes.json"), format!("[{}]", nodes.join(","))).expect("w");
    let docker = case.docker(&format!(
        r#"case "$1 $2" in
  "info --format") echo '{{"Swarm":{{"NodeID":"n1","LocalNodeState":"active","ControlAvailable":true}}}}' ;;
  "version --format") echo '{{"Client":{{"ApiVersion":"1.41"}},"Server":{{"ApiVersion":"1.41"}}}}' ;;
  "node ls") echo n1 ;;
  "node inspect") cat '{}' ;;
  *) ;;
esac"#,
        case.dir.path().join("nodes.json").display()
    ));
    let run = case.run(&["--docker", docker.to_str().expect("utf-8")], None);
    assert_exit2(&run, "60000 nodes, more than the 5000 preflight reads", "not the answer of a docker CLI");
}
