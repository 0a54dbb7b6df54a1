//! Bad input: each case asserts the message, the location, the help and
//! exit code 2, and that no secret value is ever printed.

mod support;

use std::fs;
use std::path::Path;

use support::*;

const EXAMPLE: &str = include_str!("../examples/ha-postgres.toml");
const LOCK: &str = include_str!("../examples/hacompile.lock");

fn build_in(dir: &Path, spec: &[u8]) -> Run {
    fs::write(dir.join("spec.toml"), spec).expect("writable");
    let out = bin().current_dir(dir).args(["build", "spec.toml", "--stack-only"]).output().expect("runs");
    Run::of(&out)
}

fn build(spec: &str) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("hacompile.lock"), LOCK).expect("writable");
    build_in(dir.path(), spec.as_bytes())
}

/// Replaces one exact piece of the example, failing if it is not there.
fn example_with(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "the example contains {from:?}");
    EXAMPLE.replacen(from, to, 1)
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let spec = example_with("database = \"app\"", "databse = \"app\"");
    let run = build(&spec);
    assert_error(
        &run,
        "spec::unknown-key",
        "unknown key `databse`",
        &locate(&spec, "databse"),
        "did you mean `database`?",
    );
}

#[test]
fn type_error_points_at_the_value() {
    let spec = example_with("write_port = 5000", "write_port = \"5000\"");
    let run = build(&spec);
    assert_error(&run, "spec::type", "expected u16", &locate(&spec, "\"5000\""), "hacompile schema");
}

#[test]
fn literal_password_is_refused_and_never_printed() {
    let secret = "Sup3r-s3cret-hunter2";
    let spec = example_with("password = { secret = \"postgres_password\" }", &format!("password = \"{secret}\""));
    let run = build(&spec);
    assert_error(
        &run,
        "spec::literal-credential",
        "a literal credential is not allowed",
        &locate_in(&spec, &format!("\"{secret}\""), "\""),
        "docker secret create",
    );
    assert!(
        !run.stderr.contains(secret) && !run.stdout.contains(secret),
        "the password is never printed:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains(&"*".repeat(secret.len())), "shown masked:\n{}", run.stderr);

    // Anywhere, under any credential-shaped key, even an unknown one.
    let spec = example_with("[haproxy]\n", &format!("[haproxy]\nadmin_password = \"{secret}\"\n"));
    let run = build(&spec);
    assert_error(&run, "spec::literal-credential", "haproxy.admin_password", "spec.toml:", "secret");
    assert!(!run.stderr.contains(secret));

    // And in a syntax error on a credential line.
    let spec = example_with("[haproxy]\n", &format!("[haproxy]\npassword = \"{secret}\n"));
    let run = build(&spec);
    assert_error(&run, "spec::syntax", "invalid TOML", "spec.toml:", "toml.io");
    assert!(!run.stderr.contains(secret), "{}", run.stderr);
}

#[test]
fn undeclared_secret_is_named_with_a_suggestion() {
    let spec =
        example_with("password = { secret = \"postgres_password\" }", "password = { secret = \"postgres_pasword\" }");
    let run = build(&spec);
    assert_error(
        &run,
        "spec::undeclared-secret",
        "the secret `postgres_pasword` is not declared",
        &locate(&spec, "\"postgres_pasword\""),
        "did you mean `postgres_password`?",
    );
}

#[test]
fn invalid_image_references() {
    let cases = [
        ("\"Postgres:16\"", "uppercase"),
        ("\"postgres:16@sha256:abc123\"", "exactly 64 hex digits"),
        ("\"\"", "the image reference is empty"),
        ("\"postgres\"", "has no tag"),
        ("\":16\"", "no repository name"),
    ];
    for (image, message) in cases {
        let spec = example_with("image = \"postgres:16\"", &format!("image = {image}"));
        let run = build(&spec);
        assert_error(
            &run,
            "spec::image",
            message,
            &locate_in(&spec, &format!("image = {image}"), image),
            "postgres:16",
        );
    }
}

#[test]
fn replicas_sharing_a_volume_are_refused() {
    let spec = example_with(
        "[[postgres.replicas]]\nconstraints = [\"node.labels.pg.role == replica\"]\n",
        "[[postgres.replicas]]\nconstraints = [\"node.labels.pg.role == replica\"]\nvolume = \"pgdata\"\n\n[[postgres.replicas]]\nconstraints = [\"node.labels.pg.role == replica2\"]\nvolume = \"pgdata\"\n",
    );
    let run = build(&spec);
    let second = spec.rfind("volume = \"pgdata\"").expect("two volumes") + "volume = ".len();
    let line = spec[..second].matches('\n').count() + 1;
    assert_error(
        &run,
        "spec::shared-volume",
        "`pg-replica-2` and `pg-replica-1` would share the volume `pgdata`",
        &format!("spec.toml:{line}:10"),
        "two PostgreSQL servers on one data directory",
    );
    assert!(run.stderr.contains("first use"));
}

#[test]
fn colliding_ports_are_refused() {
    let spec = example_with("read_port = 5001", "read_port = 5000");
    let run = build(&spec);
    assert_error(
        &run,
        "spec::port-collision",
        "port 5000 is used twice (also by `write_port`)",
        &locate_in(&spec, "read_port = 5000", "5000"),
        "own port",
    );
    let spec = example_with("port = 8080", "port = 8404");
    let run = build(&spec);
    assert_error(
        &run,
        "spec::port-collision",
        "port 8404 is used twice (also by `the proxy's healthcheck port`)",
        &locate_in(&spec, "port = 8404", "8404"),
        "own port",
    );
}

#[test]
fn missing_lock_entry_says_how_to_get_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lock = LOCK
        .replace("reference = \"haproxy:2.8\"", "reference = \"haproxy:2.9\"")
        .replace("tag = \"2.8\"", "tag = \"2.9\"");
    fs::write(dir.path().join("hacompile.lock"), lock).expect("writable");
    let run = build_in(dir.path(), EXAMPLE.as_bytes());
    assert_error(
        &run,
        "build::not-locked",
        "the image `haproxy:2.8` has no digest in hacompile.lock",
        &locate(EXAMPLE, "\"haproxy:2.8\""),
        "hacompile lock spec.toml",
    );

    // No lock file at all: both images are reported.
    let empty = tempfile::tempdir().expect("temp dir");
    let run = build_in(empty.path(), EXAMPLE.as_bytes());
    assert_error(&run, "build::not-locked", "`postgres:16`", "`haproxy:2.8`", "hacompile lock");
}

