//! 200 varied valid specs from a fixed seed: every one compiles to a stack
//! the docker CLI accepts and a haproxy.cfg HAProxy accepts. Then every field
//! that reaches an output at and past the edges of what the real tools take:
//! whenever build exits 0, `docker stack config` and `haproxy -c` accept the
//! output and read it as written; otherwise build exits 2 and writes nothing.

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
            // A replica's check waits up to 3 s for the primary: at least 5s.
            duration(rng, 5, 10),
            rng.random_range(1..10),
            duration(rng, 0, 900)
        );
    }
    if rng.random_bool(0.4) {
        let _ = writeln!(
            w,
            "restart = {{ delay = \"{}\", max_attempts = 0, window = \"{}\" }}",
            duration(rng, 1, 30),
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

/// A TOML basic string; everything outside printable ASCII as `\uXXXX`.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Every field that reaches an output file, with values at and just past
/// the edges of what HAProxy, docker and swarm accept, and values that mean
/// something else to them (`$`, quotes, `#`, line separators).
fn edge_values() -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| toml_str(x)).collect::<Vec<_>>();
    let raw = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let timer = s(&["100ms", "99ms", "2147483647ms", "2147483648ms", "596h31m23s647ms", "596h31m23s648ms", "24h"]);
    let duration =
        s(&["0s", "1s", "2562047h47m16854ms", "2562047h47m16855ms", "2562048h", "9223372036854ms", "9223372036855ms"]);
    let size = s(&["6m", "5m", "6291456", "6291455", ".5g", "5.g", "1.5g", "1e3m", "0", "2097151g", "1.0000001k"]);
    // HAProxy reads at most 64 words on a line.
    let many_networks =
        |n: usize| (0..n).map(|i| toml_str(&format!("10.{}.{}.0/24", i / 256, i % 256))).collect::<Vec<_>>().join(", ");
    let long_path = format!("/{}", "x".repeat(255));
    let longer_path = format!("/{}", "x".repeat(256));
    vec![
        ("stack", s(&["a", "a.b", "a_", "-a", &"x".repeat(29), &"x".repeat(30), "a-b_c"])),
        ("timeouts.connect", timer.clone()),
        ("timeouts.client", timer.clone()),
        ("timeouts.server", timer.clone()),
        ("timeouts.check", timer.clone()),
        ("checks.interval", timer),
        ("stop_grace_period", s(&["30s", "29s999ms", "2562047h47m16854ms", "2562047h47m16855ms", "2562048h"])),
        ("healthcheck.interval", duration.clone()),
        ("healthcheck.timeout", duration.clone()),
        ("healthcheck.start_period", duration.clone()),
        ("restart.delay", duration.clone()),
        ("restart.window", duration.clone()),
        ("update.delay", duration.clone()),
        ("update.monitor", duration),
        ("memory", size.clone()),
        ("reserve_memory", size.clone()),
        ("max_size", size.clone()),
        ("wal_keep_size", s(&["1m", "1", "2097151g", "2097152g", "1.5g"])),
        ("cpus", raw(&["0.01", "0.009", "1024", "1024.5", "0.123456789", "0.1234567891", "1e-10"])),
        ("write_port", raw(&["1", "65535", "8404", "0", "5432"])),
        ("stats.port", raw(&["1", "65535", "8404", "0"])),
        ("fall", raw(&["1", "2147483647", "2147483648", "0", "4294967295"])),
        ("rise", raw(&["1", "2147483647", "2147483648", "0"])),
        ("maxconn", raw(&["1", "500000", "500001", "4294967295"])),
        ("retries", raw(&["0", "1", "4294967295"])),
        ("max_attempts", raw(&["0", "1", "4294967295"])),
        ("max_file", raw(&["0", "1", "4294967295"])),
        (
            "stats.path",
            s(&[
                "/",
                "/a?b=c&d",
                "/(x)*+,:@!~",
                "/$HOME",
                "/${HOME}",
                "/a\"b",
                "/a'b",
                "/a\\b",
                "/a#b",
                "/a b",
                "/a\tb",
                "/\u{0}",
                "/ü",
                "stats",
                &long_path,
                &longer_path,
                "/a;b",
                "/a%20b",
                "/a\u{2028}b",
            ]),
        ),
        (
            "allow_from",
            s(&[
                "0.0.0.0/0",
                "::/0",
                "10.0.0.1/8",
                "10.0.0.0/+8",
                "10.0.0.0/33",
                "::ffff:1.2.3.4/128",
                "1.2.3.4",
                "fe80::/10",
            ])
            .into_iter()
            .chain([many_networks(61), many_networks(62), many_networks(500)])
            .collect(),
        ),
        (
            "constraint",
            s(&[
                "node.labels.a == b c",
                "node.labels.a == $HOME",
                "node.labels.a == ${X}",
                "node.labels.a == x\u{2028}y",
                "node.hostname != a/b",
                "node.labels.a-b.c == [x]",
                "node.labels.a == ü",
                "node.role == manager",
                "node.labels.a == 'x'",
                "node.labels.a == x#y",
            ]),
        ),
        ("secret_file", s(&["./s/pw", "./s/$X", "./s/a b", "./s/ü", "./s/a\u{2028}b", "/abs/pw"])),
    ]
}

