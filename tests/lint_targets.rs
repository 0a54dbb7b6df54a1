//! What swarm rejects or changes, checked against the real `docker stack
//! config`; compose and swarm targets; the directory walk by content; env
//! files; the concise format.

mod support;

use std::fs;
use std::path::Path;

use support::*;

const FIXTURES: &str = "tests/lint/rules";

/// `docker stack config -c NAME` in `dir`: (success, stdout, stderr).
fn stack_config(dir: &Path, name: &str) -> (bool, String, String) {
    let out = tool("docker", &["stack", "config", "-c", name], dir);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn json_codes(dir: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let out = bin().current_dir(dir).args(["lint", "--format", "json"]).args(args).output().expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON output ({e}):\n{}\n{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["findings"].as_array().expect("findings").iter().map(|f| f["code"].as_str().expect("code").to_owned()).collect()
}

#[test]
fn swarm_rejects_the_files_the_swarm_rules_report_and_accepts_the_clean_ones() {
    for (code, message) in [
        ("HC306", "Additional property profiles is not allowed"),
        ("HC307", "forbidden properties"),
        ("HC308", "env_file.0 must be a string"),
    ] {
        let dir = Path::new(ROOT).join(FIXTURES).join(code);
        let (ok, _, err) = stack_config(&dir, "fires.yml");
        assert!(
            !ok && err.contains(message),
            "{code}: docker stack config must refuse fires.yml with `{message}`: {err}"
        );
        let (ok, _, err) = stack_config(&dir, "clean.yml");
        assert!(ok, "{code}: docker stack config accepts clean.yml: {err}");
        let (status, v) = json_codes(&dir, &["fires.yml"]);
        assert_eq!(status, 1, "{code}");
        assert!(codes(&v).iter().any(|c| c == code), "{code}: {v}");
    }
}

#[test]
fn swarm_publishes_a_port_with_a_host_ip_on_every_interface() {
    let dir = Path::new(ROOT).join(FIXTURES).join("HC309");
    let (ok, out, err) = stack_config(&dir, "fires.yml");
    assert!(ok, "{err}");
    assert!(err.contains("ignoring IP-address") && err.contains("0.0.0.0"), "docker warns only: {err}");
    assert!(!out.contains("127.0.0.1") && out.contains("mode: ingress"), "the address is dropped:\n{out}");
    let (status, v) = json_codes(&dir, &["fires.yml"]);
    assert_eq!(status, 1);
    assert!(codes(&v).iter().any(|c| c == "HC309"), "{v}");
}

/// The long syntax's `host_ip` is not ignored but refused by `docker stack
/// deploy`'s schema; HC309 says so (it reported nothing of it, and HC508
/// and HC509 took the address as a binding).
#[test]
fn swarm_refuses_a_long_syntax_host_ip() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = "version: \"3.8\"\nservices:\n  db:\n    image: postgres:16.4\n    ports:\n      - {target: 5432, published: 5432, host_ip: 127.0.0.1}\n";
    fs::write(dir.path().join("docker-stack.yml"), stack).expect("writable");
    let (ok, _, err) = stack_config(dir.path(), "docker-stack.yml");
    assert!(!ok && err.contains("Additional property host_ip is not allowed"), "docker refuses it: {err}");
    let (status, v) = json_codes(dir.path(), &["docker-stack.yml"]);
    assert_eq!(status, 1);
    let found = v["findings"].as_array().expect("findings").iter().find(|f| f["code"] == "HC309").cloned();
    let message = found.as_ref().and_then(|f| f["message"].as_str()).unwrap_or_default();
    assert!(message.contains("refuses `host_ip`"), "{v}");
}

/// A stack named for what it runs, with a port swarm opens everywhere.
const NAMED_STACK: &str = "services:\n  app:\n    image: nginx:1.27\n    ports:\n      - \"127.0.0.1:8080:80\"\n    deploy:\n      replicas: 1\n";

fn walk_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["postgres.yml", "traefik.yml", "nextcloud.yaml"] {
        fs::write(dir.path().join(name), NAMED_STACK).expect("writable");
    }
    // YAML that is not a stack: skipped, and counted.
    fs::write(dir.path().join("mkdocs.yml"), "site_name: docs\nnav:\n  - index.md\n").expect("writable");
    fs::create_dir(dir.path().join("chart")).expect("mkdir");
    fs::write(dir.path().join("chart/values.yaml"), "# services: is not top-level here\nimage:\n  services: 2\n")
        .expect("writable");
    dir
}