#[test]
fn a_broken_lock_file_is_an_input_error_with_a_location() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("hacompile.lock"), LOCK.replace("version = 1", "version = \"one\"")).expect("writable");
    let run = build_in(dir.path(), EXAMPLE.as_bytes());
    assert_error(&run, "lock::invalid", "the lock file is not valid", "hacompile.lock:5:11", "regenerate");
}

#[test]
fn a_spec_that_is_not_utf8_is_refused_with_its_place() {
    let mut bytes = EXAMPLE.as_bytes().to_vec();
    let at = EXAMPLE.find("app").expect("in example");
    bytes[at] = 0xff;
    let dir = tempfile::tempdir().expect("temp dir");
    let run = build_in(dir.path(), &bytes);
    let line = EXAMPLE[..at].matches('\n').count() + 1;
    assert_error(
        &run,
        "spec::not-utf8",
        &format!("invalid byte at line {line}, column 13"),
        &format!("spec.toml:{line}:13"),
        "save the file as UTF-8",
    );
}

#[test]
fn a_50mb_spec_is_refused_quickly_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut big = EXAMPLE.as_bytes().to_vec();
    big.resize(50 * 1024 * 1024, b'#');
    fs::write(dir.path().join("spec.toml"), &big).expect("writable");
    // Under a 64 MiB address-space cap the build could not even hold the
    // file: it must refuse it having read only its first MiB.
    let out = std::process::Command::new("bash")
        .current_dir(dir.path())
        .args(["-c", "ulimit -v 65536 && exec \"$0\" build spec.toml --stack-only", env!("CARGO_BIN_EXE_hacompile")])
        .env("NO_COLOR", "1")
        .output()
        .expect("runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("spec::too-large") && stderr.contains("larger than 1 MiB"), "{stderr}");
}

