use std::collections::HashSet;

use super::etcd;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::spec::SpecCx;

pub const RULE: Rule = Rule {
    code: "HC410",
    name: "etcd-cluster-size",
    family: Family::HighAvailability,
    severity: Severity::Warning,
    summary: "The etcd cluster has a single member or an even number of members",
    doc: r#"
## What it does
Finds the etcd members of a stack (services whose image is etcd, whose
command runs `etcd`, or whose environment configures an etcd server, such
as `ETCD_NAME` or `ETCD_INITIAL_CLUSTER`) and counts them: by the distinct
names in `ETCD_INITIAL_CLUSTER` or `--initial-cluster` when a member
declares its cluster, else by the number of etcd services. Reports a
cluster of one member, or of an even number of members; in a cluster
spec, a single `[[dcs.members]]` allowed by `development = true`.

## Why it matters
etcd needs a majority of its members to write. One member is a single
point of failure: when it stops, Patroni cannot renew the leader key and
the primary demotes itself, so the database takes no writes. An even count
buys nothing: 4 members need 3 for a quorum and survive one loss, as 3
members do, while one more member can fail, and a 2-2 network split stops
the cluster.

## Example
```yaml
services:
  etcd-1:
    image: quay.io/coreos/etcd:v3.5.17
    environment:
      ETCD_NAME: etcd-1
      ETCD_INITIAL_CLUSTER: etcd-1=http://etcd-1:2380,etcd-2=http://etcd-2:2380
  etcd-2:
    image: quay.io/coreos/etcd:v3.5.17
```

## Fix
Run 3 members (survive one loss) or 5 (survive two), one service each,
placed on different nodes, and list all of them in the initial cluster.
"#,
    check: Check::StackAndSpec(check, check_spec),
};

/// A spec may ask for one member only by saying `development = true`
/// (build refuses it otherwise); lint still warns, so it never reaches
/// production unnoticed.
fn check_spec(cx: &SpecCx<'_>, out: &mut Vec<Hit>) {
    let members = cx.spec.dcs_services().len();
    if members == 1 {
        let at = cx.key_span(&["dcs", "development"]).unwrap_or(0..0);
        out.push(
            Hit::new(at, "the etcd cluster has a single member (`development = true`): no fault tolerance")
                .help("for production, list 3 `[[dcs.members]]` (or 5) on different nodes and drop `development`"),
        );
    }
}

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let members = etcd::members(cx);
    if members.is_empty() {
        return;
    }
    // Each distinct cluster once; a set, so a stack of many members is not quadratic.
    let mut seen: HashSet<String> = HashSet::new();
    for &i in &members {
        let Some(declared) = etcd::declared(cx, i) else { continue };
        if !seen.insert(declared.text.clone()) {
            continue;
        }
        let names = declared.names();
        if let Some(problem) = problem(names.len()) {
            out.push(
                Hit::new(
                    declared.span.clone(),
                    format!("the initial etcd cluster has {}: {problem}", count(names.len())),
                )
                .help("declare 3 members (or 5), one service each, on different nodes"),
            );
        }
    }
    if !seen.is_empty() {
        return;
    }
    // No member declares its cluster: one member per service. A service
    // with several tasks is HC411's problem, not a count.
    let services = cx.services();
    let replicated = members.iter().any(|&i| {
        cx.str_at(services[i].node, &["deploy", "mode"]) == Some("global")
            || cx
                .str_at(services[i].node, &["deploy", "replicas"])
                .and_then(super::interpolation::with_defaults)
                .and_then(|r| r.parse::<u64>().ok())
                .is_some_and(|r| r > 1)
    });
    if replicated {
        return;
    }
    if let Some(problem) = problem(members.len()) {
        let names: Vec<String> = members.iter().map(|&i| format!("`{}`", services[i].name)).collect();
        out.push(
            Hit::new(
                cx.span(services[members[0]].key),
                format!("the etcd cluster has {} ({}): {problem}", count(members.len()), names.join(", ")),
            )
            .help("run 3 etcd members (or 5), one service each, on different nodes"),
        );
    }
}

fn count(n: usize) -> String {
    if n == 1 { "one member".to_owned() } else { format!("{n} members") }
}

fn problem(n: usize) -> Option<String> {
    match n {
        0 => None,
        1 => Some("when it stops, Patroni cannot renew the leader key and the primary stops taking writes".to_owned()),
        2 => Some(
            "a quorum needs both, so losing either stops the cluster: two members fail more often than one".to_owned(),
        ),
        n if n % 2 == 0 => Some(format!(
            "a quorum needs {}, so it survives {} lost, no more than {} members would, and a {}-{} network split stops it",
            n / 2 + 1,
            (n - 1) / 2,
            n - 1,
            n / 2,
            n / 2
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;

    fn messages(yaml: &str) -> Vec<String> {
        let src = Source::new("t.yml", yaml.to_owned());
        let doc = crate::yaml::Doc::parse(&src).expect("valid YAML");
        let cx = StackCx::new(&src, &doc, doc.root.expect("a root"), None, None);
        let mut out = Vec::new();
        check(&cx, &mut out);
        out.into_iter().map(|h| h.message).collect()
    }

    /// Without a declared cluster, members are counted by service; clients
    /// and jobs of the etcd image are not members.
    #[test]
    fn members_counted_by_service() {
        let two = "services:\n  a: {image: \"quay.io/coreos/etcd:v3.5.17\"}\n  b: {command: [\"/usr/local/bin/etcd\"]}\n  c: {image: \"bitnami/etcd:3.5\", command: \"etcdctl snapshot save /b/db\"}\n  d: {image: \"bitnami/etcd:3.5\", deploy: {mode: replicated-job}}\n  e: {image: \"app:1\", environment: [\"ETCD_ENDPOINTS=http://a:2379\"]}\n";
        let got = messages(two);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("2 members (`a`, `b`)"), "{got:?}");
        let three =
            "services:\n  a: {image: \"etcd:3\"}\n  b: {image: \"etcd:3\"}\n  c: {environment: {ETCD_NAME: c}}\n";
        assert_eq!(messages(three), Vec::<String>::new());
        // One service with three tasks is HC411's problem, not a count of one.
        let replicated = "services:\n  a: {image: \"etcd:3\", deploy: {replicas: 3}}\n";
        assert_eq!(messages(replicated), Vec::<String>::new());
        let single = "services:\n  a: {image: \"etcd:3\"}\n";
        assert!(messages(single)[0].contains("one member"));
    }
}
