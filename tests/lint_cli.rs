//! `hacompile lint` end to end: inputs, formats, suppressions, config, exit
//! codes, hostile input, and that no secret value is ever printed.

mod support;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const SECRETS: [&str; 4] = ["hunter2-Xq9", "s3cret-Url-Pw", "AKIAJ7QW3ZX5TESTKEY9", "Zp4Lm9Qx2Rv7Tn1Kb8Wc3Hs6"];

fn leaky_stack() -> String {
    format!(
        "version: \"3.8\"\nx-env: &env\n  POSTGRES_PASSWORD: {}\nservices:\n  db:\n    image: postgres:16\n    environment:\n      <<: *env\n      DATABASE_URL: postgres://app:{}@db/app\n      S3_KEY: {}\n      SIGNING: {}\n",
        SECRETS[0], SECRETS[1], SECRETS[2], SECRETS[3]
    )
}

fn lint_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = bin().current_dir(dir).arg("lint").args(args).output().expect("runs");
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn no_format_ever_prints_a_secret_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("docker-stack.yml"), leaky_stack()).expect("writable");
    for format in ["human", "json", "sarif", "github"] {
        let (code, out, err) = lint_in(dir.path(), &["--format", format, "docker-stack.yml"]);
        assert_eq!(code, 1, "{format}");
        for s in SECRETS {
            assert!(!out.contains(s) && !err.contains(s), "{format} printed a secret:\n{out}");
        }
        for c in ["HC101", "HC102", "HC105", "HC106"] {
            assert!(out.contains(c), "{format} reports {c}:\n{out}");
        }
    }
}

#[test]
fn stdin_directories_and_exit_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    fs::create_dir_all(root.join("deploy/prod")).expect("mkdir");
    fs::write(root.join("deploy/prod/docker-stack.prod.yml"), leaky_stack()).expect("w");
    fs::write(root.join("deploy/compose.yaml"), "services:\n  web:\n    image: nginx\n").expect("w");
    fs::write(root.join("deploy/notes.yml"), "not: linted\n").expect("w");
    fs::write(root.join("Cargo.toml"), "[package]\nname = \"x\"\n").expect("w");
    fs::copy(format!("{ROOT}/examples/ha-postgres.toml"), root.join("deploy/cluster.toml")).expect("copy");
    fs::copy(format!("{ROOT}/examples/hacompile.lock"), root.join("deploy/hacompile.lock")).expect("copy");
    let (code, out, _) = lint_in(root, &["--format", "json", "."]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let mut files: Vec<&str> =
        v["findings"].as_array().expect("array").iter().map(|f| f["file"].as_str().expect("file")).collect();
    files.sort_unstable();
    files.dedup();
    assert_eq!(
        files,
        ["./deploy/compose.yaml", "./deploy/prod/docker-stack.prod.yml"],
        "walked the usual names only; the spec is clean"
    );
    assert_eq!(v["summary"]["files"], 3, "two stacks and one spec");
    for key in ["code", "rule", "severity", "file", "line", "column", "end", "message", "help", "suppressed"] {
        assert!(v["findings"][0].get(key).is_some(), "json findings have `{key}`");
    }

    // stdin, told apart by content.
    let (code, _, out) = lint_stdin(&leaky_stack());
    assert_eq!(code, 1);
    assert!(out.contains("\"file\": \"-\""));

    // A clean file exits 0; a missing path is a usage error.
    let clean = root.join("clean");
    fs::create_dir_all(&clean).expect("mkdir");
    let build = bin().args(["build", "examples/ha-postgres.toml", "-o"]).arg(&clean).output().expect("build");
    assert!(build.status.success());
    let (code, out, _) = lint_in(&clean, &["docker-stack.yml"]);
    assert_eq!(code, 0, "hacompile's own output passes its linter:\n{out}");
    let (code, out, _) = lint_in(root, &["no-such-file.yml"]);
    assert_eq!(code, 2);
    assert!(out.contains("does not exist"), "{out}");
}

