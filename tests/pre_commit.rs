//! The real pre-commit (PyPI, pinned in tests/setup.sh) runs this repo's hook
//! in a temporary git repository: a staged stack file with a plaintext
//! password fails the commit; once fixed, the commit goes through.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use support::*;

fn run(dir: &Path, program: &str, args: &[&str], path_env: &str, home: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PATH", path_env)
        .env("PRE_COMMIT_HOME", home)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("`{program}` must be installed (tests/setup.sh): {e}"))
}

fn ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what}:\n{}{}", text(&o.stdout), text(&o.stderr));
}

#[test]
fn the_hook_fails_a_commit_with_a_plaintext_password_and_passes_once_fixed() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path().join("pre-commit-home");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_hacompile")).parent().expect("bin dir").to_owned();
    let venv_bin = Path::new(ROOT).join("target/test-venv/bin");
    let path_env =
        format!("{}:{}:{}", bin_dir.display(), venv_bin.display(), std::env::var("PATH").unwrap_or_default());
    let pre_commit = venv_bin.join("pre-commit").display().to_string();

    // A hook repository holding this repo's .pre-commit-hooks.yaml.
    let hooks = tmp.path().join("hooks");
    fs::create_dir_all(&hooks).expect("mkdir");
    fs::copy(Path::new(ROOT).join(".pre-commit-hooks.yaml"), hooks.join(".pre-commit-hooks.yaml")).expect("copy");
    for args in [&["init", "-q"][..], &["add", "."], &["commit", "-q", "-m", "hooks"]] {
        ok(&run(&hooks, "git", args, &path_env, &home), "hook repo");
    }
    let rev = text(&run(&hooks, "git", &["rev-parse", "HEAD"], &path_env, &home).stdout).trim().to_owned();

    // The user's repository, with the stack file in a nested folder.
    let repo = tmp.path().join("repo");
    fs::create_dir_all(repo.join("deploy/prod")).expect("mkdir");
    fs::write(
        repo.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: hacompile-lint-system\n",
            hooks.display()
        ),
    )
    .expect("write");
    ok(&run(&repo, "git", &["init", "-q"], &path_env, &home), "git init");
    ok(&run(&repo, &pre_commit, &["install"], &path_env, &home), "pre-commit install");

    let clean = fs::read_to_string(Path::new(ROOT).join("tests/lint/rules/HC401/clean.yml")).expect("clean fixture");
    let leaky =
        clean.replace("POSTGRES_PASSWORD_FILE: /run/secrets/postgres_password", "POSTGRES_PASSWORD: hunter2-in-git");
    assert_ne!(clean, leaky);
    let stack = repo.join("deploy/prod/docker-stack.yml");
    fs::write(&stack, &leaky).expect("write");
    ok(&run(&repo, "git", &["add", "."], &path_env, &home), "git add");
    let refused = run(&repo, "git", &["commit", "-m", "add stack"], &path_env, &home);
    let out = format!("{}{}", text(&refused.stdout), text(&refused.stderr));
    assert!(!refused.status.success(), "the commit must be refused:\n{out}");
    assert!(out.contains("HC101") && out.contains("deploy/prod/docker-stack.yml"), "{out}");
    assert!(!out.contains("hunter2-in-git"), "the hook output never shows the password:\n{out}");

    fs::write(&stack, &clean).expect("write");
    ok(&run(&repo, "git", &["add", "."], &path_env, &home), "git add");
    let accepted = run(&repo, "git", &["commit", "-m", "add stack"], &path_env, &home);
    ok(&accepted, "the fixed commit goes through");
    let log = run(&repo, "git", &["log", "--oneline"], &path_env, &home);
    assert_eq!(text(&log.stdout).lines().count(), 1);
}

#[test]
fn the_hook_file_pattern_matches_stack_compose_spec_and_haproxy_files_in_any_folder() {
    let hooks = fs::read_to_string(Path::new(ROOT).join(".pre-commit-hooks.yaml")).expect("hooks file");
    let pattern =
        hooks.lines().find_map(|l| l.trim().strip_prefix("files: ")).expect("a files pattern").trim_matches('\'');
    let exclude =
        hooks.lines().find_map(|l| l.trim().strip_prefix("exclude: ")).expect("an exclude pattern").trim_matches('\'');
    let files = regex_lite(pattern);
    let excluded = regex_lite(exclude);
    for name in [
        "docker-stack.yml",
        "deploy/prod/docker-stack.prod.yaml",
        "a/b/my-stack.yml",
        "compose.yaml",
        "x/docker-compose.override.yml",
        "clusters/db.toml",
        "etc/haproxy.cfg",
    ] {
        assert!(files(name) && !excluded(name), "{name} should be linted");
    }
    for name in ["README.md", "values.yml", "Cargo.toml", "sub/Cargo.toml", ".hacompile.toml", "pyproject.toml"] {
        assert!(!files(name) || excluded(name), "{name} should not be linted");
    }
}

/// pre-commit matches with Python's `re.search`; Rust's regex agrees for these patterns.
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    let re = regex::Regex::new(pattern).expect("valid pattern");
    move |s| re.is_match(s)
}
