use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC409",
    name: "alpine-variant-mismatch",
    family: Family::HighAvailability,
    severity: Severity::Error,
    summary: "An Alpine image variant runs with settings made for the Debian one",
    doc: r#"
## What it does
Reports an Alpine `postgres` image whose secrets or configs are mounted for
UID 999 (the Debian image's `postgres`; Alpine's is UID 70), and an Alpine
`haproxy` image whose healthcheck runs `bash` (Alpine has none).

## Why it matters
The Alpine `postgres` image's server cannot read a secret mounted `0400`
for another UID: initialisation fails after initdb, leaving a primary
without its replication role, and every restart fails the same way. An
Alpine HAProxy whose healthcheck needs bash is never healthy: swarm keeps
replacing a proxy that works.

## Example
```yaml
services:
  db:
    image: postgres:16-alpine
    secrets:
      - {source: pg_password, target: pg_password, uid: "999", gid: "999", mode: 0400}
```

## Fix
```yaml
services:
  db:
    image: postgres:16          # the Debian variant, UID 999
    secrets:
      - {source: pg_password, target: pg_password, uid: "999", gid: "999", mode: 0400}
```
(or keep Alpine and mount for UID 70; for HAProxy, a check busybox can run,
such as `wget -q -O /dev/null http://127.0.0.1:8404/healthz`).
"#,
    check: Check::Stack(check),
};

fn is_alpine(image: &str, repository: &str) -> bool {
    let (name, tag) = image.split_once('@').map_or(image, |(n, _)| n).rsplit_once(':').unwrap_or((image, ""));
    let last = name.rsplit('/').next().unwrap_or(name);
    last == repository && tag.to_ascii_lowercase().contains("alpine")
}

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let Some(image) = cx.image(svc) else { continue };
        let image_node = cx.at(svc.node, &["image"]).map_or_else(|| cx.span(svc.key), |n| cx.span(n));
        if is_alpine(&image, "postgres") {
            for field in ["secrets", "configs"] {
                let Some(list) = cx.at(svc.node, &[field]).and_then(|n| cx.doc.seq(n)) else { continue };
                for item in list {
                    if cx.str_at(*item, &["uid"]) == Some("999") {
                        out.push(
                            Hit::new(
                                cx.span(*item),
                                format!(
                                    "`{}` runs the Alpine postgres image (UID 70), but this {} is mounted for UID 999",
                                    svc.name,
                                    field.trim_end_matches('s')
                                ),
                            )
                            .help("use the Debian tag (e.g. `postgres:16`), or mount it with `uid: \"70\"`"),
                        );
                    }
                }
            }
        }
        if is_alpine(&image, "haproxy") {
            let test = cx.at(svc.node, &["healthcheck", "test"]);
            let mut words = Vec::new();
            if let Some(t) = test {
                cx.scalars_below(t, &mut words);
            }
            if words.iter().any(|w| cx.doc.scalar(*w).is_some_and(|s| s == "bash" || s.starts_with("bash "))) {
                out.push(
                    Hit::new(image_node, format!("`{}` runs the Alpine haproxy image, which has no bash for its healthcheck", svc.name))
                        .help("use the Debian tag (e.g. `haproxy:2.8`), or a check busybox can run (`wget -q -O /dev/null http://127.0.0.1:PORT/healthz`)"),
                );
            }
        }
    }
}