/// Runs `hacompile lint --format json -` with `input` on stdin: (exit code,
/// the codes found, stdout).
fn lint_stdin(input: &str) -> (i32, Vec<String>, String) {
    let mut child = bin()
        .args(["lint", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("wait");
    let stdout = text(&out.stdout);
    (out.status.code().unwrap_or(-1), codes_of(&stdout), stdout)
}

/// Stdin is told apart by content for every kind a name would tell: a
/// Patroni configuration gives what it gives by its path (a real defect:
/// it was linted as a stack with no services, exit 0).
#[test]
fn every_kind_is_told_by_content_on_stdin() {
    let patroni = "scope: batman\nrestapi:\n  listen: 127.0.0.1:8008\npostgresql:\n  authentication:\n    superuser:\n      username: postgres\n      password: Zz-patroni-Pw-77\n";
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("postgres0.yml"), patroni).expect("w");
    let (code, out, _) = lint_in(dir.path(), &["--format", "json", "postgres0.yml"]);
    assert_eq!(code, 1, "{out}");
    let (code, codes, out) = lint_stdin(patroni);
    assert_eq!((code, codes), (1, vec!["HC109".to_owned()]), "{out}");
    assert!(!out.contains("Zz-patroni-Pw-77"));
    let (code, codes, _) = lint_stdin("listen stats\n    bind :8404\n    stats auth admin:Zz-stats-Pw-77\n");
    assert_eq!(code, 1);
    assert!(codes.contains(&"HC108".to_owned()), "{codes:?}");
}

/// A legacy (version 1) compose file has its services at the top level:
/// neither `docker stack deploy` nor Compose v2 reads it. It was reported
/// clean (its `:latest` image and literal password unseen); it is an input
/// error at the first service, with nothing of it printed but its name.
#[test]
fn a_legacy_compose_file_is_refused_at_its_first_service() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The credentials on the line after the key: in the excerpt.
    let v1 = "# sameersbn/docker-postgresql's shape\nPostgreSQL:\n  environment: {DB_USERS: \"app:Zz-legacy-Pw-77\", SEED: aZ3kP9qL2mX7vB4nR8tYwQ}\n  restart: always\n  image: sameersbn/postgresql:latest\n  ports:\n    - \"5432:5432\"\n";
    fs::write(dir.path().join("docker-compose.yml"), v1).expect("w");
    for target in ["compose", "swarm"] {
        let (code, out, err) = lint_in(dir.path(), &["--target", target, "docker-compose.yml"]);
        assert_eq!(code, 2, "{target}: {out}{err}");
        assert!(out.contains("docker-compose.yml:2:1") && out.contains("HC001"), "{out}");
        assert!(out.contains("legacy compose format") && out.contains("`PostgreSQL`"), "{out}");
        for secret in ["Zz-legacy-Pw-77", "aZ3kP9qL2mX7vB4nR8tYwQ"] {
            assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
        }
        assert!(out.contains("3 │   environment"), "the excerpt shows the line, masked:\n{out}");
    }
    // A file of the specification's own top-level keys is still a stack
    // with no services, whatever its volumes or networks are named.
    for modern in [
        "x-defaults: {image: a:1}\nvolumes: {data: {}}\n",
        "volumes:\n  build: {}\n",
        "networks:\n  image:\n    driver: overlay\n    driver_opts: {encrypted: \"true\"}\n",
        "configs:\n  image: {file: ./a.conf}\nname: app\n",
    ] {
        fs::write(dir.path().join("docker-stack.yml"), modern).expect("w");
        let (code, out, _) = lint_in(dir.path(), &["docker-stack.yml"]);
        assert_eq!(code, 0, "{modern:?}: {out}");
    }
}

