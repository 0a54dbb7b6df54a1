use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::spec::SpecCx;

pub const RULE: Rule = Rule {
    code: "HC510",
    name: "overlay-not-encrypted",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "An overlay network does not encrypt traffic between nodes",
    doc: r#"
## What it does
Reports networks defined in the file whose driver is `overlay` (or unset: a
stack's default) without `driver_opts: { encrypted: "true" }`, and cluster
specs with `encrypted = false`. External networks are not judged.

## Why it matters
Without it, replication traffic and client queries cross the network between
nodes in clear (VXLAN), including the replication password exchange when a
replica authenticates with md5.

## Example
```yaml
networks:
  pg_net:
    driver: overlay
```

## Fix
```yaml
networks:
  pg_net:
    driver: overlay
    driver_opts:
      encrypted: "true"
```
(IPsec ESP between nodes; allow protocol 50 in the firewall.)
"#,
    check: Check::StackAndSpec(check, check_spec),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let Some(networks) = cx.at(cx.root, &["networks"]) else { return };
    for (k, v) in cx.doc.entries(networks) {
        let Some(name) = cx.doc.scalar(k) else { continue };
        if cx.str_at(v, &["external"]) == Some("true") || cx.at(v, &["external", "name"]).is_some() {
            continue;
        }
        let driver = cx.str_at(v, &["driver"]).unwrap_or("overlay");
        let encrypted =
            cx.at(v, &["driver_opts", "encrypted"]).is_some_and(|e| cx.doc.scalar(e).is_none_or(|t| t != "false"));
        if driver == "overlay" && !encrypted {
            out.push(
                Hit::new(cx.span(k), format!("overlay network `{name}` is not encrypted"))
                    .help("add `driver_opts: { encrypted: \"true\" }`"),
            );
        }
    }
}

fn check_spec(cx: &SpecCx<'_>, out: &mut Vec<Hit>) {
    if !cx.spec.spec().network.encrypted {
        let at = cx.key_span(&["network", "encrypted"]).unwrap_or(0..0);
        out.push(Hit::new(at, "the cluster's overlay network is not encrypted").help("remove `encrypted = false`"));
    }
}
