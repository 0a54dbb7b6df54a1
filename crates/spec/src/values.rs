//! Checks of the small languages inside spec values: Go durations, docker
//! byte sizes, swarm placement constraints, CIDRs, names.

pub use hacompile_boundary::mask::is_credential_key;

/// The closest candidate to a misspelt word, if it is close enough.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Parses a Go duration (`90s`, `1m30s`, `2h`), the syntax swarm reads;
/// returns it in milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, &'static str> {
    if text.is_empty() {
        return Err("a duration cannot be empty");
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err("expected a number, e.g. `30s`, `2m` or `1m30s`");
        }
        let n: u64 = rest[..digits].parse().map_err(|_| "the number is too large")?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err("a duration needs a unit: ms, s, m or h (e.g. `30s`)"),
            _ => return Err("unknown unit; use ms, s, m or h (e.g. `30s`)"),
        };
        rest = &rest[unit_len..];
        total = n.checked_mul(factor).and_then(|v| total.checked_add(v)).ok_or("the duration is too large")?;
    }
    Ok(total)
}

/// Parses a docker byte size (`512m`, `2g`, `1.5gb`, `1048576`); returns bytes.
pub fn parse_bytes(text: &str) -> Result<u64, &'static str> {
    let lower = text.to_ascii_lowercase();
    let split = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    // Docker's grammar is `\d+(\.\d+)?`; Rust's float parser would also take
    // `.5`, `5.` and `1e3`, which older docker releases refuse.
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = match num.split_once('.') {
        Some((int, frac)) => plain(int) && plain(frac),
        None => plain(num),
    };
    if !well_formed {
        return Err("expected a size such as `512m` or `2g`");
    }
    let n: f64 = num.parse().map_err(|_| "expected a size such as `512m` or `2g`")?;
    let factor: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err("unknown unit; use b, k, m or g (e.g. `512m`)"),
    };
    let bytes = n * factor;
    if !(1.0..1e18).contains(&bytes) {
        return Err("the size must be at least one byte");
    }
    Ok(bytes as u64)
}

/// Checks a swarm placement constraint: `<attribute> ==|!= <value>`.
pub fn check_constraint(text: &str) -> Result<(), String> {
    let (op_at, op) = match (text.find("=="), text.find("!=")) {
        (Some(i), None) => (i, "=="),
        (None, Some(i)) => (i, "!="),
        (Some(_), Some(_)) => return Err("a constraint has one operator".into()),
        (None, None) => {
            return Err("a constraint is `<attribute> == <value>` or `<attribute> != <value>`".into());
        }
    };
    let key = text[..op_at].trim();
    let value = text[op_at + op.len()..].trim();
    if value.is_empty() {
        return Err("the constraint has no value after the operator".into());
    }
    if value.contains("==") || value.contains("!=") {
        return Err("a constraint has one operator".into());
    }
    // Swarm's own patterns (swarmkit manager/constraint), less what the docker
    // CLI would act on first: `$` starts a variable it substitutes, and any
    // whitespace but a space is a control character.
    if value.contains('$') {
        return Err("`$` in a constraint is read by docker as a variable and replaced before swarm sees it".into());
    }
    let value_ok = value.bytes().all(|b| b.is_ascii_alphanumeric() || b" :-_.*()?+[]\\^|/".contains(&b));
    if !value_ok {
        return Err("the value may hold letters, digits, spaces and `: - _ . * ( ) ? + [ ] \\ ^ | /` only".into());
    }
    let key_ok = key.len() >= 2
        && key.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !key_ok {
        return Err(format!("`{key}` is not an attribute swarm accepts: letters, digits, `-`, `_`, `.`"));
    }
    const FIXED: &[&str] = &["node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch"];
    let label = key.strip_prefix("node.labels.").or_else(|| key.strip_prefix("engine.labels."));
    match label {
        Some(l) if !l.is_empty() && !l.contains(char::is_whitespace) => {}
        Some(_) => return Err(format!("`{key}` needs a label name")),
        None if FIXED.contains(&key) => {}
        None => {
            return Err(format!(
                "unknown attribute `{key}`; swarm knows node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name>, engine.labels.<name>"
            ));
        }
    }
    if key == "node.role" && !matches!(value, "manager" | "worker") {
        return Err("node.role is `manager` or `worker`".into());
    }
    Ok(())
}