#[test]
fn suppressions_need_a_reason_and_can_be_forbidden() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = "services:\n  web:\n    image: nginx:1@sha256:11a9d238fbb48bab14599c57e41123254452b1a2d93c6c8595bce96f346bd082\n    environment:\n      # hacompile-ignore HC101: local demo only\n      API_PASSWORD: not-for-prod\n      OTHER_PASSWORD: demo2 # hacompile-ignore HC101\n";
    fs::write(dir.path().join("docker-stack.yml"), stack).expect("w");
    let (_, out, _) = lint_in(dir.path(), &["--format", "json", "docker-stack.yml"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let f = v["findings"].as_array().expect("array");
    let hc101: Vec<_> = f.iter().filter(|x| x["code"] == "HC101").collect();
    assert_eq!(hc101.len(), 2);
    assert_eq!(hc101[0]["suppressed"], "local demo only");
    assert!(hc101[1]["suppressed"].is_null(), "a suppression without a reason suppresses nothing");
    assert!(f.iter().any(|x| x["code"] == "HC002" && x["line"] == 7));

    // SARIF carries the suppression with its reason.
    let (_, out, _) = lint_in(dir.path(), &["--format", "sarif", "docker-stack.yml"]);
    let sarif: serde_json::Value = serde_json::from_str(&out).expect("json");
    let results = sarif["runs"][0]["results"].as_array().expect("results");
    assert!(results.iter().any(|r| r["suppressions"][0]["justification"] == "local demo only"));

    // Forbidden in CI: every inline suppression is reported and none honoured.
    let (code, out, _) = lint_in(dir.path(), &["--format", "json", "--no-inline-suppressions", "docker-stack.yml"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let f = v["findings"].as_array().expect("array");
    assert!(f.iter().filter(|x| x["code"] == "HC101").all(|x| x["suppressed"].is_null()));
    assert!(f.iter().any(|x| x["code"] == "HC003"));
}

#[test]
fn the_config_file_is_found_upward_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    fs::create_dir_all(root.join("stacks/legacy")).expect("mkdir");
    fs::write(root.join("stacks/docker-stack.yml"), "services:\n  web:\n    image: nginx:1.27\n").expect("w");
    fs::write(root.join("stacks/legacy/docker-stack.yml"), leaky_stack()).expect("w");
    fs::write(
        root.join(".hacompile.toml"),
        "fail_on = \"error\"\nexclude = [\"stacks/legacy/**\"]\n[rules]\nHC203 = \"warning\"\nHC506 = \"off\"\n",
    )
    .expect("w");
    let (code, out, _) = lint_in(root, &["--format", "json", "stacks"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let f = v["findings"].as_array().expect("array");
    assert!(f.iter().all(|x| x["file"].as_str().is_some_and(|p| !p.contains("legacy"))), "excluded path skipped");
    assert!(f.iter().any(|x| x["code"] == "HC203" && x["severity"] == "warning"), "severity overridden");
    assert!(!f.iter().any(|x| x["code"] == "HC506"), "rule turned off");
    assert_eq!(code, 0, "warnings do not fail with fail_on = error:\n{out}");
    let (code, _, _) = lint_in(root, &["--fail-on", "warning", "stacks"]);
    assert_eq!(code, 1, "--fail-on overrides the config");

    fs::write(root.join(".hacompile.toml"), "fail_on = \"error\"\nfial_on = 1\n").expect("w");
    let (code, out, _) = lint_in(root, &["stacks"]);
    assert_eq!(code, 2, "an invalid config is an input error");
    assert!(out.contains("unknown field `fial_on`"), "{out}");
}

/// A `.hacompile.toml` above the repository (in /tmp, a shared CI
/// workspace: whoever can write there) is not the repository's: it turned
/// the gate off (`exclude = ["**"]`: exit 0, 0 files). The search stops at
/// the git work tree's root. A file named on the command line that the
/// repository's own config excludes is said to be skipped.
#[test]
fn a_config_above_the_repository_is_not_used_and_named_exclusions_are_said() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shared = dir.path();
    let checkout = shared.join("checkout");
    fs::create_dir_all(checkout.join(".git")).expect("mkdir");
    fs::create_dir_all(checkout.join("deploy")).expect("mkdir");
    fs::write(checkout.join("deploy/docker-stack.yml"), leaky_stack()).expect("w");
    for planted in ["exclude = [\"**\"]\n", "[rules]\nHC101 = \"off\"\n"] {
        fs::write(shared.join(".hacompile.toml"), planted).expect("w");
        for args in [&["--format", "json", "."][..], &["--format", "json", "deploy/docker-stack.yml"][..]] {
            let (code, out, _) = lint_in(&checkout, args);
            assert_eq!(code, 1, "{planted:?} {args:?}: the gate holds:\n{out}");
            assert!(codes_of(&out).contains(&"HC101".to_owned()), "{planted:?} {args:?}:\n{out}");
        }
    }
    // The repository's own config, at its root, is found from below.
    fs::write(checkout.join(".hacompile.toml"), "exclude = [\"deploy/**\"]\n").expect("w");
    let (code, out, _) = lint_in(&checkout.join("deploy"), &["docker-stack.yml"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 named file skipped: excluded by `exclude` in .hacompile.toml"), "{out}");
}

fn codes_of(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    v["findings"].as_array().expect("array").iter().map(|f| f["code"].as_str().expect("code").to_owned()).collect()
}

#[test]
fn sarif_has_what_github_code_scanning_requires() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("docker-stack.yml"), leaky_stack()).expect("w");
    let (_, out, _) = lint_in(dir.path(), &["--format", "sarif", "."]);
    // An independent SARIF model (serde-sarif, generated from the OASIS schema).
    let log: serde_sarif::sarif::Sarif = serde_json::from_str(&out).expect("valid SARIF 2.1.0");
    assert_eq!(log.version.to_string().trim_matches('"'), "2.1.0");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "hacompile");
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), hacompile_lint::RULES.len());
    assert!(
        rules
            .iter()
            .all(|r| r["id"].is_string() && r["shortDescription"]["text"].is_string() && r["help"]["text"].is_string())
    );
    let results = run["results"].as_array().expect("results is always an array");
    assert!(!results.is_empty());
    for r in results {
        assert!(r["ruleId"].is_string() && r["message"]["text"].is_string());
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"].as_str().is_some_and(|u| !u.starts_with('/') && !u.starts_with("./")));
        assert!(loc["region"]["startLine"].as_u64().is_some_and(|l| l >= 1));
        let idx = r["ruleIndex"].as_u64().expect("index") as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
    }
    // A file's name is one relative path in the URI: every byte but an
    // unreserved character or `/` percent-encoded. A `%` or `#` left raw
    // made the URI name another file (`x%2F..%2Fdocker-stack.yml` decodes
    // to `x/../docker-stack.yml`) or start a fragment; `\` was turned into `/`.
    let odd = tempfile::tempdir().expect("temp dir");
    let names = [
        ("x%2F..%2Fdocker-stack.yml", "x%252F..%252Fdocker-stack.yml"),
        ("my stack#1.yml", "my%20stack%231.yml"),
        ("why?-stack.yml", "why%3F-stack.yml"),
        ("back\\slash-stack.yml", "back%5Cslash-stack.yml"),
        ("é:~_stack.yml", "%C3%A9%3A~_stack.yml"),
        ("tab\tand\u{1b}[2J-stack.yml", "tab%09and%1B%5B2J-stack.yml"),
    ];
    for (name, _) in names {
        fs::write(odd.path().join(name), "services:\n  web:\n    image: nginx\n").expect("w");
    }
    let args: Vec<&str> = ["--format", "sarif"].into_iter().chain(names.iter().map(|(n, _)| *n)).collect();
    let (_, out, _) = lint_in(odd.path(), &args);
    let _: serde_sarif::sarif::Sarif = serde_json::from_str(&out).expect("valid SARIF 2.1.0");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let mut uris: Vec<&str> = v["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().expect("uri"))
        .collect();
    uris.dedup();
    assert_eq!(uris, names.map(|(_, uri)| uri), "{out}");
    // In a subdirectory, `/` stays a separator.
    fs::create_dir(odd.path().join("sub dir")).expect("mkdir");
    fs::write(odd.path().join("sub dir/docker-stack.yml"), "services:\n  web:\n    image: nginx\n").expect("w");
    let (_, out, _) = lint_in(odd.path(), &["--format", "sarif", "./sub dir/docker-stack.yml"]);
    assert!(out.contains("\"uri\": \"sub%20dir/docker-stack.yml\""), "{out}");

    // A clean run still has an empty results array.
    let clean = tempfile::tempdir().expect("temp dir");
    let (_, out, _) = lint_in(clean.path(), &["--format", "sarif", "."]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["runs"][0]["results"], serde_json::json!([]));
}

#[test]
fn github_annotations() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("docker-stack.yml"), leaky_stack()).expect("w");
    let (_, out, _) = lint_in(dir.path(), &["--format", "github", "docker-stack.yml"]);
    let first = out.lines().next().expect("an annotation");
    assert!(first.starts_with("::error file=docker-stack.yml,line=3,col=22,endLine=3,endColumn="), "{first}");
    assert!(first.contains("title=HC101 plaintext-secret-in-environment::"));
}

