//! A bounded fuzz run (issue 9) over the YAML reader, the spec loader and
//! every renderer: stacks and specs written in many forms, each with a
//! credential planted in a place a credential is written (block, list and
//! flow environments, URLs, flags, exec-form lists, block scalars, anchors,
//! comments that repeat it, TOML strings, numbers, arrays, multi-line
//! strings), then damaged at random elsewhere (garbage, controls, line
//! separators, invalid UTF-8, long lines, broken indentation). For every
//! case: no panic, bounded time, and the planted credential appears in no
//! output: lint's human, JSON, SARIF and GitHub reports, and build's
//! rendered diagnostics.
//!
//! The budget is fixed so CI stays quick; `HACOMPILE_FUZZ_CASES=N` and
//! `HACOMPILE_FUZZ_SEED=S` run a longer or another campaign.

use std::time::{Duration, Instant};

use hacompile_lint::{Config, FileKind, Options};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const EXAMPLE: &str = include_str!("../examples/ha-postgres.toml");
/// The patroni topology's example: its own credential places (the REST API).
const PATRONI_EXAMPLE: &str = include_str!("../examples/ha-patroni.toml");
/// Generous for a debug build; hostile inputs took minutes before the fixes.
const PER_CASE: Duration = Duration::from_secs(3);

