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
