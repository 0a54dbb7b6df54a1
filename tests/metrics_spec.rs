//! `[postgres.exporter]` in the spec: each bad value is refused with its
//! location, the reason and a fix (exit 2, nothing on stdout); a valid one
//! compiles to one hardened exporter per database service whose stack holds
//! no credential, and its image is pinned, locked and linted like the others.

mod support;

use std::fs;

use hacompile_stack::StackFile;
use support::*;

const EXAMPLE: &str = include_str!("../examples/ha-postgres-backup.toml");
const BITNAMI: &str = include_str!("../examples/bitnami.toml");
const EXPORTER_IMAGE: &str = "quay.io/prometheuscommunity/postgres-exporter:v0.16.0";

fn build_with(spec: &str, lock: bool) -> (Run, Option<StackFile>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let lock_path = examples_lock(dir.path());
    if !lock {
        fs::write(&lock_path, include_str!("../examples/hacompile.lock")).expect("writable");
    }
    fs::write(dir.path().join("spec.toml"), spec).expect("writable");
    let out = bin()
        .current_dir(dir.path())
        .args(["build", "spec.toml", "--lock", "examples.lock", "-o", "out"])
        .output()
        .expect("runs");
    let run = Run::of(&out);
    let stack = fs::read_to_string(dir.path().join("out/docker-stack.yml"))
        .ok()
        .map(|t| serde_yaml_ng::from_str(&t).expect("the stack parses"));
    (run, stack)
}

fn build(spec: &str) -> Run {
    build_with(spec, true).0
}

fn example_with(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "the example contains {from:?}");
    EXAMPLE.replacen(from, to, 1)
}

#[test]
fn an_unknown_key_suggests_the_right_one() {
    let spec =
        example_with("password = { secret = \"monitor_password\" }", "pasword = { secret = \"monitor_password\" }");
    assert_error(
        &build(&spec),
        "spec::unknown-key",
        "unknown key `pasword`",
        &locate(&spec, "pasword"),
        "did you mean `password`?",
    );
}

#[test]
fn the_role_is_a_plain_name_of_its_own() {
    let spec = example_with("user = \"hacompile_monitor\"", "user = \"Monitor\"");
    assert_error(&build(&spec), "spec::name", "`postgres.exporter.user`", &locate(&spec, "\"Monitor\""), "lowercase");
    for taken in ["postgres", "replicator", "pg_monitor"] {
        let spec = example_with("user = \"hacompile_monitor\"", &format!("user = \"{taken}\""));
        let context = format!("user = \"{taken}\"\npassword = {{ secret = \"monitor_password\" }}");
        let at = locate_in(&spec, &context, &format!("\"{taken}\""));
        let run = build(&spec);
        assert_error(&run, "spec::exporter", &format!("cannot connect as `{taken}`"), &at, "only `pg_monitor`");
    }
}

#[test]
fn its_password_is_a_declared_secret_of_its_own() {
    let spec = example_with("[secrets.monitor_password]\n", "");
    assert_error(
        &build(&spec),
        "spec::undeclared-secret",
        "the secret `monitor_password` is not declared",
        &locate(&spec, "\"monitor_password\""),
        "[secrets.monitor_password]",
    );
    for (secret, whose) in [("postgres_password", "superuser's"), ("replication_password", "replication role's")] {
        let spec = example_with(
            "password = { secret = \"monitor_password\" }",
            &format!("password = {{ secret = \"{secret}\" }} # monitor"),
        );
        let at = locate_in(&spec, &format!("\"{secret}\" }} # monitor"), &format!("\"{secret}\""));
        assert_error(&build(&spec), "spec::exporter", &format!("is the {whose} password"), &at, "a secret of its own");
    }
}

#[test]
fn a_port_the_exporter_cannot_bind_is_refused() {
    for port in ["80", "5432"] {
        let spec = example_with(
            "password = { secret = \"monitor_password\" }",
            &format!("password = {{ secret = \"monitor_password\" }}\nport = {port}"),
        );
        let run = build(&spec);
        assert_error(
            &run,
            "spec::port",
            &format!("`postgres.exporter.port` {port}"),
            &locate_in(&spec, &format!("port = {port}"), port),
            "9187",
        );
    }
}

#[test]
fn the_bitnami_flavor_is_refused_with_the_reason() {
    let anchor = "password = { secret = \"replication_password\" }\n";
    assert!(BITNAMI.contains(anchor));
    let spec = BITNAMI.replacen(anchor, &format!("{anchor}\n[postgres.exporter]\nimage = \"{EXPORTER_IMAGE}\"\npassword = {{ secret = \"monitor_password\" }}\n"), 1)
        + "\n[secrets.monitor_password]\n";
    let run = build(&spec);
    assert_error(
        &run,
        "spec::exporter",
        "needs the official `postgres` image flavor",
        &locate(&spec, "[postgres.exporter]"),
        "flavor = \"official\"",
    );
}