#[test]
fn the_walk_lints_yaml_files_with_top_level_services_whatever_their_name() {
    let dir = walk_tree();
    let (status, v) = json_codes(dir.path(), &["."]);
    assert_eq!(status, 1, "{v}");
    let mut files: Vec<&str> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == "HC309")
        .map(|f| f["file"].as_str().expect("file"))
        .collect();
    files.sort_unstable();
    assert_eq!(files, ["./nextcloud.yaml", "./postgres.yml", "./traefik.yml"], "{v}");
    assert_eq!(v["summary"]["files"], 3, "{v}");
    assert_eq!(v["summary"]["skipped"][0]["files"], 2, "{v}");
    assert_eq!(v["summary"]["skipped"][0]["reason"], "not a stack or compose file (no top-level `services:`)", "{v}");

    let out = bin().current_dir(dir.path()).args(["lint", "--format", "human", "."]).output().expect("runs");
    let human = text(&out.stdout);
    let last = human.lines().last().expect("a summary line");
    assert!(
        last.contains("in 3 files") && last.contains("2 YAML files skipped: not a stack or compose file"),
        "{human}"
    );

    let out = bin().current_dir(dir.path()).args(["lint", "--format", "sarif", "."]).output().expect("runs");
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).expect("SARIF");
    let run = &sarif["runs"][0];
    assert_eq!(run["properties"]["filesLinted"], 3, "{run}");
    assert_eq!(run["properties"]["skipped"][0]["files"], 2, "{run}");
    let note = run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"].as_str().unwrap_or("");
    assert!(note.contains("2 YAML files skipped"), "{run}");
    assert_eq!(run["invocations"][0]["executionSuccessful"], true, "{run}");
    let rule = |code: &str| {
        run["tool"]["driver"]["rules"].as_array().and_then(|r| r.iter().find(|x| x["id"] == code)).cloned()
    };
    let tags = |code: &str| rule(code).map(|r| r["properties"]["tags"].to_string()).unwrap_or_default();
    assert!(tags("HC306").contains("swarm-only") && !tags("HC101").contains("swarm-only"), "{run}");

    let out = bin().current_dir(dir.path()).args(["lint", "--format", "github", "."]).output().expect("runs");
    let gh = text(&out.stdout);
    assert!(
        gh.lines()
            .any(|l| l.starts_with("::notice::") && l.contains("3 files linted") && l.contains("2 YAML files skipped")),
        "{gh}"
    );
}

#[test]
fn the_walk_reads_only_the_head_of_a_large_yaml_file_it_skips() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Larger than a stack may be: read whole it would be refused (exit 2).
    let mut big = String::from("data:\n");
    while big.len() < 17 * 1024 * 1024 {
        big.push_str("  - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
    }
    fs::write(dir.path().join("dump.yml"), &big).expect("writable");
    let start = std::time::Instant::now();
    let (status, v) = json_codes(dir.path(), &["."]);
    assert_eq!(status, 0, "{v}");
    assert_eq!(v["summary"]["skipped"][0]["files"], 1, "{v}");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}

/// What compose runs fine and swarm rejects or ignores: profiles, restart,
/// a port bound to localhost.
const COMPOSE_ONLY: &str = "services:\n  app:\n    image: nginx:1.27@sha256:11a9d238fbb48bab14599c57e41123254452b1a2d93c6c8595bce96f346bd082\n    profiles: [debug]\n    restart: always\n    ports:\n      - \"127.0.0.1:8080:80\"\n";

const SWARM_ONLY_CODES: [&str; 3] = ["HC301", "HC306", "HC309"];

fn swarm_codes(dir: &Path, args: &[&str]) -> Vec<String> {
    let (_, v) = json_codes(dir, args);
    let mut found: Vec<String> = codes(&v).into_iter().filter(|c| SWARM_ONLY_CODES.contains(&c.as_str())).collect();
    found.sort();
    found
}