/// Runs `lint` on one hostile file next to a good one, with a 512 MiB
/// address-space cap; returns (exit code, stdout, elapsed).
fn hostile(name: &str, bytes: &[u8]) -> (i32, String, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join(name), bytes).expect("w");
    fs::write(dir.path().join("docker-stack.good.yml"), leaky_stack()).expect("w");
    let start = Instant::now();
    let out = Command::new("bash")
        .current_dir(dir.path())
        .args([
            "-c",
            "ulimit -v 524288 && exec \"$0\" lint --format json \"$1\" docker-stack.good.yml",
            env!("CARGO_BIN_EXE_hacompile"),
            name,
        ])
        .output()
        .expect("runs");
    (out.status.code().unwrap_or(-1), text(&out.stdout), start.elapsed())
}

/// The findings of a [`hostile`] run, after checking that the good file
/// beside the hostile one was still linted and that the run kept within
/// `bound`.
fn findings_beside_the_good_file(name: &str, out: &str, elapsed: Duration, bound: Duration) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{name}: {e}\n{out}"));
    let f = v["findings"].as_array().expect("array").clone();
    assert!(
        f.iter().any(|x| x["file"] == "docker-stack.good.yml" && x["code"] == "HC101"),
        "{name}: the good file is still linted"
    );
    assert!(elapsed < bound, "{name} took {elapsed:?}");
    f
}

