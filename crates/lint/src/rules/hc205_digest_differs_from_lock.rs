use super::images::locked_digest;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::spec::SpecCx;

pub const RULE: Rule = Rule {
    code: "HC205",
    name: "digest-differs-from-lock",
    family: Family::SupplyChain,
    severity: Severity::Error,
    summary: "An image's digest disagrees with the lock file",
    doc: r#"
## What it does
With a lock file (`--lock hacompile.lock`, or the one beside a spec), compares
each pinned image with the lock entry for the same repository and tag.

## Why it matters
Two sources of truth that disagree mean one of them was edited by hand, or a
tag was re-resolved in one place only: the cluster would run an image nobody
reviewed in the lock.

## Example
```yaml
image: postgres:16@sha256:0000...   # the lock says sha256:11a9...
```

## Fix
Re-resolve in one place: `hacompile lock --update` for the lock, then
`hacompile pin` or `hacompile build` for the stack.
"#,
    check: Check::StackAndSpec(check, check_spec),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let Some(lock) = cx.lock else { return };
    for img in cx.images() {
        let Ok(r) = &img.parsed else { continue };
        let (Some(digest), Some(locked)) = (r.digest(), locked_digest(lock, r)) else { continue };
        if digest.to_string() != locked {
            out.push(
                Hit::new(
                    img.span.clone(),
                    format!("the image of service `{}` is pinned to {digest}, but the lock says {locked}", img.service),
                )
                .help("re-resolve in one place (`hacompile lock --update`), then rebuild or re-pin"),
            );
        }
    }
}

fn check_spec(cx: &SpecCx<'_>, out: &mut Vec<Hit>) {
    let Some(lock) = cx.lock else { return };
    for (img, at) in cx.spec.images() {
        if let (Some(own), Some(locked)) = (img.digest(), lock.digest_for(img.as_written()))
            && *own != locked
        {
            out.push(
                Hit::new(
                    at.span(),
                    format!("the image `{}` names a digest the lock disagrees with ({locked})", img.as_written()),
                )
                .help("re-resolve with `hacompile lock --update`, or drop the digest from the spec"),
            );
        }
    }
}