/// The spec with `values` (field -> TOML literal) in place of the defaults.
fn edge_spec(values: &std::collections::BTreeMap<&str, String>) -> String {
    let v = |k: &str, default: &str| values.get(k).cloned().unwrap_or_else(|| default.to_owned());
    let secret_file = values.get("secret_file").map_or_else(String::new, |f| format!("external = false\nfile = {f}\n"));
    format!(
        r#"stack = {stack}
[logging]
max_size = {max_size}
max_file = {max_file}
[secrets.pg_user]
[secrets.pg_password]
[secrets.pg_repl]
[secrets.stats_users]
{secret_file}
[postgres]
image = "postgres:16"
database = "app"
user = {{ secret = "pg_user" }}
password = {{ secret = "pg_password" }}
stop_grace_period = {grace}
wal_keep_size = {wal}
resources = {{ cpus = {cpus}, memory = {memory}, reserve_memory = {reserve_memory} }}
healthcheck = {{ interval = {h_interval}, timeout = {h_timeout}, retries = {retries}, start_period = {h_start} }}
restart = {{ delay = {r_delay}, max_attempts = {max_attempts}, window = {r_window} }}
update = {{ delay = {u_delay}, monitor = {u_monitor} }}
[postgres.replication]
password = {{ secret = "pg_repl" }}
[postgres.primary]
constraints = [{constraint}]
[[postgres.replicas]]
constraints = ["node.labels.pg.role == replica"]
[haproxy]
image = "haproxy:2.8"
write_port = {write_port}
read_port = 5001
maxconn = {maxconn}
timeouts = {{ connect = {t_connect}, client = {t_client}, server = {t_server}, check = {t_check} }}
checks = {{ interval = {c_interval}, fall = {fall}, rise = {rise} }}
[haproxy.stats]
port = {stats_port}
path = {stats_path}
users = {{ secret = "stats_users" }}
allow_from = [{allow_from}]
"#,
        stack = v("stack", "\"edge\""),
        max_size = v("max_size", "\"10m\""),
        max_file = v("max_file", "5"),
        grace = v("stop_grace_period", "\"120s\""),
        wal = v("wal_keep_size", "\"1g\""),
        cpus = v("cpus", "2"),
        memory = v("memory", "\"2g\""),
        reserve_memory = v("reserve_memory", "\"1g\""),
        h_interval = v("healthcheck.interval", "\"10s\""),
        h_timeout = v("healthcheck.timeout", "\"5s\""),
        retries = v("retries", "5"),
        h_start = v("healthcheck.start_period", "\"300s\""),
        r_delay = v("restart.delay", "\"10s\""),
        max_attempts = v("max_attempts", "0"),
        r_window = v("restart.window", "\"120s\""),
        u_delay = v("update.delay", "\"10s\""),
        u_monitor = v("update.monitor", "\"60s\""),
        constraint = v("constraint", "\"node.labels.pg.role == primary\""),
        write_port = v("write_port", "5000"),
        maxconn = v("maxconn", "2000"),
        t_connect = v("timeouts.connect", "\"5s\""),
        t_client = v("timeouts.client", "\"30m\""),
        t_server = v("timeouts.server", "\"30m\""),
        t_check = v("timeouts.check", "\"5s\""),
        c_interval = v("checks.interval", "\"3s\""),
        fall = v("fall", "3"),
        rise = v("rise", "2"),
        stats_port = v("stats.port", "8080"),
        stats_path = v("stats.path", "\"/stats\""),
        allow_from = v("allow_from", "\"10.0.0.0/8\""),
    )
}