#[test]
fn a_compose_file_gets_no_swarm_findings_and_a_stack_file_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("docker-compose.yml"), COMPOSE_ONLY).expect("writable");
    fs::write(dir.path().join("compose.dev.yaml"), COMPOSE_ONLY).expect("writable");
    fs::write(dir.path().join("docker-stack.yml"), COMPOSE_ONLY).expect("writable");
    // Named like a compose file, but `deploy:` says it is deployed to swarm.
    let deployed =
        COMPOSE_ONLY.replace("    restart: always\n", "    restart: always\n    deploy:\n      replicas: 2\n");
    fs::write(dir.path().join("docker-compose.prod.yml"), &deployed).expect("writable");
    // A name that says nothing: swarm, the linter's default.
    fs::write(dir.path().join("app.yml"), COMPOSE_ONLY).expect("writable");

    assert_eq!(swarm_codes(dir.path(), &["docker-compose.yml"]), Vec::<String>::new());
    assert_eq!(swarm_codes(dir.path(), &["compose.dev.yaml"]), Vec::<String>::new());
    for swarm in ["docker-stack.yml", "docker-compose.prod.yml", "app.yml"] {
        assert_eq!(swarm_codes(dir.path(), &[swarm]), SWARM_ONLY_CODES, "{swarm}");
    }
    // The flag overrides detection both ways.
    assert_eq!(swarm_codes(dir.path(), &["--target", "swarm", "docker-compose.yml"]), SWARM_ONLY_CODES);
    assert_eq!(swarm_codes(dir.path(), &["--target", "compose", "docker-stack.yml"]), Vec::<String>::new());
    assert_eq!(swarm_codes(dir.path(), &["--target", "auto", "docker-compose.yml"]), Vec::<String>::new());

    // In every format, not only JSON.
    for format in ["human", "sarif", "github", "concise"] {
        let out = bin().current_dir(dir.path()).args(["lint", "--format", format, "docker-compose.yml"]).output();
        let out = out.expect("runs");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{format}: HC505 and HC506 hold under compose too: {}",
            text(&out.stderr)
        );
        let mut all = text(&out.stdout);
        if format == "sarif" {
            // The rule table lists every rule: look at the results only.
            let v: serde_json::Value = serde_json::from_str(&all).expect("SARIF");
            all = v["runs"][0]["results"].to_string();
            assert!(all.contains("HC505"), "{all}");
        }
        for c in SWARM_ONLY_CODES {
            assert!(!all.contains(c), "{format} reported {c} for a compose file:\n{all}");
        }
    }
}

#[test]
fn the_config_sets_the_target_for_all_files_or_by_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir(dir.path().join("dev")).expect("mkdir");
    fs::write(dir.path().join("dev/stack.yml"), COMPOSE_ONLY).expect("writable");
    fs::write(dir.path().join("docker-compose.yml"), COMPOSE_ONLY).expect("writable");

    fs::write(dir.path().join(".hacompile.toml"), "target = \"swarm\"\n").expect("writable");
    assert_eq!(swarm_codes(dir.path(), &["docker-compose.yml"]), SWARM_ONLY_CODES);
    assert_eq!(swarm_codes(dir.path(), &["--target", "compose", "docker-compose.yml"]), Vec::<String>::new());

    fs::write(
        dir.path().join(".hacompile.toml"),
        "target = \"swarm\"\n\n[[path_target]]\nglob = \"dev/**\"\ntarget = \"compose\"\n",
    )
    .expect("writable");
    assert_eq!(swarm_codes(dir.path(), &["dev/stack.yml"]), Vec::<String>::new());
    assert_eq!(swarm_codes(dir.path(), &["docker-compose.yml"]), SWARM_ONLY_CODES);

    fs::write(dir.path().join(".hacompile.toml"), "target = \"kubernetes\"\n").expect("writable");
    let out = bin().current_dir(dir.path()).args(["lint", "--format", "human", "docker-compose.yml"]).output();
    let out = out.expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let all = text(&out.stdout);
    assert!(all.contains(".hacompile.toml") && all.contains("kubernetes"), "{all}");
}

const ENV_SECRETS: [&str; 4] = ["hunter2-Xq9-env", "Zp4Lm9Qx2Rv7Tn1Kb8Wc3Hs6", "S3cretUrlPw99", "AKIAJ7QW3ZX5TESTKEY9"];

