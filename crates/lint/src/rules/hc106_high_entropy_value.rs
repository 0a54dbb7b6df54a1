use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::secrets::{is_reference, looks_random, provider_token};

pub const RULE: Rule = Rule {
    code: "HC106",
    name: "high-entropy-value",
    family: Family::Secrets,
    severity: Severity::Warning,
    summary: "An environment value looks randomly generated, like a key or password",
    doc: r#"
## What it does
Reports environment values and labels under names that do not look like
credentials but whose value looks random: at least 20 characters, letters
mixed with digits or case, and a Shannon entropy of 4 bits per character or
more. Paths, URLs, digests, UUIDs and references are not reported.
Structured values are judged part by part, and their parts are names: host
lists (`etcd1.db.example.net:2379,etcd2.db.example.net:2379`), LDAP
distinguished names (`cn=readonly,ou=Services,dc=example,dc=org`) and URNs
(`urn:ietf:params:oauth:grant-type:jwt-bearer`).

## Why it matters
Credentials hide under names like `DB_KEY`, `SIGNING` or `X_CONFIG`. A random
string in a stack file is almost always a secret someone pasted in.

## Example
```yaml
environment:
  SESSION_SIGNING: q8Zr2LxP0vWm4NcT7yKb1HsD
```

## Fix
If it is a secret, move it to a Docker secret. If it is not (an id, a hash of
public data), suppress this finding with a reason.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for (svc, env) in cx.services().iter().zip(cx.environments()) {
        let mut entries = env.clone();
        entries.extend(cx.entries_of(svc.node, "labels"));
        for e in entries {
            let Some(value) = e.value else { continue };
            if e.credential || is_reference(value) || provider_token(value).is_some() {
                continue; // HC101/HC105 speak for these.
            }
            if looks_random(value) {
                out.push(
                    Hit::new(
                        e.value_span.clone(),
                        format!("`{}` of service `{}` looks like a generated secret", e.key, svc.name),
                    )
                    .help("if it is a secret, move it to a Docker secret; if not, suppress with a reason"),
                );
            }
        }
    }
}