/// Builds `spec_text` in `dir`; when hacompile accepts it, the real tools
/// must accept what it wrote and read it as written. Returns whether it built.
fn build_and_check(dir: &std::path::Path, n: usize, spec_text: &str) -> bool {
    let spec_path = dir.join(format!("edge{n}.toml"));
    fs::write(&spec_path, spec_text).expect("writable");
    let out = dir.join(format!("edge-out{n}"));
    let run = bin().current_dir(dir).args(["build", &format!("edge{n}.toml"), "-o"]).arg(&out).output().expect("runs");
    let stderr = text(&run.stderr);
    match run.status.code() {
        Some(2) => {
            assert!(stderr.contains("spec::"), "edge {n}: a refusal names its rule:\n{spec_text}\n{stderr}");
            assert!(!out.exists(), "edge {n}: a refused spec writes nothing");
            return false;
        }
        Some(0) => {}
        other => panic!("edge {n}: exit {other:?}:\n{spec_text}\n{stderr}"),
    }
    let stack: hacompile_stack::StackFile =
        serde_yaml_ng::from_str(&fs::read_to_string(out.join("docker-stack.yml")).expect("written")).expect("parses");
    if let Some(file) = stack.secrets.values().find_map(|s| s.file.clone()) {
        // A non-external secret's file must exist for the docker CLI.
        let path = out.join(&file);
        fs::create_dir_all(path.parent().expect("a file has a parent")).expect("writable");
        fs::write(&path, "x").expect("writable");
    }
    let merged = docker_stack_config(&out)
        .unwrap_or_else(|e| panic!("edge {n}: docker stack config rejected:\n{spec_text}\n{e}"));
    haproxy_check(&out).unwrap_or_else(|e| panic!("edge {n}: haproxy -c rejected:\n{spec_text}\n{e}"));
    // Docker substitutes `$` variables silently: what it read must be what we wrote.
    let seen: serde_yaml_ng::Value = serde_yaml_ng::from_str(&merged).expect("docker prints YAML");
    for (name, service) in &stack.services {
        let ours = service.deploy.as_ref().and_then(|d| d.placement.as_ref()).map(|p| p.constraints.clone());
        let theirs: Option<Vec<String>> =
            serde_yaml_ng::from_value(seen["services"][name.as_str()]["deploy"]["placement"]["constraints"].clone())
                .ok();
        assert_eq!(
            ours.unwrap_or_default(),
            theirs.unwrap_or_default(),
            "edge {n}: {name}'s constraints as docker read them"
        );
    }
    // HAProxy reads an unquoted word literally only without `$ " ' \ #` and whitespace.
    let cfg = fs::read_to_string(out.join("haproxy.cfg")).expect("written");
    for line in cfg.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(
            !line.contains(['$', '"', '\'', '\\', '#', '\t']) && !line.trim().contains("  "),
            "edge {n}: HAProxy would not read this line as written: {line:?}\n{spec_text}"
        );
    }
    let _ = fs::remove_dir_all(&out);
    true
}

#[test]
fn edge_values_build_only_into_files_real_tools_accept_as_written() {
    let root = tempfile::tempdir().expect("temp dir");
    fs::write(root.path().join("hacompile.lock"), LOCK).expect("writable");
    let fields = edge_values();
    let mut n = 0;
    let (mut built, mut refused) = (0, 0);
    // Every edge value once on its own, so each is tried against the real tools.
    for (field, candidates) in &fields {
        for value in candidates {
            let values = std::collections::BTreeMap::from([(*field, value.clone())]);
            if build_and_check(root.path(), n, &edge_spec(&values)) {
                built += 1
            } else {
                refused += 1
            }
            n += 1;
        }
    }
    // Then random combinations of three.
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 0xed9e);
    for _ in 0..60 {
        let mut values = std::collections::BTreeMap::new();
        for _ in 0..3 {
            let (field, candidates) = fields.choose(&mut rng).expect("non-empty");
            values.insert(*field, candidates.choose(&mut rng).expect("non-empty").clone());
        }
        if build_and_check(root.path(), n, &edge_spec(&values)) {
            built += 1
        } else {
            refused += 1
        }
        n += 1;
    }
    // Both sides of the edges were exercised.
    assert!(built >= 60 && refused >= 60, "built {built}, refused {refused}");
}
