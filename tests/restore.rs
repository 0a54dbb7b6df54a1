//! `hacompile restore`: the printed commands use what the compiled stack
//! uses (config names, image, secrets, environment, repository volume), pass
//! shellcheck, run in a POSIX shell with every hostile value kept one word,
//! and bad requests are refused with exit 2 before anything is printed.
//! The swarm run (tests/swarm/run.sh) runs them for real.

mod support;

use std::fs;
use std::path::Path;

use support::*;

const BACKUP: &str = include_str!("../examples/ha-postgres-backup.toml");
const PATRONI: &str = include_str!("../examples/ha-patroni.toml");
const PLAIN: &str = include_str!("../examples/ha-postgres.toml");
const TIME: &str = "2026-11-26 17:54:10.123456+00";

fn restore_in(dir: &Path, spec: &str, args: &[&str]) -> Run {
    fs::write(dir.join("spec.toml"), spec).expect("writable");
    let lock = examples_lock(dir);
    let out =
        bin().current_dir(dir).args(["restore", "spec.toml", "--lock"]).arg(&lock).args(args).output().expect("runs");
    Run::of(&out)
}

fn restore(spec: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    restore_in(dir.path(), spec, args)
}

/// The compiled stack of `spec` (the same lock), as the docker CLI reads it.
fn built(dir: &Path, spec: &str) -> serde_yaml_ng::Value {
    fs::write(dir.join("spec.toml"), spec).expect("writable");
    let lock = examples_lock(dir);
    let out =
        bin().current_dir(dir).args(["build", "spec.toml", "-o", "out", "--lock"]).arg(&lock).output().expect("runs");
    assert!(out.status.success(), "build: {}", text(&out.stderr));
    serde_yaml_ng::from_str(&fs::read_to_string(dir.join("out/docker-stack.yml")).expect("stack")).expect("yaml")
}

/// Runs the printed commands in dash with `docker` a function that records
/// each call's arguments (NUL-separated) and answers `service ps` with a
/// completed task. Returns the calls.
fn run_with_fake_docker(dir: &Path, script: &str) -> Vec<Vec<String>> {
    fs::write(dir.join("restore.sh"), script).expect("writable");
    let harness = r#"docker() {
    printf '%s\0' "$@" >> calls
    printf '\n' >> calls
    if [ "$1 $2" = "service ps" ]; then echo "Complete 1 second ago"; fi
}
. ./restore.sh
"#;
    let out = tool("dash", &["-euc", harness], dir);
    assert!(out.status.success(), "the printed commands ran: {}{}", text(&out.stdout), text(&out.stderr));
    let calls = fs::read(dir.join("calls")).expect("docker was called");
    String::from_utf8(calls)
        .expect("utf-8")
        .split("\0\n")
        .filter(|c| !c.is_empty())
        .map(|c| c.split('\0').map(str::to_owned).collect())
        .collect()
}

/// A failed job makes the printed commands fail (exit status), with its log
/// on stderr and the job left for inspection: run as a script, a failed
/// restore must not look like a success. (Before: the status was that of
/// the `docker service rm` after it, 0; found on the swarm run.)
#[test]
fn a_failed_job_fails_the_commands() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = restore_in(dir.path(), BACKUP, &["--into", "restored", "--latest"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    fs::write(dir.path().join("restore.sh"), &run.stdout).expect("writable");
    let harness = r#"docker() {
    printf '%s\n' "$*" >> calls
    if [ "$1 $2" = "service ps" ]; then echo "Failed 1 second ago"; fi
    if [ "$1 $2" = "service logs" ]; then echo "refusing to restore: it is not empty"; fi
}
. ./restore.sh
"#;
    let out = tool("dash", &["-c", harness], dir.path());
    assert!(!out.status.success(), "the commands fail when the job failed");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the restore job ended: Failed"), "{stderr}");
    assert!(stderr.contains("not empty"), "the job's log on stderr: {stderr}");
    let calls = fs::read_to_string(dir.path().join("calls")).expect("calls");
    assert!(!calls.contains("service rm"), "the failed job is kept for inspection: {calls}");
}

/// The value after each occurrence of `flag` in a call.
fn values<'a>(call: &'a [String], flag: &str) -> Vec<&'a str> {
    call.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
}

