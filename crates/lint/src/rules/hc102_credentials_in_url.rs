use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::secrets::{conninfo_password, url_password};

pub const RULE: Rule = Rule {
    code: "HC102",
    name: "credentials-in-url",
    family: Family::Secrets,
    severity: Severity::Error,
    summary: "A URL or DSN carries a literal password (`scheme://user:password@host`)",
    doc: r#"
## What it does
Reports URLs with a literal password in environment values, labels, `command`,
`entrypoint` and `healthcheck.test`: `postgres://app:hunter2@db/app`,
`redis://:pw@cache`, `https://user:pw@registry`, and libpq keyword/value
connection strings (`host=db user=app password=hunter2`, told from prose by
another connection keyword). A `${VAR}` in the password position is not
reported; a literal default there (`${PW:-pw}`) is.

## Why it matters
A connection string is a password with a host attached. It is copied into
logs, error messages and process listings more often than a bare password.

## Example
```yaml
services:
  api:
    environment:
      DATABASE_URL: postgres://app:hunter2@haproxy:5000/app
```

## Fix
Give the application the password through a secret file and build the URL at
start-up, or use a driver that reads `PGPASSFILE` / a `passfile=` setting.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let mut values = Vec::new();
        for field in ["environment", "labels", "command", "entrypoint", "healthcheck"] {
            if let Some(n) = cx.at(svc.node, &[field]) {
                cx.scalars_below(n, &mut values);
            }
        }
        if let Some(n) = cx.at(svc.node, &["deploy", "labels"]) {
            cx.scalars_below(n, &mut values);
        }
        for v in values {
            let Some(text) = cx.doc.scalar(v) else { continue };
            let found = url_password(text)
                .map(|pw| (pw, "a URL"))
                .or_else(|| conninfo_password(text).map(|pw| (pw, "a connection string")));
            if let Some((pw, what)) = found {
                let span = cx.span(v);
                let raw = &cx.src.text[span.clone()];
                let at = raw.find(pw.as_str()).map_or(span.clone(), |i| span.start + i..span.start + i + pw.len());
                out.push(
                    Hit::new(at, format!("{what} in service `{}` carries a literal password", svc.name))
                        .help("keep the password in a Docker secret and pass it separately (a `_FILE` variable or a passfile), or use `${VAR}` filled from the environment at deploy time"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The passwords reported in a stack, as written.
    fn found(yaml: &str) -> Vec<String> {
        super::super::stack_hits("t.yml", yaml, super::check)
    }

    /// libpq's keyword/value connection strings are DSNs too (seen in
    /// public stacks: `PG_CONNSTRING`, a list of them in one value).
    #[test]
    fn keyword_value_connection_strings() {
        let yaml = r#"
services:
  client:
    image: app:1
    environment:
      PG_CONNSTRING: "host=haproxy port=5000 dbname=app user=app password=hunter2 connect_timeout=5"
      TARGETS: "n1:host=n1 port=5432 user=app password=s3cret,n2:host=n2 port=5432 user=app password=s3cret"
      QUOTED: "host=db user=app password='two words' dbname=app"
      DEFAULTED: "host=db user=app password=${PW:-fallback}"
      FROM_ENV: "host=db user=app password=${PW}"
      PASSFILE: "host=db user=app passfile=/run/secrets/pgpass"
      PROSE: "set password=... in the form"
    command: ["psql", "host=db dbname=app user=app password=pw2"]
"#;
        assert_eq!(found(yaml), ["hunter2", "s3cret", "'two words'", "fallback", "pw2"]);
    }
}
