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
        let locks = tempfile::tempdir().expect("temp dir");
        let rel = format!("examples/{name}.toml");
        let run = bin()
            .args(["build", &rel, "--lock"])
            .arg(examples_lock(locks.path()))
            .arg("-o")
            .arg(out.path())
            .output()
            .expect("runs");
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
    let out =
        tool("shellcheck", &["pg-primary-init.sh", "pg-primary-entrypoint.sh", "pg-replica-entrypoint.sh"], dir.path());
    assert!(out.status.success(), "shellcheck:\n{}", text(&out.stdout));
    let patroni = tempfile::tempdir().expect("temp dir");
    let run = bin()
        .args(["build", "examples/ha-patroni.toml", "--lock"])
        .arg(examples_lock(dir.path()))
        .arg("-o")
        .arg(patroni.path())
        .output()
        .expect("runs");
    assert!(run.status.success(), "{}", text(&run.stderr));
    let out = tool("shellcheck", &["patroni-entrypoint.sh"], patroni.path());
    assert!(out.status.success(), "shellcheck:\n{}", text(&out.stdout));
    let backup = tempfile::tempdir().expect("temp dir");
    let run = bin()
        .args(["build", "examples/ha-postgres-backup.toml", "--lock"])
        .arg(examples_lock(dir.path()))
        .arg("-o")
        .arg(backup.path())
        .output()
        .expect("runs");
    assert!(run.status.success(), "{}", text(&run.stderr));
    let out = tool("shellcheck", &["pgbackrest.sh"], backup.path());
    assert!(out.status.success(), "shellcheck:\n{}", text(&out.stdout));
}

/// The project's own scripts (the benches, the test drivers, the swarm runs
/// and their stand-in images' entrypoints, the CI entry point) pass
/// shellcheck like the emitted ones.
#[test]
fn bench_and_test_scripts_pass_shellcheck() {
    fn scripts(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("readable dir") {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                scripts(&path, found);
            } else if path.extension().is_some_and(|e| e == "sh") {
                let rel = path.strip_prefix(ROOT).expect("under the repository");
                found.push(rel.to_str().expect("utf-8 path").to_owned());
            }
        }
    }
    let mut found = vec![".ci/run".to_owned()];
    for dir in ["benches", "tests"] {
        scripts(&std::path::Path::new(ROOT).join(dir), &mut found);
    }
    found.sort();
    for expected in ["benches/backup.sh", "benches/failover.sh", "tests/setup.sh", "tests/swarm/run.sh"] {
        assert!(found.iter().any(|f| f == expected), "{expected} is among the checked scripts: {found:?}");
    }
    let args: Vec<&str> = found.iter().map(String::as_str).collect();
    let out = tool("shellcheck", &args, std::path::Path::new(ROOT));
    assert!(out.status.success(), "shellcheck {}:\n{}", args.join(" "), text(&out.stdout));
}

/// Compiles `spec` (text) with the example lock and returns the stack model.
fn compile_text(spec: &str) -> hacompile_stack::StackFile {
    let dir = tempfile::tempdir().expect("temp dir");
    examples_lock(dir.path());
    fs::write(dir.path().join("spec.toml"), spec).expect("writable");
    let run = bin()
        .current_dir(dir.path())
        .args(["build", "spec.toml", "--lock", "examples.lock", "--stack-only"])
        .output()
        .expect("runs");
    assert!(run.status.success(), "{}", text(&run.stderr));
    serde_yaml_ng::from_slice(&run.stdout).expect("the stack parses back into the model")
}

#[test]
fn credentials_reach_services_only_as_secret_files() {
    for spec in examples() {
        let stack = compile_text(&fs::read_to_string(&spec).expect("readable"));
        for (name, service) in &stack.services {
            for (key, value) in &service.environment {
                let credential_key = hacompile_boundary::mask::is_credential_key(key)
                    || (["PASSWORD", "PASS", "SECRET"].iter().any(|w| key.contains(w)) && !key.ends_with("_USER"));
                if credential_key {
                    assert!(key.ends_with("_FILE"), "{name}: {key} carries a credential in the environment");
                    assert!(value.starts_with('/'), "{name}: {key} names a file, not a value");
                }
            }
            for secret in &service.secrets {
                assert_eq!(secret.mode, 0o400, "{name}: secret {} readable by its owner only", secret.source);
            }
        }
        assert!(stack.secrets.values().all(|s| s.external == Some(true)), "example secrets are external");
    }
}