#[test]
fn hostile_input_is_refused_and_the_other_files_are_still_linted() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    bomb.push_str("services:\n  x:\n    image: *a11\n");
    let mut big = b"services:\n".to_vec();
    big.resize(50 * 1024 * 1024, b'#');
    let deep = format!("services: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let mut not_utf8 = b"services:\n  db:\n    image: postgres\n".to_vec();
    not_utf8.extend([0xff, 0xfe, b'\n']);
    let mut binary = vec![0x7f, b'E', b'L', b'F', 0, 0, 0, 1];
    binary.extend(std::iter::repeat_n(0u8, 4096));
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("docker-stack.bomb.yml", bomb.into_bytes(), "alias bomb"),
        ("docker-stack.big.yml", big, "larger than 16 MiB"),
        ("docker-stack.deep.yml", deep.into_bytes(), "deep"),
        ("docker-stack.utf8.yml", not_utf8, "not UTF-8"),
        ("docker-stack.bin.yml", binary, "binary"),
    ];
    for (name, bytes, expect) in cases {
        let (code, out, elapsed) = hostile(name, &bytes);
        assert_eq!(code, 2, "{name}: exit 2\n{out}");
        let f = findings_beside_the_good_file(name, &out, elapsed, Duration::from_secs(5));
        let refused = f
            .iter()
            .find(|x| x["file"] == name && x["code"] == "HC001")
            .unwrap_or_else(|| panic!("{name}: HC001\n{out}"));
        let msg = refused["message"].as_str().expect("message").to_owned();
        assert!(
            msg.contains(expect) || (expect == "deep" && (msg.contains("deeper") || msg.contains("recursion"))),
            "{name}: {msg}"
        );
    }
}