#[test]
fn the_job_uses_what_the_stack_uses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = built(dir.path(), BACKUP);
    let run = restore_in(dir.path(), BACKUP, &["--into", "ha_db_restored", "--time", TIME]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.is_empty(), "nothing on stderr: {}", run.stderr);
    let shellcheck = {
        fs::write(dir.path().join("printed.sh"), &run.stdout).expect("writable");
        tool("shellcheck", &["-s", "sh", "printed.sh"], dir.path())
    };
    assert!(shellcheck.status.success(), "shellcheck:\n{}", text(&shellcheck.stdout));

    let calls = run_with_fake_docker(dir.path(), &run.stdout);
    let create = calls.iter().find(|c| c.starts_with(&["service".into(), "create".into()])).expect("a create");
    let primary = &stack["services"]["pg-primary"];
    let image = primary["image"].as_str().expect("image");
    assert!(image.contains("@sha256:"), "the stack pins its image");
    // The image and the command come last: IMAGE recover-into PGDATA time T.
    let n = create.len();
    assert_eq!(create[n - 5..], [image, "recover-into", "/var/lib/postgresql/data/pgdata", "time", TIME]);
    assert_eq!(values(create, "--mode"), ["replicated-job"]);
    assert_eq!(values(create, "--restart-condition"), ["none"]);
    assert_eq!(values(create, "--name"), ["ha_db_restore"]);
    assert_eq!(values(create, "--user"), ["999:999"]);
    assert_eq!(values(create, "--cap-drop"), ["ALL"]);
    assert_eq!(values(create, "--entrypoint"), ["/usr/local/bin/hacompile-pgbackrest"]);
    // By default on the primary's node.
    assert_eq!(values(create, "--constraint"), ["node.labels.pg.role == primary"]);
    // The configs under the names the stack gives them.
    let name = |key: &str| stack["configs"][key]["name"].as_str().expect("config name").to_owned();
    assert_eq!(
        values(create, "--config"),
        [
            format!("source={},target=/etc/pgbackrest/pgbackrest.conf,uid=0,gid=0,mode=0444", name("pgbackrest_conf")),
            format!(
                "source={},target=/usr/local/bin/hacompile-pgbackrest,uid=0,gid=0,mode=0555",
                name("pgbackrest_wrapper")
            ),
        ]
    );
    // The stack's own entry, as the services mount it (uid/gid/mode).
    let secret = primary["secrets"]
        .as_sequence()
        .expect("secrets")
        .iter()
        .find(|s| s["source"] == "backup_cipher_pass")
        .expect("the services mount the passphrase");
    assert_eq!(
        values(create, "--secret"),
        [format!(
            "source=backup_cipher_pass,target=backup_cipher_pass,uid={},gid={},mode=0{:o}",
            secret["uid"].as_str().expect("uid"),
            secret["gid"].as_str().expect("gid"),
            secret["mode"].as_u64().expect("mode")
        )],
        "only the repository's secret; none of the database's"
    );
    let env = primary["environment"].as_mapping().expect("environment");
    for key in ["PGBACKREST_CONFIG", "PGBACKREST_STANZA", "HACOMPILE_BACKUP_CIPHER_PASS_FILE"] {
        let v = env[key].as_str().expect("the service has it");
        assert!(values(create, "--env").contains(&format!("{key}={v}").as_str()), "{key}");
    }
    assert!(!values(create, "--env").iter().any(|e| e.starts_with("HACOMPILE_BACKUP_PG_")), "no database credential");
    assert_eq!(
        values(create, "--mount"),
        [
            "type=volume,source=ha_db_pgbackrest-repo,target=/var/lib/pgbackrest,volume-driver=local,volume-opt=device=:/export/pgbackrest,\"volume-opt=o=addr=10.0.0.5,nfsvers=4,rw\",volume-opt=type=nfs",
            "type=volume,source=ha_db_restored,target=/var/lib/postgresql/data",
        ]
    );
    // Then it waits, shows the log and removes the finished job.
    assert!(calls.iter().any(|c| c[..3] == ["service", "logs", "--raw"] && c[3] == "ha_db_restore"));
    assert!(calls.last().is_some_and(|c| c[..2] == ["service", "rm"]));
}

