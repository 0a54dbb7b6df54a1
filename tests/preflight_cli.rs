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