#[test]
fn deep_nesting_is_refused_without_a_crash() {
    let spec = format!("{EXAMPLE}\nx = {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let run = build(&spec);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("spec::syntax") || run.stderr.contains("spec::unknown-key"), "{}", run.stderr);
}

#[test]
fn an_invalid_spec_leaves_existing_output_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("hacompile.lock"), LOCK).expect("writable");
    fs::write(dir.path().join("spec.toml"), EXAMPLE).expect("writable");
    let ok = bin().current_dir(dir.path()).args(["build", "spec.toml", "-o", "deploy"]).output().expect("runs");
    assert!(ok.status.success());
    let before: Vec<(String, Vec<u8>)> =
        ["docker-stack.yml", "haproxy.cfg", "pg-primary-init.sh", "pg-replica-entrypoint.sh"]
            .iter()
            .map(|f| (f.to_string(), fs::read(dir.path().join("deploy").join(f)).expect("written")))
            .collect();

    fs::write(dir.path().join("spec.toml"), example_with("read_port = 5001", "read_port = 5000")).expect("writable");
    let bad = bin().current_dir(dir.path()).args(["build", "spec.toml", "-o", "deploy"]).output().expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    for (f, bytes) in before {
        assert_eq!(fs::read(dir.path().join("deploy").join(&f)).expect("still there"), bytes, "{f} changed");
    }
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("deploy"))
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".hacompile-"))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left behind");
}

#[test]
fn every_problem_is_reported_at_once() {
    let spec = example_with("read_port = 5001", "read_port = 5000")
        .replace("\"node.labels.pg.role == primary\"", "\"node.labels.pg.role = primary\"");
    let run = build(&spec);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("spec::port-collision") && run.stderr.contains("spec::placement"), "{}", run.stderr);
}

#[test]
fn a_digest_in_the_spec_that_disagrees_with_the_lock_is_refused() {
    let other = "sha256:bbec126b29d3dbc06437d2ea6694119467ea5c85ed6e487d28bb81a5a7e31805";
    let lock = LOCK.replace("reference = \"postgres:16\"", &format!("reference = \"postgres:16@{other}\""));
    let spec = example_with("image = \"postgres:16\"", &format!("image = \"postgres:16@{other}\""));
    // The lock pins that exact reference to the postgres digest; the spec names another.
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("hacompile.lock"), lock).expect("writable");
    let run = build_in(dir.path(), spec.as_bytes());
    assert_error(
        &run,
        "build::lock-mismatch",
        "differs from hacompile.lock",
        &locate_in(&spec, "image = \"postgres:16@", "\"postgres"),
        "hacompile lock --update",
    );
}

#[test]
fn names_swarm_would_reject_are_refused() {
    let spec = example_with("stack = \"ha_db\"", "stack = \"ha db!\"")
        .replace("[secrets.haproxy_stats_users]", "[secrets.\"-stats\"]")
        .replace("secret = \"haproxy_stats_users\"", "secret = \"-stats\"");
    let run = build(&spec);
    assert_error(
        &run,
        "spec::name",
        "`ha db!` is not a valid stack name",
        &locate_in(&spec, "stack = \"ha db!\"", "\"ha db!\""),
        "start with a letter or digit",
    );
    assert!(run.stderr.contains("`-stats` is not a valid secret name"), "{}", run.stderr);
}

