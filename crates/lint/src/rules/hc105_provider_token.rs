use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::secrets::provider_token;

pub const RULE: Rule = Rule {
    code: "HC105",
    name: "provider-token",
    family: Family::Secrets,
    severity: Severity::Error,
    summary: "A value has the shape of a provider's access token or a private key",
    doc: r#"
## What it does
Looks at every value in the file, under any key, for the shapes of well-known
credentials: AWS access key ids, GitHub, GitLab, Slack, Stripe, Google, npm
and SendGrid tokens, JSON Web Tokens and PEM private keys.

## Why it matters
These tokens work from anywhere on the internet; a leaked one is used within
minutes of a push to a public repository, whatever key it sat under.

## Example
```yaml
services:
  backup:
    environment:
      S3_KEY_ID: AKIAIOSFODNN7EXAMPLE
```

## Fix
Revoke the token now (it is in your history), then provide the new one as a
Docker secret.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let mut all = Vec::new();
    cx.scalars_below(cx.root, &mut all);
    // Aliases can reach a node twice; report it once.
    let mut seen = vec![false; cx.doc.nodes.len()];
    for v in all {
        if std::mem::replace(&mut seen[v], true) {
            continue;
        }
        let Some(text) = cx.doc.scalar(v) else { continue };
        if let Some((kind, r)) = provider_token(text) {
            let span = cx.span(v);
            let raw = &cx.src.text[span.clone()];
            let needle = &text[r.clone()];
            let at = raw.find(needle).map_or(span.clone(), |i| span.start + i..span.start + i + needle.len());
            out.push(
                Hit::new(at, format!("this value looks like {kind}"))
                    .help("revoke it (it is in the history now), then pass the new one as a Docker secret"),
            );
        }
    }
}
