//! Shell completions and the man page come from the CLI definition itself:
//! every subcommand and flag the parser knows is in them, and the real
//! tools read them (bash parses the completion script, man renders the page).

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::*;

const SUBCOMMANDS: [&str; 10] =
    ["build", "dockerfile", "init", "lint", "explain", "lock", "pin", "schema", "completions", "man"];

#[test]
fn completions_name_every_subcommand_and_bash_parses_them() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = bin().args(["completions", shell]).output().expect("runs");
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: completes `{sub}`");
        }
        assert!(script.contains("out-dir") && script.contains("fail-on"), "{shell}: completes flags");
    }
    let bash = bin().args(["completions", "bash"]).output().expect("runs");
    let check = tool("bash", &["-n", "-c", &text(&bash.stdout)], std::path::Path::new(ROOT));
    assert!(check.status.success(), "bash -n: {}", text(&check.stderr));
    let unknown = bin().args(["completions", "tcsh"]).output().expect("runs");
    assert_eq!(unknown.status.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn the_man_page_renders_with_every_subcommand() {
    let page = bin().arg("man").output().expect("runs");
    assert!(page.status.success(), "{}", text(&page.stderr));
    let mut man = Command::new("man")
        .args(["-l", "-"])
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("man runs (tests/setup.sh installs man-db)");
    man.stdin.take().expect("stdin").write_all(&page.stdout).expect("writes");
    let out = man.wait_with_output().expect("man ends");
    assert!(out.status.success(), "man: {}", text(&out.stderr));
    // grotty's overstrike bold (`N\bN`) off, as `col -b` does.
    let raw: Vec<char> = text(&out.stdout).chars().collect();
    let mut rendered = String::new();
    let mut i = 0;
    while i < raw.len() {
        if i + 1 < raw.len() && raw[i + 1] == '\u{8}' {
            i += 2;
            continue;
        }
        rendered.push(raw[i]);
        i += 1;
    }
    assert!(rendered.contains("hacompile(1)"), "{rendered}");
    for sub in SUBCOMMANDS {
        assert!(rendered.contains(&format!("HACOMPILE {}", sub.to_uppercase())), "a section for {sub}:\n{rendered}");
    }
    assert!(rendered.contains("--out-dir"), "options of build are documented");
    assert!(!rendered.contains("\\f"), "no raw roff escapes left");
}