fn cases() -> u64 {
    std::env::var("HACOMPILE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400)
}

fn rng(salt: u64) -> ChaCha8Rng {
    let seed = std::env::var("HACOMPILE_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(9);
    ChaCha8Rng::seed_from_u64(seed ^ salt)
}

fn secret(rng: &mut ChaCha8Rng) -> String {
    const ALNUM: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let body: String = (0..rng.random_range(8..20)).map(|_| *ALNUM.choose(rng).expect("non-empty") as char).collect();
    format!("Qz{body}")
}

const KEYS: &[&str] = &[
    "POSTGRES_PASSWORD",
    "DB_PASS",
    "REDIS_PASSWORD",
    "API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "client_secret",
    "PGPASSWORD",
    "MYSQL_ROOT_PASSWORD",
    "x-db-password",
];

/// Lines of a service with the credential planted, and which of them must
/// not be damaged (they carry the credential or the key that names it).
fn planted_service(rng: &mut ChaCha8Rng, i: usize, s: &str) -> (Vec<String>, Vec<bool>) {
    let key = *KEYS.choose(rng).expect("keys");
    let q = *["", "\"", "'"].choose(rng).expect("quotes");
    let mut lines = vec![format!("  svc{i}:"), format!("    image: app{i}:1.{i}")];
    let mut protected = vec![false, false];
    let mut add = |l: String, p: bool| {
        lines.push(l);
        protected.push(p);
    };
    match rng.random_range(0..15) {
        0 => {
            add("    environment:".into(), false);
            add(format!("      {key}: {q}{s}{q}"), true);
        }
        1 => {
            add("    environment:".into(), false);
            add(format!("      - {q}{key}={s}{q}"), true);
        }
        2 => add(format!("    environment: {{A: b, {key}: {q}{s}{q}, C: d}}"), true),
        3 => {
            add("    environment:".into(), false);
            add(format!("      DATABASE_URL: {q}postgres://app:{s}@db:5432/app{q}"), true);
        }
        4 => add(format!("    command: redis-server --requirepass {s} --port 6379"), true),
        5 => {
            add(format!("    healthcheck: {{test: [\"CMD\", \"mysqladmin\", \"ping\", \"-uroot\", \"-p{s}\"]}}"), true)
        }
        6 => add(format!("    command: [\"--password\", \"{s}\"]"), true),
        7 => {
            add("    environment:".into(), false);
            add(format!("      {key}: |"), true);
            add(format!("        {s}"), true);
        }
        8 => {
            add("    environment:".into(), false);
            add(format!("      {key}: {s} # the default is {s}"), true);
        }
        9 => add(format!("    command: redis-cli -a {s} ping"), true),
        10 => add(format!("    labels: {{\"traefik.http.middlewares.auth.basicauth.password\": \"{s}\"}}"), true),
        // A URL whose user is the password too: both places hidden.
        11 => {
            add("    environment:".into(), false);
            add(format!("      DATABASE_URL: postgres://{s}:{s}@db/app"), true);
        }
        // Through an anchor and a merge key, reported where it is written.
        12 => {
            add(format!("    x-env: &env{i} {{{key}: {q}{s}{q}}}"), true);
            add(format!("    environment: {{<<: *env{i}, A: b}}"), false);
        }
        // The value repeated where no credential is expected.
        13 => {
            add("    environment:".into(), false);
            add(format!("      {key}: {s}"), true);
            add(format!("    labels: {{note: \"copied from {s}\"}}"), true);
        }
        _ => {
            add("    environment:".into(), false);
            add(format!("      JDBC_URL: jdbc:postgresql://db/app?user=app&password={s}"), true);
        }
    }
    if rng.random_bool(0.5) {
        add("    privileged: true".into(), false);
    }
    (lines, protected)
}

/// Damage to a line that carries no credential.
fn damage(rng: &mut ChaCha8Rng, line: &str) -> Vec<u8> {
    let mut b = line.as_bytes().to_vec();
    let at = if b.is_empty() { 0 } else { rng.random_range(0..b.len()) };
    let junk: &[&[u8]] = &[
        b"\xff\xfe",
        b"\x1b[2J",
        "\u{2028}".as_bytes(),
        "\u{202e}".as_bytes(),
        b"\t",
        b": : :",
        b"[{",
        b"}]",
        b"&a *a",
        b"<<: *nowhere",
        b"\"",
        b"\r",
        b"\x00",
        b"# comment",
        b"- - -",
    ];
    match rng.random_range(0..4) {
        0 => {
            let j = junk.choose(rng).expect("junk");
            b.splice(at..at, j.iter().copied());
        }
        1 => {
            b.truncate(at);
        }
        2 => {
            let pad = rng.random_range(1..80_000);
            b.extend(std::iter::repeat_n(b'x', pad));
        }
        _ => {
            b.splice(0..0, std::iter::repeat_n(b' ', rng.random_range(1..9)));
        }
    }
    b
}

fn lint_all_formats(name: &str, bytes: Vec<u8>, kind: FileKind) -> String {
    let result = hacompile_lint::lint_file(name, None, bytes, kind, &Config::default(), &Options::default(), None);
    let report = hacompile_lint::Report { files: vec![result], skipped: Vec::new() };
    let o = hacompile_lint::output::human(&report, false)
        + &hacompile_lint::output::json(&report)
        + &hacompile_lint::output::sarif(&report)
        + &hacompile_lint::output::github(&report);
    std::mem::forget(report);
    o
}

fn check(case: u64, what: &str, secrets: &[String], input: &[u8], output: &str, took: Duration) {
    assert!(took < PER_CASE, "case {case} ({what}) took {took:?}:\n{}", String::from_utf8_lossy(input));
    for s in secrets {
        assert!(
            !output.contains(s.as_str()),
            "case {case} ({what}) printed the planted {s:?}\ninput:\n{}\noutput:\n{output}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn stacks_in_many_forms_never_show_a_planted_credential() {
    let mut rng = rng(1);
    for case in 0..cases() {
        let mut lines: Vec<String> = vec!["version: \"3.8\"".into(), "services:".into()];
        let mut protected = vec![false, false];
        let mut secrets = Vec::new();
        for i in 0..rng.random_range(1..5) {
            let s = secret(&mut rng);
            let (l, p) = planted_service(&mut rng, i, &s);
            lines.extend(l);
            protected.extend(p);
            secrets.push(s);
        }
        let mut bytes = Vec::new();
        let damaged = rng.random_range(0..3);
        let victims: Vec<usize> = (0..damaged).map(|_| rng.random_range(0..lines.len())).collect();
        for (n, line) in lines.iter().enumerate() {
            if victims.contains(&n) && !protected[n] {
                bytes.extend(damage(&mut rng, line));
            } else {
                bytes.extend(line.as_bytes());
            }
            bytes.extend(if rng.random_bool(0.1) { &b"\r\n"[..] } else { &b"\n"[..] });
        }
        let start = Instant::now();
        let out = std::panic::catch_unwind(|| lint_all_formats("docker-stack.yml", bytes.clone(), FileKind::Stack))
            .unwrap_or_else(|_| panic!("case {case} panicked on:\n{}", String::from_utf8_lossy(&bytes)));
        check(case, "stack", &secrets, &bytes, &out, start.elapsed());
    }
}

fn planted_spec(rng: &mut ChaCha8Rng, s: &str) -> String {
    let digits: String = s.bytes().map(|b| char::from(b'1' + b % 9)).collect();
    let value = match rng.random_range(0..7) {
        0 => format!("\"{s}\""),
        1 => digits,
        2 => format!("[\"{s}\"]"),
        3 => format!("{{ secret = \"postgres_password\", value = \"{s}\" }}"),
        4 => format!("\"\"\"\n{s}\n\"\"\""),
        5 => format!("'''\nfirst line\n{s}\n'''"),
        _ => format!("'{s}'"),
    };
    let (base, from) = *[
        (EXAMPLE, "password = { secret = \"postgres_password\" }"),
        (PATRONI_EXAMPLE, "password = { secret = \"postgres_password\" }"),
        (PATRONI_EXAMPLE, "password = { secret = \"patroni_api_password\" }"),
    ]
    .choose(rng)
    .expect("bases");
    assert!(base.contains(from), "{from}");
    let mut spec = base.replacen(from, &format!("password = {value}"), 1);
    if rng.random_bool(0.3) {
        spec = spec.replacen("user = { secret = \"postgres_user\" }", "user = \"alice\"", 1);
    }
    spec
}

#[test]
fn specs_in_many_forms_never_show_a_planted_credential() {
    let mut rng = rng(2);
    for case in 0..cases() / 2 {
        let s = secret(&mut rng);
        let digits: String = s.bytes().map(|b| char::from(b'1' + b % 9)).collect();
        let spec = planted_spec(&mut rng, &s);
        // Damage lines that carry no credential.
        let lines: Vec<&str> = spec.lines().collect();
        let mut bytes = Vec::new();
        let victims: Vec<usize> = (0..rng.random_range(0..3)).map(|_| rng.random_range(0..lines.len())).collect();
        let mut in_multiline = false;
        for (n, line) in lines.iter().enumerate() {
            let opens = line.matches("\"\"\"").count() + line.matches("'''").count();
            let carries = line.contains(&s) || line.contains(&digits) || line.starts_with("password") || in_multiline;
            if opens % 2 == 1 {
                in_multiline = !in_multiline;
            }
            if victims.contains(&n) && !carries && opens == 0 {
                bytes.extend(damage(&mut rng, line));
            } else {
                bytes.extend(line.as_bytes());
            }
            bytes.push(b'\n');
        }
        let secrets = [s.clone(), digits.clone()];
        let start = Instant::now();
        // The loader and its rendered diagnostics, as `build` prints them.
        let rendered = std::panic::catch_unwind(|| {
            let mut out = String::new();
            let source = match hacompile_spec::SourceFile::from_bytes("spec.toml".into(), bytes.clone()) {
                Ok(src) => src,
                Err(e) => return render(&e, out),
            };
            if let Err(e) = hacompile_spec::load(&source) {
                out = render(&e, out);
            }
            out
        })
        .unwrap_or_else(|_| panic!("case {case} panicked on:\n{}", String::from_utf8_lossy(&bytes)));
        check(case, "build", &secrets, &bytes, &rendered, start.elapsed());
        let start = Instant::now();
        let out = std::panic::catch_unwind(|| lint_all_formats("spec.toml", bytes.clone(), FileKind::Spec))
            .unwrap_or_else(|_| panic!("case {case} panicked on:\n{}", String::from_utf8_lossy(&bytes)));
        check(case, "lint spec", &secrets, &bytes, &out, start.elapsed());
    }
}

fn render(errors: &hacompile_spec::SpecErrors, mut out: String) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor()).with_context_lines(2);
    for d in &errors.diagnostics {
        handler.render_report(&mut out, d).expect("renders");
    }
    out
}