#[test]
fn env_files_a_stack_names_are_linted_for_secrets_with_their_own_places() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir(dir.path().join("env")).expect("mkdir");
    fs::write(
        dir.path().join("docker-stack.yml"),
        "services:\n  app:\n    image: nginx:1.27\n    env_file:\n      - ./env/app.env\n      - ./missing.env\n",
    )
    .expect("writable");
    fs::write(
        dir.path().join("env/app.env"),
        format!(
            "# a comment: PASSWORD=not-a-value\n\nexport POSTGRES_PASSWORD={}\n  API_TOKEN=\"{}\"\nLOG_LEVEL=info\nDB_PASSWORD_FILE=/run/secrets/db\nEMPTY_PASSWORD=\nREF_PASSWORD=${{FROM_ENV}}\nINHERITED_PASSWORD\nDATABASE_URL=postgres://app:{}@db/app\nBUILD_ID={}\n",
            ENV_SECRETS[0], ENV_SECRETS[1], ENV_SECRETS[2], ENV_SECRETS[3]
        ),
    )
    .expect("writable");
    let (status, v) = json_codes(dir.path(), &["docker-stack.yml"]);
    assert_eq!(status, 1, "{v}");
    let in_env: Vec<(String, u64, u64)> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["file"].as_str().is_some_and(|n| n.ends_with("app.env")))
        .map(|f| {
            (
                f["code"].as_str().expect("code").to_owned(),
                f["line"].as_u64().expect("line"),
                f["column"].as_u64().expect("col"),
            )
        })
        .collect();
    let expected = [("HC101", 3, 26), ("HC101", 4, 14), ("HC102", 10, 29), ("HC105", 11, 10)];
    assert_eq!(in_env, expected.map(|(c, l, col)| (c.to_owned(), l, col)), "{v}");
    let last = v["findings"].as_array().and_then(|f| f.last()).expect("findings");
    assert_eq!(last["file"], "env/app.env", "named as the walk names files: {v}");
    // A missing env file is no finding: it may be written at deploy time.
    assert!(!v.to_string().contains("missing.env"), "{v}");

    for format in ["human", "json", "sarif", "github", "concise"] {
        let out = bin().current_dir(dir.path()).args(["lint", "--format", format, "."]).output().expect("runs");
        assert_eq!(out.status.code(), Some(1), "{format}");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(all.contains("HC101") && all.contains("app.env"), "{format}:\n{all}");
        for s in ENV_SECRETS {
            assert!(!all.contains(s), "{format} printed a secret from the env file:\n{all}");
        }
    }
    // Named on the command line, an env file is linted as one.
    let (status, v) = json_codes(dir.path(), &["env/app.env"]);
    assert_eq!(status, 1, "{v}");
    assert_eq!(codes(&v), ["HC101", "HC101", "HC102", "HC105"], "{v}");
}

#[test]
fn concise_prints_one_masked_line_per_finding() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(
        dir.path().join("docker-stack.yml"),
        format!(
            "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: {}\n    ports:\n      - \"127.0.0.1:5432:5432\"\n",
            ENV_SECRETS[0]
        ),
    )
    .expect("writable");
    let out = bin().current_dir(dir.path()).args(["lint", "--format", "concise", "docker-stack.yml"]).output();
    let out = out.expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out.stdout);
    assert!(!all.contains(ENV_SECRETS[0]), "{all}");
    let lines: Vec<&str> = all.lines().collect();
    let (summary, findings) = lines.split_last().expect("a summary line");
    assert!(summary.contains("findings") && summary.contains("in 1 file"), "{all}");
    let (_, json) = json_codes(dir.path(), &["docker-stack.yml"]);
    assert_eq!(findings.len(), codes(&json).len(), "{all}");
    assert!(
        findings.contains(&"docker-stack.yml:5:26: HC101 `POSTGRES_PASSWORD` of service `db` has a literal value"),
        "{all}"
    );
    for l in findings {
        let mut parts = l.splitn(4, ':');
        assert_eq!(parts.next(), Some("docker-stack.yml"), "{l}");
        assert!(parts.next().is_some_and(|n| n.parse::<usize>().is_ok()), "{l}");
        assert!(parts.next().is_some_and(|n| n.parse::<usize>().is_ok()), "{l}");
        assert!(parts.next().is_some_and(|rest| rest.starts_with(" HC")), "{l}");
    }
}

