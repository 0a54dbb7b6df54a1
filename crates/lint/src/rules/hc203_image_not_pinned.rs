use super::images::{FLOATING_TAGS, locked_digest};
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::spec::SpecCx;

pub const RULE: Rule = Rule {
    code: "HC203",
    name: "image-not-pinned",
    family: Family::SupplyChain,
    severity: Severity::Error,
    summary: "An image has a tag but no digest",
    doc: r#"
## What it does
Reports images written `name:tag` without `@sha256:...`. In a cluster spec it
reports images that neither carry a digest nor have an entry in the lock file
(`hacompile.lock` beside the spec, or `--lock`).

## Why it matters
Tags can be moved by whoever controls the repository. `docker stack deploy`
resolves a tag when it deploys, so what runs in production is whatever the tag
pointed to that minute, not the bytes you tested.

## Example
```yaml
image: postgres:16
```

## Fix
`image: postgres:16@sha256:<digest>`. Docker pulls by digest and keeps the tag
as a readable hint. `hacompile pin docker-stack.yml` rewrites the file;
`hacompile lock spec.toml` records the digests of a spec.
"#,
    check: Check::StackAndSpec(check, check_spec),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for img in cx.images() {
        let Ok(r) = &img.parsed else { continue };
        let Some(tag) = r.tag() else { continue };
        if r.digest().is_some() || FLOATING_TAGS.contains(&tag.to_ascii_lowercase().as_str()) {
            continue;
        }
        let help = match cx.lock.and_then(|l| locked_digest(l, r)) {
            Some(d) => format!(
                "the lock pins it: `{}`",
                r.pinned(&hacompile_image::Digest::parse(&d).expect("lock digests are valid"))
            ),
            None => "pin the digest: `hacompile pin` rewrites the image lines in place".to_owned(),
        };
        out.push(
            Hit::new(img.span.clone(), format!("the image of service `{}` is not pinned by digest", img.service))
                .help(help),
        );
    }
}

fn check_spec(cx: &SpecCx<'_>, out: &mut Vec<Hit>) {
    for (img, at) in cx.spec.images() {
        let locked = cx.lock.is_some_and(|l| l.get(img.as_written()).is_some());
        if img.digest().is_none() && !locked {
            out.push(
                Hit::new(at.span(), format!("the image `{}` has no digest in the spec or the lock", img.as_written()))
                    .help("run `hacompile lock SPEC` to record its digest in hacompile.lock"),
            );
        }
    }
}