/// Large inputs under the limits are linted, not refused, within the same
/// bound: the work grows with the file, not with its square. Each case
/// names a finding every part of the file gives (one more finding counts
/// those left out, so the count says every part was checked).
#[test]
fn large_inputs_under_the_limits_are_linted_within_the_bound() {
    // 1.6 MB: two rules asked, for each service, which services of the
    // stack run PostgreSQL (27 s).
    let mut services = String::from("services:\n");
    services.extend((0..60_000).map(|i| format!("  s{i}:\n    image: nginx\n")));
    // 1.5 MB of one service's credential entries: the line masker built a
    // search automaton for each line it scanned, and the file's masker one
    // for all the values in a time quadratic in them (12 s; 3 MB, 30 s).
    let mut credentials = String::from("services:\n  web:\n    image: nginx:1\n    environment:\n");
    credentials.extend((0..50_000).map(|i| format!("      - K{i}_PASSWORD=v{i}\n")));
    let cases: [(&str, Vec<u8>, &str, &str); 2] = [
        ("docker-stack.services.yml", services.into_bytes(), "HC201", "59900 more findings of HC201 left out"),
        ("docker-stack.credentials.yml", credentials.into_bytes(), "HC101", "49900 more findings of HC101 left out"),
    ];
    for (name, bytes, code, count) in cases {
        let (exit, out, elapsed) = hostile(name, &bytes);
        assert_eq!(exit, 1, "{name}: linted, with findings\n{out}");
        // Well under the 27 s and 12 s these took, with room for a loaded
        // CI machine (about 1.5 s each alone, debug build).
        let f = findings_beside_the_good_file(name, &out, elapsed, Duration::from_secs(15));
        assert!(
            f.iter().any(|x| x["file"] == name
                && x["code"] == code
                && x["message"].as_str().is_some_and(|m| m.starts_with(count))),
            "{name}: {count}\n{out}"
        );
    }
}

/// GitHub Actions runs a log line that starts with `::` (after any leading
/// spaces) as a workflow command. A file name led the concise format's
/// lines, so a file named `::error file=README.md,line=1::...` forged an
/// annotation (or `::stop-commands::` silenced the rest). No format may
/// print such a line but the github format's own commands; a name that
/// would lead a line with `::` is written `./name`, the same file.
#[test]
fn a_file_name_never_starts_a_workflow_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let names = ["::error file=README.md,line=1::forged-stack.yml", " ::stop-commands::tok-stack.yml"];
    for name in names {
        fs::write(dir.path().join(name), "services:\n  web:\n    image: nginx\n").expect("w");
    }
    for format in ["concise", "human", "json", "sarif", "github"] {
        let (code, out, err) = lint_in(dir.path(), &[&["--format", format][..], &names].concat());
        assert_eq!(code, 1, "{format}: {out}{err}");
        for line in out.lines().chain(err.lines()) {
            let own = format == "github"
                && ["::error file=", "::warning file=", "::notice file=", "::notice::"]
                    .iter()
                    .any(|c| line.starts_with(c));
            assert!(own || !line.trim_start().starts_with("::"), "{format} printed a workflow command:\n{line}");
        }
        assert!(out.contains("forged-stack.yml") && out.contains("tok-stack.yml"), "{format} names both files:\n{out}");
    }
    let (_, out, _) = lint_in(dir.path(), &[&["--format", "concise"][..], &names].concat());
    for name in names {
        assert!(out.lines().any(|l| l.starts_with(&format!("./{name}:2:3: HC505 "))), "{out}");
    }
}

/// GitHub Actions' runner also runs the older `##[command]` form found
/// anywhere in a printed line, in every format: a service named
/// `web##[error]...` forged an annotation through any message that quoted
/// it, and a `##[stop-commands]` in a quoted source line silenced the
/// annotations after it. Nothing printed holds `##[` now: its `[` is
/// written `\u{005b}` in names, messages, snippets and build errors alike.
#[test]
fn no_format_prints_an_older_workflow_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = "x##[error]forged-stack.yml";
    fs::write(
        dir.path().join(stack),
        "services:\n  web##[error]svc:\n    # ##[stop-commands]tok\n    image: nginx ##[warning]img\n    ports: [\"5432:5432\"]\n",
    )
    .expect("w");
    let broken = "broken##[add-matcher]-stack.yml";
    fs::write(dir.path().join(broken), "services:\n  db: [\n  ##[error]in-the-excerpt\n").expect("w");
    let cfg = "haproxy.cfg";
    fs::write(
        dir.path().join(cfg),
        "global\n    stats socket /x##[error]sock\nfrontend f##[error]fe\n    bind :5000\n",
    )
    .expect("w");
    for format in ["concise", "human", "json", "sarif", "github"] {
        let (code, out, err) = lint_in(dir.path(), &["--format", format, stack, broken, cfg]);
        assert_eq!(code, 2, "{format}: {out}{err}");
        for line in out.lines().chain(err.lines()) {
            assert!(!line.contains("##["), "{format} printed an older workflow command:\n{line}");
        }
        assert!(out.contains("forged-stack.yml") && out.contains("-stack.yml"), "{format} names the files:\n{out}");
    }
    let (_, out, _) = lint_in(dir.path(), &["--format", "concise", stack]);
    assert!(out.contains("web##\\u{005b}error]svc"), "the service is named, its `[` escaped:\n{out}");
    // A spec's error quotes the value and the source line.
    let spec = dir.path().join("spec.toml");
    fs::write(&spec, "stack = \"pg##[error]x\"\n").expect("w");
    let run = bin().arg("build").arg(&spec).arg("-o").arg(dir.path().join("out")).output().expect("runs");
    let (o, e) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(2), "{o}{e}");
    assert!(e.contains("pg##\\u{005b}error]x"), "the value is shown, escaped:\n{e}");
    for line in o.lines().chain(e.lines()) {
        assert!(!line.contains("##["), "build printed an older workflow command:\n{line}");
    }
}