/// Odd but valid YAML that `docker stack config` (go-yaml) parses: the
/// linter must parse it too (exit 2 on a file docker deploys blocks a CI
/// gate for nothing). Each is checked against the real docker CLI first.
const ODD_YAML: &[(&str, &str)] = &[
    (
        "flow sequence closed less indented",
        "services:\n  web:\n    image: nginx:1.27\n    ports: [\n      \"80:80\"\n  ]\n",
    ),
    ("flow mapping closed less indented", "services:\n  web:\n    image: nginx:1.27\n    labels: {\n      a: b\n  }\n"),
    (
        "flow entries less indented than their key",
        "services:\n  web:\n    image: nginx:1.27\n    ports: [\n  \"80:80\",\n  \"443:443\"\n  ]\n",
    ),
    (
        "flow sequence closed at its key's column, comments everywhere",
        "# top\nservices: # c\n  # c\n  web: # c\n    image: nginx:1.27 # c\n    ports: [ # c\n      \"80:80\", # c\n      # c\n    ] # c\n# end\n",
    ),
    (
        "block sequence at its key's indentation",
        "services:\n  web:\n    image: nginx:1.27\n    ports:\n    - \"80:80\"\n    command:\n    - nginx\n",
    ),
    (
        "folded and literal scalars, odd indentation",
        "services:\n   web:\n         image: nginx:1.27\n         command: >-\n           nginx -g\n           \"daemon off;\"\n         healthcheck:\n           test: |\n             curl -f localhost\n             true\n",
    ),
    (
        "anchors and merges",
        "x-common: &common\n  image: nginx:1.27\n  labels: &labels\n    a: b\nservices:\n  web:\n    <<: *common\n    labels: *labels\n  api:\n    <<: [*common]\n",
    ),
    ("tags", "services:\n  web:\n    image: !!str nginx:1.27\n    environment:\n      N: !!str 5\n"),
    ("CRLF line ends", "services:\r\n  web:\r\n    image: nginx:1.27\r\n    command: [\"a\",\r\n      \"b\"]\r\n"),
    ("a byte order mark", "\u{feff}services:\n  web:\n    image: nginx:1.27\n"),
    (
        "multi-line plain and double-quoted scalars",
        "services:\n  web:\n    image: nginx:1.27\n    command: nginx\n      -g daemon\n      off\n    environment:\n      A: \"one\n        two\"\n",
    ),
    (
        "a service in flow style over lines",
        "services:\n  web: {image: \"nginx:1.27\", ports: [\"80:80\"],\n    labels: {a: b}}\n",
    ),
    ("document markers", "---\nservices:\n  web:\n    image: nginx:1.27\n...\n"),
];

#[test]
fn what_docker_stack_config_parses_the_linter_parses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut refused = Vec::new();
    for (what, yaml) in ODD_YAML {
        fs::write(dir.path().join("docker-stack.yml"), yaml).expect("writable");
        let (ok, _, err) = stack_config(dir.path(), "docker-stack.yml");
        assert!(ok, "{what}: docker stack config must accept it (else it is no case for this test): {err}");
        let out = bin().current_dir(dir.path()).args(["lint", "--format", "concise", "docker-stack.yml"]).output();
        let out = out.expect("runs");
        if out.status.code() == Some(2) || text(&out.stdout).contains("HC001") {
            refused.push(format!("{what}: {}", text(&out.stdout).lines().next().unwrap_or("")));
        }
    }
    assert!(refused.is_empty(), "docker parses these, hacompile refused them:\n{}", refused.join("\n"));
}

#[test]
fn yaml_files_the_walk_cannot_read_to_tell_are_skipped_with_why_and_env_files_are_read_bounded() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("postgres.yml"), NAMED_STACK).expect("writable");
    // Not named as stacks, and unreadable: what they are cannot be told.
    std::os::unix::fs::symlink(dir.path().join("gone.yml"), dir.path().join("old.yml")).expect("symlink");
    let fifo = dir.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let start = std::time::Instant::now();
    let (status, v) = json_codes(dir.path(), &["."]);
    assert!(start.elapsed() < std::time::Duration::from_secs(10), "a FIFO is never opened for reading");
    assert_eq!(status, 1, "only postgres.yml's findings: {v}");
    let skipped = v["summary"]["skipped"].as_array().expect("skipped");
    let reasons: Vec<&str> = skipped.iter().map(|s| s["reason"].as_str().expect("reason")).collect();
    assert!(reasons.iter().any(|r| r.contains("symbolic link")), "{v}");
    assert!(reasons.iter().any(|r| r.contains("not a regular file")), "{v}");

    // An env file a stack names is read with the bounded reader: a link to
    // a device or a FIFO is refused quickly (exit 2), with its name.
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(
        dir.path().join("docker-stack.yml"),
        "services:\n  app:\n    image: nginx:1.27\n    env_file: [zero.env, big.env]\n",
    )
    .expect("writable");
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.env")).expect("symlink");
    fs::write(dir.path().join("big.env"), "A=1\n".repeat(300_000)).expect("writable");
    let start = std::time::Instant::now();
    let (status, v) = json_codes(dir.path(), &["docker-stack.yml"]);
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(status, 2, "{v}");
    let errors: Vec<&str> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == "HC001")
        .map(|f| f["file"].as_str().expect("file"))
        .collect();
    assert_eq!(errors, ["zero.env", "big.env"], "{v}");
}