#[test]
fn latest_name_and_node() {
    let run = restore(BACKUP, &["--into", "restored", "--latest", "--node", "db-3"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("--constraint node.hostname==db-3 \\\n"), "{}", run.stdout);
    assert!(run.stdout.contains(" recover-into /var/lib/postgresql/data/pgdata latest\n"), "{}", run.stdout);
    let run = restore(BACKUP, &["--into", "restored", "--name", "before_migration-2.1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(" recover-into /var/lib/postgresql/data/pgdata name before_migration-2.1\n"));
}

#[test]
fn patroni_members_image_and_environment() {
    let spec = format!(
        "{PATRONI}\n[secrets.backup_cipher_pass]\n\n[backup]\ncipher_pass = {{ secret = \"backup_cipher_pass\" }}\n\n[backup.repository]\ntype = \"posix\"\n"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = built(dir.path(), &spec);
    let run = restore_in(dir.path(), &spec, &["--into", "restored", "--latest"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = run_with_fake_docker(dir.path(), &run.stdout);
    let create = &calls[0];
    let member = &stack["services"]["pg-1"];
    assert_eq!(create[create.len() - 4], member["image"].as_str().expect("image"), "the members' image");
    let stanza = member["environment"]["PGBACKREST_STANZA"].as_str().expect("stanza");
    assert!(values(create, "--env").contains(&format!("PGBACKREST_STANZA={stanza}").as_str()));
    let constraints: Vec<&str> = member["deploy"]["placement"]["constraints"]
        .as_sequence()
        .expect("c")
        .iter()
        .map(|c| c.as_str().expect("s"))
        .collect();
    assert_eq!(values(create, "--constraint"), constraints, "the first member's node");
    assert_eq!(values(create, "--mount")[0], "type=volume,source=ha_db_pgbackrest-repo,target=/var/lib/pgbackrest");
}

#[test]
fn s3_keys_are_mounted_as_the_services_mount_them() {
    let posix = "[backup.repository]\ntype = \"posix\"\nvolume = \"pgbackrest-repo\"\npath = \"/var/lib/pgbackrest\"\nnfs = { address = \"10.0.0.5\", export = \"/export/pgbackrest\" }\n";
    assert!(BACKUP.contains(posix));
    let spec = BACKUP.replace(
        posix,
        "[backup.repository]\ntype = \"s3\"\nbucket = \"b\"\nendpoint = \"s3.example.com\"\nregion = \"eu\"\nkey = { secret = \"s3_key\" }\nkey_secret = { secret = \"s3_key_secret\" }\n",
    ) + "\n[secrets.s3_key]\n[secrets.s3_key_secret]\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let run = restore_in(dir.path(), &spec, &["--into", "restored", "--latest"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = run_with_fake_docker(dir.path(), &run.stdout);
    let secrets = values(&calls[0], "--secret");
    assert_eq!(secrets.len(), 3, "{secrets:?}");
    assert!(secrets[1..].iter().all(|s| s.ends_with(",uid=999,gid=999,mode=0400")), "{secrets:?}");
    let env = values(&calls[0], "--env");
    assert!(env.contains(&"HACOMPILE_BACKUP_S3_KEY_FILE=/run/secrets/s3_key"), "{env:?}");
    assert_eq!(values(&calls[0], "--mount").len(), 1, "no repository volume for S3");
}

#[test]
fn hostile_spec_values_stay_one_word() {
    // Values validation lets through that a shell would read as code.
    let path = "/srv/pg;touch pwned-path&(x)|`id`*";
    let path = path.replace(' ', ""); // spaces are refused by validation
    let opts = "nfsvers=4,rw;touch\"pwned-opts\"`id`&";
    let spec = BACKUP.replace("path = \"/var/lib/pgbackrest\"", &format!("path = \"{path}\"")).replace(
        "nfs = { address = \"10.0.0.5\", export = \"/export/pgbackrest\" }",
        &format!("nfs = {{ address = \"10.0.0.5\", export = \"/export/pgbackrest\", options = '{opts}' }}"),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let run = restore_in(dir.path(), &spec, &["--into", "restored", "--latest"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    fs::write(dir.path().join("printed.sh"), &run.stdout).expect("writable");
    let sc = tool("shellcheck", &["-s", "sh", "printed.sh"], dir.path());
    assert!(sc.status.success(), "shellcheck:\n{}", text(&sc.stdout));
    let calls = run_with_fake_docker(dir.path(), &run.stdout);
    let mount = values(&calls[0], "--mount")[0].to_owned();
    // docker reads the value as CSV: the fields with `,` or `"` are quoted.
    let expected = format!(
        "type=volume,source=ha_db_pgbackrest-repo,target={path},volume-driver=local,volume-opt=device=:/export/pgbackrest,\"volume-opt=o=addr=10.0.0.5,{}\",volume-opt=type=nfs",
        opts.replace('"', "\"\"")
    );
    assert_eq!(mount, expected);
    let made: Vec<_> = fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("e").file_name()).collect();
    assert!(!made.iter().any(|n| n.to_string_lossy().starts_with("pwned")), "nothing ran: {made:?}");
}

#[test]
fn a_volume_of_the_stack_is_refused() {
    for (into, needle) in [
        ("pg-primary-data", "[postgres.primary]"),
        ("ha_db_pg-primary-data", "[postgres.primary]"),
        ("ha_db_pg-replica-1-data", "[[postgres.replicas]]"),
        ("pgbackrest-repo", "\"pgbackrest-repo\""),
        ("ha_db_pgbackrest-repo", "\"pgbackrest-repo\""),
    ] {
        let run = restore(BACKUP, &["--into", into, "--latest"]);
        let loc = locate(BACKUP, needle);
        assert_error(
            &run,
            "restore::stack-volume",
            &format!("`--into {into}` names the volume"),
            &loc,
            "never goes over the running cluster",
        );
    }
}

#[test]
fn a_spec_without_backup_is_refused() {
    let run = restore(PLAIN, &["--into", "restored", "--latest"]);
    assert_error(
        &run,
        "restore::no-backup",
        "this spec has no `[backup]`",
        &locate(PLAIN, "\"ha_db\""),
        "add a `[backup]` table",
    );
}

#[test]
fn bad_targets_nodes_and_volumes_are_refused_before_anything_is_printed() {
    let cases: &[(&[&str], &str)] = &[
        (&["--into", "r", "--time", "2026-11-26 17:54:10"], "has no zone"),
        (&["--into", "r", "--time", "2026-02-29 00:00:00+00"], "out of range"),
        (&["--into", "r", "--time", "2026-11-26T17:54:10+00"], "YYYY-MM-DD HH:MM:SS"),
        (&["--into", "r", "--time", "2026-11-26 17:54:10+00'; touch pwned; echo '"], "YYYY-MM-DD"),
        (&["--into", "r", "--time", "2026-11-26 17:54:10+00$(touch pwned)"], "YYYY-MM-DD"),
        (&["--into", "r", "--time", "2026-11-26 17:54:10.1234567+00"], "1 to 6 digits"),
        (&["--into", "r", "--time", "now"], "YYYY-MM-DD"),
        (&["--into", "r", "--name", "a'b"], "not a restore point name"),
        (&["--into", "r", "--name", &"n".repeat(64)], "at most 63"),
        (&["--into", "r", "--name", "x\n--detach"], "not a restore point name"),
        (&["--into", "r", "--latest", "--node", "db-1 --detach"], "not a node's hostname"),
        (&["--into", "r", "--latest", "--node=-db"], "not a node's hostname"),
        (&["--into", "vol;rm -rf /", "--latest"], "not a volume name"),
        (&["--into", "\u{1b}[31mred", "--latest"], "not a volume name"),
        (&["--into", &"v".repeat(64), "--latest"], "not a volume name"),
    ];
    for (args, message) in cases {
        let run = restore(BACKUP, args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: nothing printed");
        assert!(run.stderr.contains(message), "{args:?}: {message:?} in\n{}", run.stderr);
        assert!(run.stderr.contains("help:"), "{args:?}: a hint\n{}", run.stderr);
        assert!(!run.stderr.contains('\u{1b}'), "{args:?}: no raw escape reaches the terminal");
    }
    // One target, exactly.
    for args in [&["--into", "r"][..], &["--into", "r", "--latest", "--time", TIME]] {
        let run = restore(BACKUP, args);
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn times_postgresql_reads_the_same_everywhere_are_accepted() {
    for t in ["2026-11-26 17:54:10+00", "2024-02-29 23:59:59.5-08", "2026-01-01 00:00:00+05:30", "2026-11-26 17:54:10Z"]
    {
        let run = restore(BACKUP, &["--into", "r", "--time", t]);
        assert_eq!(run.code, 0, "{t}: {}", run.stderr);
    }
}