/// Checks an IPv4 or IPv6 CIDR such as `10.0.0.0/8`.
pub fn check_cidr(text: &str) -> Result<(), &'static str> {
    let (addr, prefix) = text.split_once('/').ok_or("expected a CIDR such as `10.0.0.0/8`")?;
    // Digits only: `u8::from_str` would also take `+8`.
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the prefix length is not a number");
    }
    let prefix: u8 = prefix.parse().map_err(|_| "the prefix length is not a number")?;
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) if prefix <= 32 => Ok(()),
        Ok(std::net::IpAddr::V6(_)) if prefix <= 128 => Ok(()),
        Ok(_) => Err("the prefix length is too long for this address"),
        Err(_) => Err("not an IP address"),
    }
}

/// A backup slot: `"<days> HH:MM"` (UTC), days `daily` or a comma list of
/// `mon`..`sun`. Returns the days as `date +%u` numbers (1 = Monday) and
/// the time as `HH:MM`.
pub fn parse_schedule(text: &str) -> Result<(Vec<u8>, String), &'static str> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    const WHY: &str = "write `<days> HH:MM` in UTC: days `daily` or a comma list of mon..sun, e.g. `sun 01:00`";
    let (days, time) = text.split_once(' ').ok_or(WHY)?;
    let mut out: Vec<u8> = if days == "daily" {
        (1..=7).collect()
    } else {
        let mut v = Vec::new();
        for d in days.split(',') {
            let n = DAYS
                .iter()
                .position(|x| *x == d)
                .ok_or("unknown day; use mon, tue, wed, thu, fri, sat, sun or daily")?;
            v.push(n as u8 + 1);
        }
        v
    };
    out.sort_unstable();
    out.dedup();
    let (h, m) = time.split_once(':').ok_or(WHY)?;
    let two = |s: &str, max: u32| {
        s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u32>().is_ok_and(|n| n <= max)
    };
    if !two(h, 23) || !two(m, 59) {
        return Err("the time is `HH:MM`, 00:00 to 23:59 (UTC)");
    }
    Ok((out, time.to_owned()))
}

/// HAProxy's largest timer: 2^31-1 ms, about 24.8 days (`timer overflow` above).
pub const HAPROXY_MAX_TIMER_MS: u64 = 2_147_483_647;
/// HAProxy reads `fall` and `rise` as C ints; larger values wrap and are refused.
pub const HAPROXY_MAX_COUNT: u32 = 2_147_483_647;
/// HAProxy needs two file descriptors per connection and will not start when
/// it cannot raise its limit that far; docker's default limit is 1048576.
pub const HAPROXY_MAX_MAXCONN: u32 = 500_000;
/// Docker reads durations with Go's `time.ParseDuration`: int64 nanoseconds,
/// so at most 2562047h47m16.854s in whole milliseconds.
pub const DOCKER_MAX_DURATION_MS: u64 = i64::MAX as u64 / 1_000_000;
/// The docker daemon refuses a memory limit or reservation below 6 MiB.
pub const DOCKER_MIN_MEMORY: u64 = 6 * 1024 * 1024;
/// PostgreSQL's `wal_keep_size` is an int of megabytes.
pub const PG_MAX_WAL_KEEP_MB: u64 = i32::MAX as u64;
/// Swarm config and secret names: at most 64 characters.
pub const SWARM_MAX_CONFIG_NAME: usize = 64;
/// Swarm service names are DNS labels: at most 63 characters.
pub const SWARM_MAX_SERVICE_NAME: usize = 63;
/// The longest stack name whose swarm config names fit: the longest is
/// `<stack>_pg_replica_entrypoint_<12 hex digits>`, and swarm allows 64
/// (a test in the compile crate checks every name it makes against both limits).
pub const MAX_STACK_NAME: usize = SWARM_MAX_CONFIG_NAME - "_pg_replica_entrypoint_".len() - 12;