#[test]
fn an_exporter_image_without_a_lock_entry_says_how_to_get_one() {
    let (run, _) = build_with(EXAMPLE, false);
    let at = locate(EXAMPLE, &format!("\"{EXPORTER_IMAGE}\""));
    assert_error(&run, "build::not-locked", &format!("`{EXPORTER_IMAGE}`"), &at, "hacompile lock");
    // In the same run as the other image the lock lacks.
    assert!(run.stderr.contains("postgres-pgbackrest:16` has no digest"), "{}", run.stderr);
}

#[test]
fn the_lint_of_the_spec_reports_an_unpinned_exporter_image() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("spec.toml"), EXAMPLE).expect("writable");
    fs::write(dir.path().join("hacompile.lock"), include_str!("../examples/hacompile.lock")).expect("writable");
    let out = bin().current_dir(dir.path()).args(["lint", "spec.toml"]).output().expect("runs");
    let run = Run::of(&out);
    let line = run.stdout.lines().find(|l| l.contains("postgres-exporter")).unwrap_or_default();
    assert!(run.stdout.contains("HC203"), "HC203 for the exporter image:\n{}{}", run.stdout, run.stderr);
    assert!(!line.is_empty(), "the exporter image is named:\n{}", run.stdout);
}

#[test]
fn one_hardened_exporter_per_database_service_and_no_credential_in_the_stack() {
    let (run, stack) = build_with(EXAMPLE, true);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stack = stack.expect("a stack");
    for db in ["pg-primary", "pg-replica-1"] {
        let e = stack.services.get(&format!("{db}-exporter")).unwrap_or_else(|| panic!("{db}'s exporter"));
        assert!(e.image.starts_with(&format!("{EXPORTER_IMAGE}@sha256:")), "pinned: {}", e.image);
        assert_eq!(
            e.environment.get("DATA_SOURCE_URI").map(String::as_str),
            Some(&*format!("{db}:5432/postgres?sslmode=disable&connect_timeout=3"))
        );
        assert_eq!(e.environment.get("DATA_SOURCE_USER").map(String::as_str), Some("hacompile_monitor"));
        assert_eq!(
            e.environment.get("DATA_SOURCE_PASS_FILE").map(String::as_str),
            Some("/run/secrets/monitor_password")
        );
        assert!(!e.environment.contains_key("DATA_SOURCE_NAME"), "no connection string");
        assert!(e.ports.is_empty(), "nothing published");
        assert_eq!(e.networks, ["pg_net"]);
        assert_eq!(e.cap_drop, ["ALL"]);
        assert!(e.cap_add.is_empty());
        assert_eq!(e.read_only, Some(true));
        assert_eq!(e.user.as_deref(), Some("65534:65534"));
        assert!(e.healthcheck.is_some() && e.logging.is_some());
        let secret = &e.secrets[0];
        assert_eq!((secret.source.as_str(), secret.uid.as_str(), secret.mode), ("monitor_password", "65534", 0o400));
        let deploy = e.deploy.as_ref().expect("deploy");
        assert_eq!(deploy.restart_policy.condition, "any");
        let label = |k: &str| deploy.labels.get(k).map(String::as_str);
        assert_eq!(label("prometheus.io/scrape"), Some("true"));
        assert_eq!(label("prometheus.io/port"), Some("9187"));
        assert_eq!(label("prometheus.io/path"), Some("/metrics"));
        assert_eq!(label("prometheus.io/job"), Some("postgres"));
        assert_eq!(label("hacompile.database"), Some(db));
    }
    let haproxy = stack.services["haproxy"].deploy.as_ref().expect("deploy");
    assert_eq!(haproxy.labels.get("prometheus.io/job").map(String::as_str), Some("haproxy"));
    assert_eq!(haproxy.labels.get("prometheus.io/port").map(String::as_str), Some("8080"));
    // Only the primary creates the role, so only it holds the password.
    let holds = |svc: &str| stack.services[svc].secrets.iter().any(|s| s.source == "monitor_password");
    assert!(holds("pg-primary") && !holds("pg-replica-1"));

    // Without the table: no exporter; HAProxy's labels follow its own /metrics.
    let start = EXAMPLE.find("# A Prometheus postgres_exporter").expect("the exporter's comment");
    let end = EXAMPLE[start..].find("\n\n").expect("the table's end") + start + 2;
    let without = EXAMPLE[..start].to_owned() + &EXAMPLE[end..];
    let (run, stack) = build_with(&without, true);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stack = stack.expect("a stack");
    assert!(!stack.services.keys().any(|k| k.ends_with("-exporter")));
    assert!(!stack.configs.keys().any(|k| k.contains("exporter")));
    assert!(stack.services["haproxy"].deploy.as_ref().is_some_and(|d| d.labels.contains_key("prometheus.io/scrape")));
    let no_metrics = without.replacen(
        "users = { secret = \"haproxy_stats_users\" }",
        "users = { secret = \"haproxy_stats_users\" }\nmetrics = false",
        1,
    );
    let (_, stack) = build_with(&no_metrics, true);
    assert!(stack.expect("a stack").services["haproxy"].deploy.as_ref().is_some_and(|d| d.labels.is_empty()));
}
