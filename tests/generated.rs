//! 200 varied valid specs from a fixed seed: every one compiles to a stack
//! the docker CLI accepts and a haproxy.cfg HAProxy accepts.

mod support;

use std::fmt::Write as _;
use std::fs;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::*;

const SEED: u64 = 0x4ac0_3f1e;
const SPECS: usize = 200;
const LOCK: &str = include_str!("../examples/hacompile.lock");
const PG16_DIGEST: &str = "sha256:11a9d238fbb48bab14599c57e41123254452b1a2d93c6c8595bce96f346bd082";

fn duration(rng: &mut ChaCha8Rng, min_s: u64, max_s: u64) -> String {
    let s = rng.random_range(min_s..=max_s);
    match rng.random_range(0..3) {
        0 => format!("{s}s"),
        1 if s >= 60 && s % 60 != 0 => format!("{}m{}s", s / 60, s % 60),
        1 if s >= 60 => format!("{}m", s / 60),
        _ => format!("{}ms", s * 1000),
    }
}

fn constraint(rng: &mut ChaCha8Rng, i: usize) -> String {
    match rng.random_range(0..5) {
        0 => format!("node.labels.pg.role == db{i}"),
        1 => format!("node.hostname == db-{i}"),
        2 => format!("node.hostname != edge-{i}"),
        3 => "node.role == worker".to_owned(),
        _ => format!("engine.labels.disk{i} == ssd"),
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|c| format!("{c:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn spec(rng: &mut ChaCha8Rng, n: usize) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "stack = \"stack{n}\"");
    if rng.random_bool(0.5) {
        let _ = writeln!(w, "[network]\nname = \"net_{n}\"\nencrypted = {}", rng.random_bool(0.8));
    }
    if rng.random_bool(0.3) {
        let _ = writeln!(
            w,
            "[logging]\nmax_size = \"{}m\"\nmax_file = {}",
            rng.random_range(1..100),
            rng.random_range(1..10)
        );
    }
    let prefix = ["pg", "db", "orders"].choose(rng).expect("non-empty");
    let secrets = ["user", "password", "repl", "stats"].map(|k| format!("{prefix}_{k}_{n}"));
    for (i, name) in secrets.iter().enumerate() {
        if i == 3 && rng.random_bool(0.3) {
            let _ = writeln!(w, "[secrets.{name}]\nexternal = false\nfile = \"./secrets/{name}\"");
        } else {
            let _ = writeln!(w, "[secrets.{name}]");
        }
    }
    let bitnami = rng.random_bool(0.25);
    let image = if bitnami {
        "bitnamilegacy/postgresql:17".to_owned()
    } else if rng.random_bool(0.2) {
        format!("postgres:16@{PG16_DIGEST}")
    } else {
        "postgres:16".to_owned()
    };
    let _ = writeln!(w, "[postgres]\nimage = \"{image}\"");
    if bitnami || rng.random_bool(0.5) {
        let _ = writeln!(w, "flavor = \"{}\"", if bitnami { "bitnami" } else { "official" });
    }
    let _ = writeln!(w, "database = \"db_{n}\"");
    let _ = writeln!(w, "user = {{ secret = \"{}\" }}\npassword = {{ secret = \"{}\" }}", secrets[0], secrets[1]);
    if rng.random_bool(0.5) {
        let _ = writeln!(w, "stop_grace_period = \"{}\"", duration(rng, 30, 600));
    }
    if rng.random_bool(0.6) {
        let cpus = rng.random_range(1..=16);
        let mem = rng.random_range(2..=64);
        let _ = write!(w, "resources = {{ cpus = {cpus}, memory = \"{mem}g\"");
        if rng.random_bool(0.5) {
            let _ = write!(w, ", reserve_cpus = {}, reserve_memory = \"{}m\"", f64::from(cpus) / 2.0, mem * 512);
        }
        let _ = writeln!(w, " }}");
    }
    if rng.random_bool(0.4) {
        let _ = writeln!(
            w,
            "healthcheck = {{ interval = \"{}\", timeout = \"{}\", retries = {}, start_period = \"{}\" }}",
            duration(rng, 1, 30),
            duration(rng, 1, 10),
            rng.random_range(1..10),
            duration(rng, 0, 900)
        );
    }
    if rng.random_bool(0.4) {
        let _ = writeln!(
            w,
            "restart = {{ delay = \"{}\", max_attempts = {}, window = \"{}\" }}",
            duration(rng, 0, 30),
            rng.random_range(1..20),
            duration(rng, 1, 600)
        );
    }
    if rng.random_bool(0.4) {
        let action = ["rollback", "pause"].choose(rng).expect("non-empty");
        let _ = writeln!(
            w,
            "update = {{ delay = \"{}\", monitor = \"{}\", failure_action = \"{action}\" }}",
            duration(rng, 0, 60),
            duration(rng, 1, 300)
        );
    }
    let _ = writeln!(w, "[postgres.replication]");
    if rng.random_bool(0.5) {
        let _ = writeln!(w, "user = \"repl_{n}\"");
    }
    let _ = writeln!(w, "password = {{ secret = \"{}\" }}", secrets[2]);
    let _ = writeln!(w, "[postgres.primary]\nconstraints = {}", list(&[constraint(rng, 0)]));
    if rng.random_bool(0.3) {
        let _ = writeln!(w, "volume = \"primary-{n}\"");
    }
    for i in 1..=rng.random_range(1..=5) {
        let count = rng.random_range(1..=2);
        let cs: Vec<String> = (0..count).map(|_| constraint(rng, i)).collect();
        let _ = writeln!(w, "[[postgres.replicas]]\nconstraints = {}", list(&cs));
        if rng.random_bool(0.3) {
            let _ = writeln!(w, "volume = \"replica-{n}-{i}\"");
        }
    }
    let _ = writeln!(w, "[haproxy]\nimage = \"haproxy:2.8\"");
    let _ = writeln!(w, "check = \"{}\"", ["tcp", "pgsql"].choose(rng).expect("non-empty"));
    if rng.random_bool(0.3) {
        let _ = writeln!(w, "check_user = \"probe_{n}\"");
    }
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < 3 {
        let p = rng.random_range(1024..=65535);
        if p != 8404 && !ports.contains(&p) {
            ports.push(p);
        }
    }
    let _ = writeln!(w, "write_port = {}\nread_port = {}", ports[0], ports[1]);
    if rng.random_bool(0.3) {
        let _ = writeln!(w, "constraints = [\"node.labels.edge == true\"]");
    }
    if rng.random_bool(0.3) {
        let _ = writeln!(w, "maxconn = {}", rng.random_range(100..50_000));
    }
    if rng.random_bool(0.4) {
        let _ = writeln!(
            w,
            "timeouts = {{ connect = \"{}\", client = \"{}\", server = \"{}\", check = \"{}\" }}",
            duration(rng, 1, 10),
            duration(rng, 60, 7200),
            duration(rng, 60, 7200),
            duration(rng, 1, 10)
        );
    }
    if rng.random_bool(0.4) {
        let _ = writeln!(
            w,
            "checks = {{ interval = \"{}\", fall = {}, rise = {} }}",
            duration(rng, 1, 10),
            rng.random_range(1..6),
            rng.random_range(1..6)
        );
    }
    if rng.random_bool(0.4) {
        let _ = writeln!(w, "resources = {{ cpus = 0.5, memory = \"{}m\" }}", rng.random_range(32..1024));
    }
    if rng.random_bool(0.7) {
        let _ = writeln!(w, "[haproxy.stats]\nport = {}\nusers = {{ secret = \"{}\" }}", ports[2], secrets[3]);
        if rng.random_bool(0.5) {
            let _ = writeln!(w, "path = \"/haproxy-{n}\"");
        }
        if rng.random_bool(0.5) {
            let _ = writeln!(w, "allow_from = [\"10.{}.0.0/16\", \"192.168.{}.0/24\", \"fd00::/8\"]", n % 256, n % 256);
        }
    }
    s
}

#[test]
fn generated_specs_compile_to_files_real_tools_accept() {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let root = tempfile::tempdir().expect("temp dir");
    fs::write(root.path().join("hacompile.lock"), LOCK).expect("writable");
    // What the generator produced, so a regression in it cannot pass quietly.
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..SPECS {
        let spec_text = spec(&mut rng, n);
        let spec_path = root.path().join(format!("spec{n}.toml"));
        fs::write(&spec_path, &spec_text).expect("writable");
        let out = root.path().join(format!("out{n}"));
        let run = bin()
            .current_dir(root.path())
            .args(["build", &format!("spec{n}.toml"), "-o"])
            .arg(&out)
            .output()
            .expect("runs");
        assert!(run.status.success(), "spec {n} did not compile:\n{spec_text}\n{}", text(&run.stderr));
        if spec_text.contains("file = \"./secrets/") {
            // A non-external secret's file must exist for the docker CLI.
            fs::create_dir_all(out.join("secrets")).expect("writable");
            for line in spec_text.lines().filter_map(|l| l.strip_prefix("file = \"./secrets/")) {
                fs::write(out.join("secrets").join(line.trim_end_matches('"')), "x").expect("writable");
            }
        }
        let merged = docker_stack_config(&out)
            .unwrap_or_else(|e| panic!("spec {n}: docker stack config rejected:\n{spec_text}\n{e}"));
        assert!(!merged.contains("latest"), "spec {n}: no floating tag");
        haproxy_check(&out).unwrap_or_else(|e| panic!("spec {n}: haproxy -c rejected:\n{spec_text}\n{e}"));
        referenced_files_exist(&out).unwrap_or_else(|e| panic!("spec {n}: {e}"));
        for (feature, present) in [
            ("bitnami", merged.contains("POSTGRESQL_REPLICATION_MODE")),
            ("official", merged.contains("POSTGRES_PASSWORD_FILE")),
            ("stats", merged.contains("published: ") && spec_text.contains("[haproxy.stats]")),
            ("no-stats", !spec_text.contains("[haproxy.stats]")),
            ("unencrypted", spec_text.contains("encrypted = false")),
            ("five-replicas", merged.contains("pg-replica-5:")),
            ("tcp-check", spec_text.contains("check = \"tcp\"")),
            ("pgsql-check", spec_text.contains("check = \"pgsql\"")),
        ] {
            if present {
                seen.insert(feature);
            }
        }
    }
    assert_eq!(seen.len(), 8, "the generator covers every variant: {seen:?}");
}
