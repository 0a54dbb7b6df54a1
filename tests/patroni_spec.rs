//! The patroni topology's spec: every relation Patroni and etcd need is
//! checked at build time, with the location, the reason and a fix; exit 2
//! and nothing on stdout. And what a valid spec compiles to is what the
//! proofs (cluster_patroni, tests/swarm) run.

mod support;

use std::fs;

use support::*;

const EXAMPLE: &str = include_str!("../examples/ha-patroni.toml");

fn build(spec: &str) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    examples_lock(dir.path());
    fs::write(dir.path().join("spec.toml"), spec).expect("writable");
    let out = bin()
        .current_dir(dir.path())
        .args(["build", "spec.toml", "--lock", "examples.lock", "--stack-only"])
        .output()
        .expect("runs");
    Run::of(&out)
}

fn example_with(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "the example contains {from:?}");
    EXAMPLE.replacen(from, to, 1)
}

#[test]
fn the_example_builds() {
    let run = build(EXAMPLE);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("pg-3:"), "three members");
}

#[test]
fn patroni_timing_rule_is_enforced_at_ttl() {
    let spec = example_with("loop_wait = 5\nretry_timeout = 5", "loop_wait = 10\nretry_timeout = 6");
    let run = build(&spec);
    assert_error(
        &run,
        "spec::patroni-timing",
        "loop_wait + 2 * retry_timeout = 22 exceeds ttl = 20",
        &locate(&spec, "20\nloop_wait"),
        "loop_wait + 2 * retry_timeout <= ttl",
    );
}

#[test]
fn ttl_below_current_patronis_minimum_is_refused() {
    let spec = example_with("ttl = 20", "ttl = 10");
    let run = build(&spec);
    assert_error(
        &run,
        "spec::patroni-timing",
        "`patroni.ttl` must be from 20",
        &locate(&spec, "10\nloop_wait"),
        "ttl >= 20",
    );
}

#[test]
fn an_even_etcd_cluster_is_refused_at_its_last_member() {
    let spec = example_with(
        "[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 3\"]\n",
        "[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 3\"]\n\n[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 4\"]\n",
    );
    let run = build(&spec);
    assert_error(
        &run,
        "spec::dcs",
        "4 etcd members tolerate no more losses than 3",
        &locate(&spec, "[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 4\"]"),
        "use 3 members",
    );
}

#[test]
fn a_single_etcd_member_needs_development_said() {
    let three = "[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 1\"]\n\n[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 2\"]\n\n[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 3\"]\n";
    let one = "[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 1\"]\n";
    let spec = example_with(three, one);
    let run = build(&spec);
    assert_error(
        &run,
        "spec::dcs",
        "one etcd member is a single point of failure",
        &locate(&spec, one),
        "development = true",
    );
    let dev = spec.replacen("[dcs]\n", "[dcs]\ndevelopment = true\n", 1);
    let run = build(&dev);
    assert_eq!(run.code, 0, "development allows one member: {}", run.stderr);
}

#[test]
fn one_member_is_not_a_cluster() {
    let spec = example_with(
        "[[patroni.members]]\nconstraints = [\"node.labels.pg.member == 2\"]\n\n[[patroni.members]]\nconstraints = [\"node.labels.pg.member == 3\"]\n",
        "",
    );
    let run = build(&spec);
    assert_error(
        &run,
        "spec::members",
        "Patroni needs at least 2 members",
        &locate(&spec, "[patroni]"),
        "[[patroni.members]]",
    );
}

#[test]
fn pinned_tables_in_a_patroni_spec_are_refused() {
    let spec =
        example_with("[patroni]\n", "[postgres.primary]\nconstraints = [\"node.role == manager\"]\n\n[patroni]\n");
    let run = build(&spec);
    assert_error(
        &run,
        "spec::topology",
        "`[postgres.primary]` is not used by the patroni topology",
        &locate(&spec, "[postgres.primary]\nconstraints"),
        "[[patroni.members]]",
    );
}

#[test]
fn patroni_tables_in_a_pinned_spec_are_refused() {
    let spec = example_with("topology = \"patroni\"\n", "");
    let run = build(&spec);
    assert_error(
        &run,
        "spec::topology",
        "`[patroni]` is read only with `topology = \"patroni\"`",
        &locate(&spec, "[patroni]"),
        "for automatic failover, or remove the table",
    );
    assert!(run.stderr.contains("spec::primary"), "and the pinned topology's own table is missing:\n{}", run.stderr);
}

#[test]
fn the_rest_api_password_must_be_a_declared_secret() {
    let spec = example_with(
        "password = { secret = \"patroni_api_password\" }",
        "password = { secret = \"patroni_api_pasword\" }",
    );
    let run = build(&spec);
    assert_error(
        &run,
        "spec::undeclared-secret",
        "the secret `patroni_api_pasword` is not declared",
        &locate(&spec, "\"patroni_api_pasword\""),
        "did you mean `patroni_api_password`?",
    );
    let literal = example_with("password = { secret = \"patroni_api_password\" }", "password = \"Sup3r-s3cret-api\"");
    let run = build(&literal);
    assert_eq!(run.code, 2);
    assert!(!run.stderr.contains("Sup3r-s3cret-api"), "a literal credential is never printed:\n{}", run.stderr);
}