#[test]
fn a_changed_config_gets_a_new_name_so_deploy_rolls_it_out() {
    let base = include_str!("../examples/ha-postgres.toml");
    let a = compile_text(base);
    let b = compile_text(&base.replace("check = \"pgsql\"", "check = \"tcp\""));
    assert_ne!(a.configs["haproxy_cfg"].name, b.configs["haproxy_cfg"].name, "haproxy.cfg changed");
    assert_eq!(a.configs["pg_primary_init"].name, b.configs["pg_primary_init"].name, "the script did not change");
    assert!(a.configs["haproxy_cfg"].name.starts_with("ha_db_haproxy_cfg_"));
}

#[test]
fn the_hardened_choices_are_stated_in_the_output() {
    let stack = compile_text(include_str!("../examples/ha-postgres.toml"));
    let net = &stack.networks["pg_net"];
    assert_eq!(net.driver, "overlay");
    assert_eq!(net.driver_opts.get("encrypted").map(String::as_str), Some("true"));
    let proxy = &stack.services["haproxy"];
    let deploy = proxy.deploy.as_ref().expect("deploy");
    assert_eq!(deploy.mode, "global");
    assert!(proxy.ports.iter().all(|p| p.mode == "host"), "no ingress publishing");
    for db in ["pg-primary", "pg-replica-1"] {
        let svc = &stack.services[db];
        let d = svc.deploy.as_ref().expect("deploy");
        assert_eq!(d.update_config.order, "stop-first");
        assert_eq!(d.rollback_config.order, "stop-first");
        // Never abandoned by swarm: restarted on any exit, without a bound.
        assert_eq!(d.restart_policy.condition, "any");
        assert_eq!(d.restart_policy.max_attempts, 0);
        assert_eq!(d.endpoint_mode.as_deref(), Some("dnsrr"));
        let placement = d.placement.as_ref().expect("placement");
        assert!(!placement.constraints.is_empty());
        assert_eq!(placement.max_replicas_per_node, Some(1));
        assert_eq!(svc.stop_grace_period.as_deref(), Some("120s"));
        assert_eq!(svc.stop_signal.as_deref(), Some("SIGINT"));
        assert!(svc.healthcheck.is_some() && svc.logging.is_some());
    }
    let volumes: Vec<_> =
        ["pg-primary", "pg-replica-1"].iter().map(|s| stack.services[*s].volumes[0].source.clone()).collect();
    assert_ne!(volumes[0], volumes[1], "each database owns its volume");
}

#[test]
fn compiled_output_passes_hacompile_lint_with_no_finding_but_missing_backups() {
    for spec in examples() {
        let dir = tempfile::tempdir().expect("temp dir");
        let locks = tempfile::tempdir().expect("temp dir");
        let run = bin()
            .arg("build")
            .arg(&spec)
            .arg("--lock")
            .arg(examples_lock(locks.path()))
            .arg("-o")
            .arg(dir.path())
            .output()
            .expect("runs");
        assert!(run.status.success(), "{}", text(&run.stderr));
        let lint = bin()
            .current_dir(dir.path())
            .args(["lint", "--format", "json", "--fail-on", "info", "."])
            .output()
            .expect("runs");
        let report: serde_json::Value = serde_json::from_slice(&lint.stdout).expect("json");
        // A spec without `[backup]` compiles to a cluster with no WAL archive,
        // and the linter says so, once, as information (HC414); with
        // `[backup]` the output has no finding at all.
        let backup = fs::read_to_string(&spec).expect("readable").lines().any(|l| l.trim() == "[backup]");
        let codes: Vec<&str> =
            report["findings"].as_array().expect("findings").iter().filter_map(|f| f["code"].as_str()).collect();
        let expected: &[&str] = if backup { &[] } else { &["HC414"] };
        assert_eq!(codes, expected, "{}: {}", spec.display(), text(&lint.stdout));
        assert_eq!(lint.status.code(), Some(if backup { 0 } else { 1 }), "--fail-on info fails on HC414");
        let lint = bin().current_dir(dir.path()).args(["lint", "."]).output().expect("runs");
        assert_eq!(lint.status.code(), Some(0), "{}: clean at the default threshold", spec.display());
    }
}