/// Each value here once built with exit 0 into a file `haproxy -c` or the
/// docker CLI refuses (or, for `$`, silently changes). Each is now refused at
/// its place with a reason, exit 2, and nothing is written.
#[test]
fn values_haproxy_or_docker_would_refuse_are_refused_at_their_place() {
    // (replace, with, the text located, code, message, help)
    let cases: &[(&str, &str, &str, &str, &str, &str)] = &[
        (
            "path = \"/stats\"",
            "path = \"/st\\\"ats\"",
            "\"/st\\\"ats\"",
            "spec::stats",
            "not one plain HAProxy word",
            "start with `/`",
        ),
        (
            "path = \"/stats\"",
            "path = \"/st\\u0000ats\"",
            "\"/st\\u0000ats\"",
            "spec::stats",
            "not one plain HAProxy word",
            "letters, digits",
        ),
        (
            "path = \"/stats\"",
            "path = \"/$HOME\"",
            "\"/$HOME\"",
            "spec::stats",
            "not one plain HAProxy word",
            "e.g. `/stats`",
        ),
        (
            "path = \"/stats\"",
            "path = \"/a#b\"",
            "\"/a#b\"",
            "spec::stats",
            "not one plain HAProxy word",
            "e.g. `/stats`",
        ),
        (
            "path = \"/stats\"",
            "path = \"/a\\\\b\"",
            "\"/a\\\\b\"",
            "spec::stats",
            "not one plain HAProxy word",
            "e.g. `/stats`",
        ),
        (
            "check = \"pgsql\"",
            "check = \"pgsql\"\ntimeouts = { client = \"596h31m23s648ms\" }",
            "\"596h31m23s648ms\"",
            "spec::duration",
            "`haproxy.timeouts.client` is too long",
            "at most 596h31m23s647ms: HAProxy",
        ),
        (
            "check = \"pgsql\"",
            "check = \"pgsql\"\nchecks = { interval = \"2147483648ms\" }",
            "\"2147483648ms\"",
            "spec::duration",
            "`haproxy.checks.interval` is too long",
            "2147483647 ms",
        ),
        (
            "stop_grace_period = \"120s\"",
            "stop_grace_period = \"2562048h\"",
            "\"2562048h\"",
            "spec::duration",
            "`postgres.stop_grace_period` is too long",
            "at most 2562047h47m16s854ms: docker",
        ),
        (
            "stop_grace_period = \"120s\"",
            "stop_grace_period = \"120s\"\nhealthcheck = { start_period = \"2562047h47m16855ms\" }",
            "\"2562047h47m16855ms\"",
            "spec::duration",
            "`postgres.healthcheck.start_period` is too long",
            "int64 nanoseconds",
        ),
        ("memory = \"2g\"", "memory = \".5g\"", "\".5g\"", "spec::resources", "`.5g` is not a size", "e.g. `512m`"),
        (
            "memory = \"2g\"",
            "memory = \"5m\"",
            "\"5m\"",
            "spec::resources",
            "less than docker's minimum of 6 MiB",
            "below `6m`",
        ),
        ("cpus = 2,", "cpus = 0.0000000001,", "0.0000000001", "spec::resources", "at most 9 decimals", "cpus = 2"),
        (
            "\"node.labels.pg.role == primary\"",
            "\"node.labels.pg.role == $HOME\"",
            "\"node.labels.pg.role == $HOME\"",
            "spec::placement",
            "`$` in a constraint",
            "node.labels.pg.role == primary",
        ),
        (
            "\"node.labels.pg.role == primary\"",
            "\"node.labels.pg.role == a\\u2028b\"",
            "\"node.labels.pg.role == a\\u2028b\"",
            "spec::placement",
            "letters, digits, spaces",
            "node.labels.pg.role == primary",
        ),
        (
            "[secrets.postgres_user]",
            "[secrets.postgres_user]\nexternal = false\nfile = \"./${HOME}/pw\"",
            "\"./${HOME}/pw\"",
            "spec::secret",
            "read by docker as a variable",
            "./secrets/pg_password",
        ),
        (
            "stack = \"ha_db\"",
            "stack = \"ha.db\"",
            "\"ha.db\"",
            "spec::name",
            "`ha.db` is not a valid stack name",
            "DNS labels",
        ),
        (
            "stack = \"ha_db\"",
            "stack = \"a_stack_name_of_thirty_chars_\"",
            "\"a_stack_name_of_thirty_chars_\"",
            "spec::name",
            "not a valid stack name",
            "end with one",
        ),
        (
            "stack = \"ha_db\"",
            "stack = \"a_stack_name_of_thirty_chars00\"",
            "\"a_stack_name_of_thirty_chars00\"",
            "spec::name",
            "longer than 29 characters",
            "at most 64 characters",
        ),
        (
            "check = \"pgsql\"",
            "check = \"pgsql\"\nchecks = { fall = 2147483648 }",
            "2147483648",
            "spec::checks",
            "`haproxy.checks.fall` must be from 1 to 2147483647",
            "fall 3",
        ),
        (
            "check = \"pgsql\"",
            "check = \"pgsql\"\nmaxconn = 4294967295",
            "4294967295",
            "spec::haproxy",
            "from 1 to 500000",
            "file descriptors",
        ),
        (
            "stop_grace_period = \"120s\"",
            "stop_grace_period = \"120s\"\nwal_keep_size = \"2097152g\"",
            "\"2097152g\"",
            "spec::size",
            "larger than PostgreSQL accepts",
            "2147483647 MB",
        ),
        (
            "[haproxy.stats]",
            "[haproxy.stats]\nallow_from = [\"10.0.0.0/+8\"]",
            "\"10.0.0.0/+8\"",
            "spec::stats",
            "not a CIDR",
            "10.0.0.0/8",
        ),
    ];
    for (from, to, at, code, message, help) in cases {
        let spec = example_with(from, to);
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("hacompile.lock"), LOCK).expect("writable");
        fs::write(dir.path().join("spec.toml"), &spec).expect("writable");
        let out = bin().current_dir(dir.path()).args(["build", "spec.toml", "-o", "deploy"]).output().expect("runs");
        let run = Run { code: out.status.code().unwrap_or(-1), stdout: text(&out.stdout), stderr: text(&out.stderr) };
        assert_eq!(run.code, 2, "{to} is refused:\n{}", run.stderr);
        assert_error(&run, code, message, &locate(&spec, at), help);
        assert!(!dir.path().join("deploy").exists(), "{to}: nothing written");
    }
}