/// An input error with no source to show (a missing file, a FIFO, a binary
/// file) names its file, at 1:1, in every format: the human report printed
/// three anonymous `× the file does not exist` blocks for three inputs.
#[test]
fn an_input_error_without_source_names_its_file_in_every_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mkfifo = Command::new("mkfifo").arg(dir.path().join("fifo-stack.yml")).output().expect("mkfifo runs");
    assert!(mkfifo.status.success(), "mkfifo: {}", text(&mkfifo.stderr));
    fs::write(dir.path().join("bin-stack.yml"), b"a\0b").expect("w");
    let cases = [
        ("missing-stack.yml", "the file does not exist"),
        ("fifo-stack.yml", "it is a FIFO"),
        ("bin-stack.yml", "the file is binary"),
    ];
    let names = cases.map(|(name, _)| name);
    let lint = |format: &str| {
        let (code, out, err) = lint_in(dir.path(), &[&["--format", format][..], &names].concat());
        assert_eq!(code, 2, "{format}: {out}{err}");
        out
    };
    // Human: one block per finding, each naming its file where a source
    // excerpt would (`╭─[name:1:1]`).
    let out = lint("human");
    let blocks: Vec<&str> = out.split("HC001 unreadable-input").skip(1).collect();
    assert_eq!(blocks.len(), 3, "{out}");
    for (block, (name, message)) in blocks.iter().zip(cases) {
        assert!(block.contains(message) && block.contains(&format!("[{name}:1:1]")), "{name}:\n{block}");
    }
    let out = lint("concise");
    for (name, message) in cases {
        assert!(out.lines().any(|l| l.starts_with(&format!("{name}:1:1: HC001 ")) && l.contains(message)), "{out}");
    }
    let out = lint("github");
    for (name, message) in cases {
        let start = format!("::error file={name},line=1,col=1,");
        assert!(out.lines().any(|l| l.starts_with(&start) && l.contains(message)), "{out}");
    }
    let v: serde_json::Value = serde_json::from_str(&lint("json")).expect("json");
    for (name, message) in cases {
        assert!(
            v["findings"].as_array().expect("array").iter().any(|f| f["file"] == name
                && f["line"] == 1
                && f["column"] == 1
                && f["message"].as_str().is_some_and(|m| m.contains(message))),
            "{v}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(&lint("sarif")).expect("json");
    for (name, message) in cases {
        assert!(
            v["runs"][0]["results"].as_array().expect("results").iter().any(|r| {
                let at = &r["locations"][0]["physicalLocation"];
                at["artifactLocation"]["uri"] == name
                    && at["region"]["startLine"] == 1
                    && at["region"]["startColumn"] == 1
                    && r["message"]["text"].as_str().is_some_and(|m| m.contains(message))
            }),
            "{v}"
        );
    }
}

#[test]
fn a_syntax_error_next_to_a_password_does_not_print_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    // An unterminated quote: the error points at the password's own line.
    fs::write(
        dir.path().join("docker-stack.yml"),
        "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: \"Broken-Secret-42\n",
    )
    .expect("w");
    let (code, out, err) = lint_in(dir.path(), &["docker-stack.yml"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("HC001") && out.contains("POSTGRES_PASSWORD: ****"), "the line is shown, masked:\n{out}");
    assert!(!out.contains("Broken-Secret-42") && !err.contains("Broken-Secret-42"), "{out}");
}
