//! Helpers shared by the end-to-end tests: the binary, temp dirs, and the
//! real tools (docker CLI, haproxy). A missing tool fails the test; nothing
//! is skipped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub mod cluster;
pub mod exporter;
pub mod patroni;
pub mod registry;
pub mod s3;
pub mod traffic;

/// A userlist like the one the stats secret holds (hash of "test").
pub const TEST_USERLIST: &str = "userlist hacompile_stats\n    user admin password $6$hacompiletest$Vn6n8yQVoegMr5ghDdf0fohwEe9YkTldD5jkNXPCYZsNd54bDRUHiHMTDw1iIZEyJUKUfcSbhR02fYe9J0K0y0\n";

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hacompile"));
    c.current_dir(ROOT).env("NO_COLOR", "1");
    c
}

/// Writes a lock for the bundled examples into `dir`: examples/hacompile.lock
/// plus placeholder entries for the images no registry serves offline
/// (tests/fixtures/placeholder-images.lock). Returns its path.
pub fn examples_lock(dir: &Path) -> PathBuf {
    let mut lock =
        hacompile_image::LockFile::parse(include_str!("../../examples/hacompile.lock")).expect("example lock");
    let extra =
        hacompile_image::LockFile::parse(include_str!("../fixtures/placeholder-images.lock")).expect("fixture lock");
    for entry in extra.entries() {
        lock.insert(entry.clone());
    }
    let path = dir.join("examples.lock");
    std::fs::write(&path, lock.render()).expect("writable");
    path
}

pub fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// Runs a tool and fails the test, with its output, if it cannot be started.
pub fn tool(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("`{program}` must be installed for this test (see README: tests/setup.sh): {e}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `docker stack config -c FILE`: the docker CLI's own parser and schema.
pub fn docker_stack_config(dir: &Path) -> Result<String, String> {
    let out = tool("docker", &["stack", "config", "-c", "docker-stack.yml"], dir);
    if out.status.success() { Ok(text(&out.stdout)) } else { Err(text(&out.stderr)) }
}

/// `haproxy -c` on the compiled config plus a userlist file like the stats
/// secret. Warnings count as failures.
pub fn haproxy_check(dir: &Path) -> Result<(), String> {
    let cfg = std::fs::read_to_string(dir.join("haproxy.cfg")).expect("haproxy.cfg was written");
    let mut args = vec!["-c", "-f", "haproxy.cfg"];
    if cfg.contains("http_auth(hacompile_stats)") {
        std::fs::write(dir.join("userlist.cfg"), TEST_USERLIST).expect("temp dir writable");
        args.extend(["-f", "userlist.cfg"]);
    }
    let out = tool("haproxy", &args, dir);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    if out.status.success() && !all.contains("WARNING") { Ok(()) } else { Err(all) }
}

/// Every `file:` the stack refers to exists beside it.
pub fn referenced_files_exist(dir: &Path) -> Result<(), String> {
    let stack = std::fs::read_to_string(dir.join("docker-stack.yml")).expect("stack written");
    for line in stack.lines() {
        if let Some(path) = line.trim().strip_prefix("file: ") {
            let path = path.trim_matches(['\'', '"']);
            if !dir.join(path).is_file() {
                return Err(format!("the stack refers to {path}, which was not written"));
            }
        }
    }
    Ok(())
}

/// What a run of the binary printed and how it ended: for the error tests.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(out: &Output) -> Run {
        Run { code: out.status.code().unwrap_or(-1), stdout: text(&out.stdout), stderr: text(&out.stderr) }
    }
}

/// `spec.toml:LINE:COL` of the first occurrence of `needle` in `text`.
pub fn locate(text: &str, needle: &str) -> String {
    locate_in(text, needle, needle)
}

/// The location of `inner` inside the first occurrence of `context`.
pub fn locate_in(text: &str, context: &str, inner: &str) -> String {
    let start = text.find(context).unwrap_or_else(|| panic!("{context:?} in spec"));
    let at = start + context.find(inner).unwrap_or_else(|| panic!("{inner:?} in {context:?}"));
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("spec.toml:{line}:{col}")
}

/// Exit 2, nothing on stdout, and each part (code, message, location, help) on stderr.
pub fn assert_error(run: &Run, code: &str, message: &str, location: &str, help: &str) {
    assert_eq!(run.code, 2, "exit code 2; stderr:\n{}", run.stderr);
    assert!(run.stdout.is_empty(), "nothing on stdout on error");
    for part in [code, message, location, help] {
        assert!(run.stderr.contains(part), "stderr should contain {part:?}:\n{}", run.stderr);
    }
}