#[test]
fn issue_10_settings_are_checked_at_their_place() {
    for (from, to, code, message, help) in [
        ("image = \"postgres:16\"", "image = \"postgres:16-alpine\"", "spec::image", "Alpine variant", "UID 70"),
        ("image = \"haproxy:2.8\"", "image = \"haproxy:2.8-alpine\"", "spec::image", "Alpine variant", "no bash"),
        (
            "stop_grace_period = \"120s\"",
            "stop_grace_period = \"120s\"\nrestart = { max_attempts = 5 }",
            "spec::restart",
            "abandon the task for good",
            "never give up",
        ),
        (
            "stop_grace_period = \"120s\"",
            "stop_grace_period = \"120s\"\nmax_connections = 6",
            "spec::connections",
            "leaves no connection",
            "at least",
        ),
        (
            "[postgres.replication]",
            "[postgres.parameters]\nwrok_mem = \"64MB\"\n\n[postgres.replication]",
            "spec::parameter",
            "not a PostgreSQL setting",
            "did you mean `work_mem`?",
        ),
        (
            "[postgres.replication]",
            "[postgres.parameters]\nwork_mem = \"64 parsecs\"\n\n[postgres.replication]",
            "spec::parameter",
            "`work_mem`",
            "PostgreSQL documentation",
        ),
        (
            "[postgres.replication]",
            "[postgres.parameters]\nport = 5433\n\n[postgres.replication]",
            "spec::parameter",
            "set by hacompile",
            "fixed",
        ),
        ("write_port = 5000", "write_port = 80", "spec::port", "below 1024", "unprivileged"),
        (
            "stop_grace_period = \"120s\"",
            "stop_grace_period = \"120s\"\nbasebackup_max_rate = \"10 MB/s\"",
            "spec::size",
            "not a rate pg_basebackup takes",
            "from 32k to 1024M",
        ),
    ] {
        let spec = example_with(from, to);
        let run = build(&spec);
        assert_eq!(run.code, 2, "{to}: exit 2\n{}", run.stderr);
        for part in [code, message, help] {
            assert!(run.stderr.contains(part), "{to}: stderr should contain {part:?}:\n{}", run.stderr);
        }
        assert!(run.stdout.is_empty());
    }
}

/// A replica's healthcheck waits up to 3 s for the primary: a shorter
/// timeout made every replica unhealthy exactly when the primary's node was
/// lost (found on the three-node swarm).
#[test]
fn a_healthcheck_timeout_shorter_than_the_replica_check_is_refused() {
    let spec = example_with("[postgres.replication]", "healthcheck = { timeout = \"3s\" }\n\n[postgres.replication]");
    let run = build(&spec);
    assert_error(
        &run,
        "spec::healthcheck",
        "`postgres.healthcheck.timeout` is shorter than 5s",
        &locate(&spec, "\"3s\""),
        "waits up to 3 s for the primary",
    );
}