/// `1h2m3s`, the shortest Go duration for whole milliseconds, for messages.
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1_000, rest % 1_000);
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (milli, "ms")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// A stats page path HAProxy reads as one plain word: `$` would be expanded
/// as an environment variable, quotes and `\` change the word, `#` ends the
/// line, whitespace splits it. Only URI characters a browser sends as they
/// are, so the path can match a request at all.
pub fn check_stats_path(text: &str) -> Result<(), &'static str> {
    const WHY: &str = "start with `/` and use letters, digits and `/ - . _ ~ ? = & ! ( ) * + , : @` only (at most 256)";
    let ok = text.starts_with('/')
        && text.len() <= 256
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~?=&!()*+,:@".contains(&b));
    if ok { Ok(()) } else { Err(WHY) }
}

/// A file path that reaches the stack as a value: the docker CLI substitutes
/// `$` variables in every value, and control or line-separator characters
/// have no place in a path anyone means.
pub fn check_stack_path(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("the path is empty");
    }
    if text.len() > 4096 {
        return Err("the path is longer than 4096 bytes");
    }
    if text.contains('$') {
        return Err("`$` in a path is read by docker as a variable and replaced");
    }
    if text.chars().any(hacompile_boundary::text::is_unsafe) {
        return Err("the path holds a control, line-separator or bidirectional character");
    }
    Ok(())
}

/// The stack name: swarm prefixes every service with `<stack>_`, and service
/// names are DNS labels (`[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*`, no dots).
pub fn check_stack_name(text: &str) -> Result<(), &'static str> {
    let b = text.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(
            "use letters, digits, `_` and `-`; start and end with a letter or digit (swarm prefixes service names with it, and those are DNS labels)",
        )
    }
}

/// Names swarm accepts for stacks, networks, volumes and secrets.
pub fn check_object_name(text: &str) -> Result<(), &'static str> {
    // Swarm's pattern for config and secret names, `[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?`.
    let ok = !text.is_empty()
        && text.len() <= 63
        && text.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && text.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err("use letters, digits, `_`, `-`, `.`; start with a letter or digit and end with one; at most 63 characters")
    }
}

/// PostgreSQL identifiers that need no quoting anywhere we write them
/// (pg_hba.conf, SQL, HAProxy's check).
pub fn check_pg_identifier(text: &str) -> Result<(), &'static str> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("use lowercase letters, digits and `_`, starting with a letter; at most 63 characters")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("2h"), Ok(7_200_000));
        for bad in ["", "10", "s", "1x", "1.5s", "-1s", "1 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes("2G"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_bytes("1.5gb"), Ok(1_610_612_736));
        for bad in ["", "m", "2t", "0", "-1m"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn constraints() {
        for ok in [
            "node.labels.pg.role == primary",
            "node.role==manager",
            "node.hostname != db-3",
            "engine.labels.ssd == true",
        ] {
            assert!(check_constraint(ok).is_ok(), "{ok}");
        }
        for bad in
            ["node.labels == x", "node.rol == manager", "node.role == boss", "node.id =", "primary", "a == b == c"]
        {
            assert!(check_constraint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credential_keys() {
        for k in ["password", "PGPASSWORD", "db_password", "api_key", "token", "admin_pass", "pass", "secret"] {
            assert!(is_credential_key(k), "{k}");
        }
        for k in ["user", "passive", "compass_x", "password_file", "bypass_x"] {
            assert!(!is_credential_key(k), "{k}");
        }
    }

    #[test]
    fn schedules() {
        assert_eq!(parse_schedule("sun 01:00"), Ok((vec![7], "01:00".into())));
        assert_eq!(parse_schedule("daily 23:59").map(|s| s.0.len()), Ok(7));
        assert_eq!(parse_schedule("mon,thu 02:30"), Ok((vec![1, 4], "02:30".into())));
        for bad in ["", "sun", "sun 1:00", "sun 24:00", "sunday 01:00", "sun 01:60", "sun  01:00", "mon, tue 01:00"] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("pasword", ["password", "user"]), Some("password"));
        assert_eq!(suggest("zzz", ["password", "user"]), None);
    }
}