#[test]
fn an_unlocked_patroni_image_says_how_to_build_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("spec.toml"), EXAMPLE).expect("writable");
    fs::write(dir.path().join("hacompile.lock"), include_str!("../examples/hacompile.lock")).expect("writable");
    let out = bin().current_dir(dir.path()).args(["build", "spec.toml", "--stack-only"]).output().expect("runs");
    let run = Run::of(&out);
    assert_error(
        &run,
        "build::not-locked",
        "`registry.example.com/ha_db/patroni:16` has no digest",
        &locate(EXAMPLE, "\"registry.example.com/ha_db/patroni:16\""),
        "hacompile dockerfile spec.toml > patroni.Dockerfile",
    );
    // The recipe needs only the postgres image pinned, which the lock has.
    let recipe = bin().current_dir(dir.path()).args(["dockerfile", "spec.toml"]).output().expect("runs");
    assert!(recipe.status.success(), "{}", text(&recipe.stderr));
    let recipe = text(&recipe.stdout);
    let from: Vec<&str> = recipe.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        from,
        ["FROM postgres:16@sha256:11a9d238fbb48bab14599c57e41123254452b1a2d93c6c8595bce96f346bd082"],
        "built on the pinned official image"
    );
    assert!(recipe.contains("USER postgres"));
    // A pinned spec has no such image.
    let pinned = bin().args(["dockerfile", "examples/ha-postgres.toml"]).output().expect("runs");
    assert_eq!(pinned.status.code(), Some(2));
    assert!(text(&pinned.stderr).contains("build::no-image"));
}

#[test]
fn no_credential_reaches_the_stack_or_a_patroni_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = tempfile::tempdir().expect("temp dir");
    let run = bin()
        .args(["build", "examples/ha-patroni.toml", "--lock"])
        .arg(examples_lock(dir.path()))
        .arg("-o")
        .arg(out.path())
        .output()
        .expect("runs");
    assert!(run.status.success(), "{}", text(&run.stderr));
    let stack: hacompile_stack::StackFile =
        serde_yaml_ng::from_str(&fs::read_to_string(out.path().join("docker-stack.yml")).expect("stack"))
            .expect("parses");
    for (name, svc) in stack.services.iter().filter(|(n, _)| n.starts_with("pg-") && !n.ends_with("-exporter")) {
        let secrets: Vec<&str> = svc.secrets.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(
            secrets,
            ["postgres_user", "postgres_password", "replication_password", "patroni_api_password", "monitor_password"],
            "{name}"
        );
        assert!(svc.environment.keys().all(|k| !k.starts_with("PATRONI_")), "{name}: no PATRONI_* value in the stack");
        assert_eq!(svc.networks, ["pg_net", "pg_net_dcs"], "{name}");
        assert!(svc.ports.is_empty(), "{name}: nothing published");
    }
    for (name, svc) in stack.services.iter().filter(|(n, _)| n.ends_with("-exporter")) {
        let secrets: Vec<&str> = svc.secrets.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(secrets, ["monitor_password"], "{name}: the monitoring role's password only");
        assert_eq!(svc.networks, ["pg_net"], "{name}: never on the DCS network");
        assert!(svc.ports.is_empty(), "{name}: nothing published");
    }
    for (name, svc) in stack.services.iter().filter(|(n, _)| n.starts_with("etcd-")) {
        assert_eq!(svc.networks, ["pg_net_dcs"], "{name}: only the members reach etcd");
        assert!(svc.ports.is_empty(), "{name}: never published");
    }
    assert!(!stack.services["haproxy"].networks.contains(&"pg_net_dcs".to_owned()), "HAProxy never reaches etcd");
    for n in 1..=3 {
        let yml: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            &fs::read_to_string(out.path().join(format!("patroni-pg-{n}.yml"))).expect("config"),
        )
        .expect("parses");
        let text = serde_yaml_ng::to_string(&yml).expect("serializes");
        assert!(!text.contains("password"), "no password key or value in patroni-pg-{n}.yml:\n{text}");
        assert_eq!(yml["bootstrap"]["dcs"]["ttl"], 20);
        assert_eq!(yml["bootstrap"]["dcs"]["synchronous_mode"], true);
        assert_eq!(yml["name"], format!("pg-{n}").as_str());
    }
}

#[test]
fn lint_warns_on_a_development_etcd_and_finds_nothing_else_in_the_example() {
    let three = "[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 1\"]\n\n[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 2\"]\n\n[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 3\"]\n";
    let spec = example_with(three, "[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == 1\"]\n").replacen(
        "[dcs]\n",
        "[dcs]\ndevelopment = true\n",
        1,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let lock = examples_lock(dir.path());
    fs::rename(&lock, dir.path().join("hacompile.lock")).expect("rename");
    for (name, text, expected) in [("dev.toml", spec.as_str(), vec!["HC410"]), ("example.toml", EXAMPLE, vec![])] {
        fs::write(dir.path().join(name), text).expect("writable");
        let out = bin().current_dir(dir.path()).args(["lint", "--format", "json", name]).output().expect("runs");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let codes: Vec<&str> =
            report["findings"].as_array().expect("findings").iter().filter_map(|f| f["code"].as_str()).collect();
        assert_eq!(codes, expected, "{name}: {}", text_of(&out.stdout));
        if name == "dev.toml" {
            let line = report["findings"][0]["line"].as_u64().expect("line");
            let at = spec.lines().position(|l| l == "development = true").expect("written") + 1;
            assert_eq!(line, at as u64, "the warning points at `development = true`");
        }
    }
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
