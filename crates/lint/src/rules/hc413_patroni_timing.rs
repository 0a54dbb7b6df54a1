use super::{Check, Rule};
use crate::finding::{Family, Hit, Severity};
use crate::yaml::{Doc, NodeId};

pub const RULE: Rule = Rule {
    code: "HC413",
    name: "patroni-timing",
    family: Family::HighAvailability,
    severity: Severity::Error,
    summary: "Patroni's timing breaks `loop_wait + 2 * retry_timeout <= ttl`, or `ttl` is below 20",
    doc: r#"
## What it does
Reads Patroni configurations: YAML files with a top-level `bootstrap:`
beside `scope:`, `restapi:`, `postgresql:` or a DCS section, found by the
directory walk or named by a stack's `configs: ... file:`. Takes
`bootstrap.dcs.ttl`, `loop_wait` and `retry_timeout` (Patroni's defaults
30, 10 and 10 where one is not set) and reports `ttl` below 20, and values
where `loop_wait + 2 * retry_timeout` exceeds `ttl`. Patroni reads this
timing only from its configuration (the file, or the whole YAML document in
`PATRONI_CONFIGURATION`); no `PATRONI_*` variable sets it.

## Why it matters
The leader holds its key for `ttl` seconds and renews it every `loop_wait`;
a renewal that fails is retried for up to `retry_timeout`. When
`loop_wait + 2 * retry_timeout` exceeds `ttl`, the key can expire while the
leader still retries, so a short etcd hiccup becomes a failover. Patroni
3.2 and later do not run such values: they raise `ttl` to 20 and lower
`loop_wait` (or `retry_timeout`) with a warning in the log, so the cluster
does not run the timing the file says; older versions (Debian's 3.0.2)
accept them as written.

## Example
```yaml
bootstrap:
  dcs:
    ttl: 15
    loop_wait: 10
    retry_timeout: 10
```

## Fix
Keep `ttl` at 20 or more and `loop_wait + 2 * retry_timeout <= ttl`:
`ttl: 30, loop_wait: 10, retry_timeout: 10` (Patroni's defaults) or
`ttl: 20, loop_wait: 5, retry_timeout: 5` for faster failover. The file's
`bootstrap.dcs` is written to etcd once, at the first bootstrap: change a
running cluster with `patronictl edit-config`.
"#,
    check: Check::Patroni(check),
};

/// Patroni's defaults.
const DEFAULTS: [(&str, i64); 3] = [("ttl", 30), ("loop_wait", 10), ("retry_timeout", 10)];

fn check(doc: &Doc<'_>, root: NodeId, out: &mut Vec<Hit>) {
    let Some(dcs) = doc.get(root, "bootstrap").and_then(|b| doc.get(b, "dcs")) else { return };
    let read = |key: &str, default: i64| -> Option<(i64, Option<NodeId>)> {
        match doc.get(dcs, key) {
            // A value Patroni cannot read as an integer is its own error, not judged here.
            Some(node) => Some((doc.scalar(node)?.trim().parse().ok()?, Some(node))),
            None => Some((default, None)),
        }
    };
    let [(_, ttl0), (_, loop0), (_, retry0)] = DEFAULTS;
    let (Some((ttl, ttl_node)), Some((loop_wait, loop_node)), Some((retry, retry_node))) =
        (read("ttl", ttl0), read("loop_wait", loop0), read("retry_timeout", retry0))
    else {
        return;
    };
    let dcs_key = doc.key_of(doc.get(root, "bootstrap").expect("read above"), "dcs").expect("read above");
    let mut hits: Vec<Hit> = Vec::new();
    if ttl < 20 {
        hits.push(
            Hit::new(
                doc.span(ttl_node.unwrap_or(dcs_key)),
                format!("`ttl` {ttl} is below Patroni's minimum of 20: Patroni 3.2+ runs 20 instead, older versions lose the leader key after one missed renewal"),
            )
            .help("set `ttl` to 20 or more"),
        );
    }
    if loop_wait + 2 * retry > ttl {
        // At the value that raised the sum, else the ttl that is too short.
        let at = doc.span(retry_node.or(loop_node).or(ttl_node).unwrap_or(dcs_key));
        let message = format!(
            "`loop_wait` {loop_wait} + 2 × `retry_timeout` {retry} = {} exceeds `ttl` {ttl}: the leader key can expire while the leader still retries etcd",
            loop_wait + 2 * retry
        );
        match hits.iter_mut().find(|h| h.span == at) {
            // One finding per place: both problems said at once.
            Some(h) => h.message = format!("{}; {message}", h.message),
            None => hits.push(
                Hit::new(at, message)
                    .help("keep `loop_wait + 2 * retry_timeout <= ttl`, e.g. ttl 30, loop_wait 10, retry_timeout 10"),
            ),
        }
    }
    out.extend(hits);
}
