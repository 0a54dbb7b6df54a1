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
    let prefix: u8 = prefix.parse().map_err(|_| "the prefix length is not a number")?;
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) if prefix <= 32 => Ok(()),
        Ok(std::net::IpAddr::V6(_)) if prefix <= 128 => Ok(()),
        Ok(_) => Err("the prefix length is too long for this address"),
        Err(_) => Err("not an IP address"),
    }
}

/// Names swarm accepts for stacks, networks, volumes and secrets.
pub fn check_object_name(text: &str) -> Result<(), &'static str> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err("use letters, digits, `_`, `-`, `.`; start with a letter or digit; at most 63 characters")
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
    fn suggestions() {
        assert_eq!(suggest("pasword", ["password", "user"]), Some("password"));
        assert_eq!(suggest("zzz", ["password", "user"]), None);
    }
}
