//! Every example compiles; its outputs are snapshotted and accepted by the
//! real docker CLI and HAProxy.

mod support;

use std::fs;

use support::*;

#[test]
fn every_example_compiles_and_real_tools_accept_it() {
    let examples = examples();
    assert!(examples.len() >= 3, "examples/ has the bundled specs");
    for spec in examples {
        let name = spec.file_stem().expect("file name").to_string_lossy().into_owned();
        let out = tempfile::tempdir().expect("temp dir");
        let rel = format!("examples/{name}.toml");
        let run = bin().args(["build", &rel, "-o"]).arg(out.path()).output().expect("runs");
        assert!(run.status.success(), "{name}: {}", text(&run.stderr));
        assert!(run.stdout.is_empty(), "with -o nothing goes to stdout");

        let merged =
            docker_stack_config(out.path()).unwrap_or_else(|e| panic!("{name}: docker stack config rejected it:\n{e}"));
        assert!(merged.contains("@sha256:"), "{name}: images are pinned by digest");
        haproxy_check(out.path()).unwrap_or_else(|e| panic!("{name}: haproxy -c rejected it:\n{e}"));
        referenced_files_exist(out.path()).unwrap_or_else(|e| panic!("{name}: {e}"));

        let mut files: Vec<_> =
            fs::read_dir(out.path()).expect("listable").map(|e| e.expect("entry").file_name()).collect();
        files.sort();
        for file in files {
            let file = file.to_string_lossy().into_owned();
            if file == "userlist.cfg" {
                continue;
            }
            let contents = fs::read_to_string(out.path().join(&file)).expect("utf-8 output");
            insta::assert_snapshot!(format!("{name}__{file}"), contents);
        }
    }
}

#[test]
fn stdout_form_writes_the_stack_to_stdout_and_its_files_beside_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = format!("{ROOT}/examples/ha-postgres.toml");
    let run = bin().current_dir(dir.path()).args(["build", &spec]).output().expect("runs");
    assert!(run.status.success(), "{}", text(&run.stderr));
    fs::write(dir.path().join("docker-stack.yml"), &run.stdout).expect("writable");
    for f in ["haproxy.cfg", "pg-primary-init.sh", "pg-replica-entrypoint.sh"] {
        assert!(dir.path().join(f).is_file(), "{f} written into the current directory");
    }
    referenced_files_exist(dir.path()).expect("the files the stack names exist beside it");
    docker_stack_config(dir.path()).expect("docker accepts the stdout form");

    // --stack-only writes nothing else; --files-dir puts the files elsewhere.
    let quiet = tempfile::tempdir().expect("temp dir");
    let run = bin().current_dir(quiet.path()).args(["build", &spec, "--stack-only"]).output().expect("runs");
    assert!(run.status.success());
    assert_eq!(run.stdout, fs::read(dir.path().join("docker-stack.yml")).expect("read"));
    assert_eq!(fs::read_dir(quiet.path()).expect("list").count(), 0);
    let run = bin().current_dir(quiet.path()).args(["build", &spec, "--files-dir", "deploy"]).output().expect("runs");
    assert!(run.status.success());
    assert!(quiet.path().join("deploy/haproxy.cfg").is_file());
}

#[test]
fn builds_are_byte_identical() {
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    for dir in [&a, &b] {
        let run = bin().args(["build", "examples/three-replicas.toml", "-o"]).arg(dir.path()).output().expect("runs");
        assert!(run.status.success());
    }
    for f in ["docker-stack.yml", "haproxy.cfg", "pg-primary-init.sh", "pg-replica-entrypoint.sh"] {
        assert_eq!(
            fs::read(a.path().join(f)).expect("a"),
            fs::read(b.path().join(f)).expect("b"),
            "{f} differs between builds"
        );
    }
}

#[test]
fn the_example_lock_is_in_canonical_form() {
    let text = fs::read_to_string(format!("{ROOT}/examples/hacompile.lock")).expect("lock exists");
    let lock = hacompile_image::LockFile::parse(&text).expect("valid lock");
    assert_eq!(lock.render(), text, "the committed lock is what `hacompile lock` would write");
}

#[test]
fn emitted_scripts_pass_shellcheck() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = bin().args(["build", "examples/ha-postgres.toml", "-o"]).arg(dir.path()).output().expect("runs");
    assert!(run.status.success());
    let out = tool("shellcheck", &["pg-primary-init.sh", "pg-replica-entrypoint.sh"], dir.path());
    assert!(out.status.success(), "shellcheck:\n{}", text(&out.stdout));
}
