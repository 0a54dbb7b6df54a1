//! `hacompile restore`: the commands that restore a spec's pgBackRest
//! repository into a new volume, derived from the compiled stack itself (its
//! content-hashed config names, its pinned image, its secrets, environment
//! and repository mount), so the restore runs exactly what the database
//! services run.
//!
//! The restore is a swarm replicated job (`docker service create --mode
//! replicated-job`) on one node: it runs the wrapper's `recover-into`, which
//! restores into an empty directory of the new volume, replays the archive to
//! the target on a server of its own (socket only, archiving off), promotes
//! and stops cleanly. The volume then holds a database any server of the
//! same image starts on, without the repository or its credentials.
//!
//! Every value in the printed commands is shell-quoted; the values from the
//! spec are validated (names, paths) and those from the command line are
//! checked here before anything is printed.

use std::ops::Range;

use hacompile_image::LockFile;
use hacompile_spec::{DbNode, Sp, SpecDiagnostic, SpecErrors, ValidSpec};
use hacompile_stack as st;

use crate::backup;
use crate::services::facts;

/// Where to stop replaying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The end of the archive.
    Latest,
    /// A timestamp PostgreSQL reads the same everywhere (with its zone).
    Time(String),
    /// A restore point: `select pg_create_restore_point('NAME')`.
    Name(String),
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The new volume to restore into.
    pub into: String,
    pub target: Target,
    /// The node's hostname; default: where the spec places its first database service.
    pub node: Option<String>,
}

/// Why no commands were printed.
#[derive(Debug)]
pub enum RestoreError {
    /// The spec (no `[backup]`, `--into` names a volume of the stack, an image not locked).
    Spec(SpecErrors),
    /// A command-line value that is not usable.
    Argument { flag: &'static str, message: String, help: String },
}

/// The restore of one spec, as a typed model; [`Plan::script`] renders it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub stack: String,
    pub stanza: String,
    /// The job's service name.
    pub service: String,
    pub into: String,
    pub target: Target,
    /// The pinned image of the database services.
    pub image: String,
    /// Placement constraints of the job.
    pub constraints: Vec<String>,
    /// `docker service create ...` argv.
    pub create: Vec<String>,
    /// Where the new volume is mounted and where the data directory lands in it.
    pub data_mount: String,
    pub pgdata: String,
    /// The database the spec creates (for the example psql line).
    pub database: String,
    /// The one-off server's container name.
    pub server: String,
    /// The secret that holds the superuser's name.
    pub user_secret: String,
}

/// The longest restore point name PostgreSQL keeps (MAXFNAMELEN - 1).
pub const MAX_RESTORE_POINT: usize = 63;
/// A hostname (RFC 1035's limit).
const MAX_HOSTNAME: usize = 253;
/// Environment of a database service that the restore needs: where the
/// configuration is, which stanza, and the repository's credentials. Not the
/// scheduler's, nor the superuser's (the restore connects to no server).
const RESTORE_ENV: &[&str] = &[
    "PGBACKREST_CONFIG",
    "PGBACKREST_STANZA",
    "HACOMPILE_BACKUP_CIPHER_PASS_FILE",
    "HACOMPILE_BACKUP_S3_KEY_FILE",
    "HACOMPILE_BACKUP_S3_KEY_SECRET_FILE",
];

/// `YYYY-MM-DD HH:MM:SS[.ffffff](Z|+HH[:MM]|-HH[:MM])`: a time with its zone,
/// which PostgreSQL reads the same whatever the server's `TimeZone`.
pub fn check_time(text: &str) -> Result<(), &'static str> {
    const WHY: &str =
        "write `YYYY-MM-DD HH:MM:SS[.ffffff]` and a zone (`+00`, `+05:30`, `-08`, `Z`), e.g. `2026-11-26 17:54:10+00`";
    let b = text.as_bytes();
    let num = |r: Range<usize>| -> Option<u32> {
        let s = b.get(r)?;
        s.iter().all(u8::is_ascii_digit).then(|| s.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b' ') && at(13, b':') && at(16, b':')) {
        return Err(WHY);
    }
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) =
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19))
    else {
        return Err(WHY);
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err("the month is not from 01 to 12"),
    };
    if y < 1970 || d == 0 || d > days || h > 23 || mi > 59 || s > 59 {
        return Err("the date or time is out of range");
    }
    let mut i = 19;
    if at(i, b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=6).contains(&digits) {
            return Err("write 1 to 6 digits of fractional seconds after `.`");
        }
        i += 1 + digits;
    }
    let zone = &b[i..];
    let ok = match zone {
        b"Z" => true,
        [sign, ..] if *sign == b'+' || *sign == b'-' => {
            let hh = num(i + 1..i + 3).filter(|h| *h <= 15);
            match zone.len() {
                3 => hh.is_some(),
                6 => hh.is_some() && at(i + 3, b':') && num(i + 4..i + 6).is_some_and(|m| m <= 59),
                _ => false,
            }
        }
        [] => {
            return Err(
                "the time has no zone: PostgreSQL would read it in the server's time zone; add one, e.g. `+00`",
            );
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(WHY) }
}

/// A restore point name that needs no quoting in a command line.
pub fn check_restore_point(text: &str) -> Result<(), &'static str> {
    let ok = !text.is_empty()
        && text.len() <= MAX_RESTORE_POINT
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok { Ok(()) } else { Err("use letters, digits and `_ - . :` only, at most 63 characters") }
}

/// A node's hostname as swarm's `node.hostname` constraint compares it.
pub fn check_hostname(text: &str) -> Result<(), &'static str> {
    let ok = !text.is_empty()
        && text.len() <= MAX_HOSTNAME
        && text.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok { Ok(()) } else { Err("use letters, digits and `_ - .` only, starting with a letter or digit") }
}

/// A word of a command line as the shell reads it back: unchanged when it
/// holds only characters no shell treats specially, else in single quotes
/// (a `'` inside closed, escaped and reopened).
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'-' | b'.' | b'/' | b':' | b',' | b'@' | b'%' | b'+' | b'=')
        });
    if plain { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// One field of a `--mount`/`--secret` value, which docker reads as CSV.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

fn file_ref(source: &str, r: &st::FileRef) -> String {
    [
        format!("source={source}"),
        format!("target={}", r.target),
        format!("uid={}", r.uid),
        format!("gid={}", r.gid),
        format!("mode={:04o}", r.mode),
    ]
    .iter()
    .map(|f| csv_field(f))
    .collect::<Vec<_>>()
    .join(",")
}

fn arg(flag: &'static str, message: String, help: &str) -> RestoreError {
    RestoreError::Argument { flag, message, help: help.to_owned() }
}

/// The spans of every volume the stack uses, with its name in the spec.
fn stack_volumes(spec: &ValidSpec) -> Vec<(String, Range<usize>)> {
    let s = spec.spec();
    // The table a service's volume belongs to, found by identity.
    let tables: Vec<&Sp<DbNode>> = s
        .postgres
        .primary
        .iter()
        .chain(&s.postgres.replicas)
        .chain(s.patroni.iter().flat_map(|p| &p.members))
        .chain(s.dcs.iter().flat_map(|d| &d.members))
        .collect();
    let mut out: Vec<(String, Range<usize>)> =
        spec.db_services()
            .iter()
            .chain(&spec.dcs_services())
            .map(|d| {
                let span = d.node.volume.as_ref().map(Sp::span).unwrap_or_else(|| {
                    tables.iter().find(|t| std::ptr::eq(t.get(), d.node)).map_or(0..0, |t| t.span())
                });
                (d.volume.clone(), span)
            })
            .collect();
    if let (Some(v), Some(b)) = (spec.backup_volume(), spec.backup()) {
        let r = &b.repository;
        out.push((v, r.volume.as_ref().map_or_else(|| r.span(), Sp::span)));
    }
    out
}

/// Derives the restore of `spec` from its compiled stack.
pub fn plan(spec: &ValidSpec, lock: &LockFile, req: &Request) -> Result<Plan, RestoreError> {
    let s = spec.spec();
    let stack = s.stack.get().clone();
    let Some(b) = spec.backup() else {
        return Err(RestoreError::Spec(SpecErrors::one(
            SpecDiagnostic::new(spec.source(), "restore::no-backup", s.stack.span(), "this spec has no `[backup]`: there is no repository to restore from")
                .label("this stack")
                .help("add a `[backup]` table (README: Backups and point-in-time recovery), deploy it, and restore once a base backup exists"),
        )));
    };
    if let Err(why) = hacompile_spec::values::check_object_name(&req.into) {
        return Err(arg(
            "--into",
            format!("`{}` is not a volume name: {why}", req.into),
            "name a new volume, e.g. `--into ha_db_restored`",
        ));
    }
    // Never over the running cluster: a volume of the stack, as written in
    // the spec or as `docker stack deploy` names it (`<stack>_<volume>`).
    for (volume, span) in stack_volumes(spec) {
        if req.into == volume || req.into == format!("{stack}_{volume}") {
            return Err(RestoreError::Spec(SpecErrors::one(
                SpecDiagnostic::new(
                    spec.source(),
                    "restore::stack-volume",
                    span,
                    format!("`--into {}` names the volume `{volume}` of the stack `{stack}`", req.into),
                )
                .label("used by the stack")
                .help(format!("a restore never goes over the running cluster or its repository: name a new volume, e.g. `--into {stack}_restored`")),
            )));
        }
    }
    match &req.target {
        Target::Latest => {}
        Target::Time(t) => check_time(t).map_err(|why| {
            arg(
                "--time",
                format!("`{t}` is not a time to restore to: {why}"),
                "e.g. `--time \"2026-11-26 17:54:10+00\"`; `select now()` on the primary prints one",
            )
        })?,
        Target::Name(n) => check_restore_point(n).map_err(|why| {
            arg(
                "--name",
                format!("`{n}` is not a restore point name: {why}"),
                "the name given to `select pg_create_restore_point('NAME')`",
            )
        })?,
    }
    if let Some(node) = &req.node {
        check_hostname(node).map_err(|why| {
            arg("--node", format!("`{node}` is not a node's hostname: {why}"), "`docker node ls` shows them")
        })?;
    }

    let compiled = crate::compile(spec, lock).map_err(RestoreError::Spec)?;
    let first = spec.db_services().into_iter().next().expect("a valid spec has a database service");
    let svc = compiled.stack.services.get(&first.name).expect("the compiled stack has every database service");
    let f = facts(s.postgres.flavor);
    let data_mount = f.data_mount.to_owned();
    let pgdata = f.pgdata.expect("backups need the official flavor, which has PGDATA").to_owned();
    let service = format!("{stack}_restore");
    let constraints = match &req.node {
        Some(node) => vec![format!("node.hostname=={node}")],
        None => {
            svc.deploy.as_ref().and_then(|d| d.placement.as_ref()).map(|p| p.constraints.clone()).unwrap_or_default()
        }
    };

    let mut create: Vec<String> =
        ["docker", "service", "create", "--detach", "--quiet", "--with-registry-auth"].map(str::to_owned).to_vec();
    let mut push = |flag: &str, value: String| {
        create.push(flag.to_owned());
        create.push(value);
    };
    push("--name", service.clone());
    push("--mode", "replicated-job".into());
    push("--restart-condition", "none".into());
    for c in &constraints {
        push("--constraint", c.clone());
    }
    // As the server's user: the restored files are its own; no capability.
    push("--user", format!("{0}:{0}", f.uid));
    push("--cap-drop", "ALL".into());
    push("--entrypoint", backup::WRAPPER_PATH.into());
    // The wrapper and pgbackrest.conf under the stack's own config names.
    for r in svc.configs.iter().filter(|r| r.target == backup::CONFIG_PATH || r.target == backup::WRAPPER_PATH) {
        let name = &compiled.stack.configs.get(&r.source).expect("a service's config is in the stack").name;
        push("--config", file_ref(name, r));
    }
    // Only the repository's credentials.
    let wanted: Vec<&str> = [
        b.cipher_pass.as_ref().filter(|_| *b.encrypt.get()),
        b.repository.key.as_ref(),
        b.repository.key_secret.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|r| r.secret.get().as_str())
    .collect();
    for r in svc.secrets.iter().filter(|r| wanted.contains(&r.source.as_str())) {
        // `docker stack deploy` prefixes the secrets it creates from a file;
        // an external one keeps its name.
        let external = compiled.stack.secrets.get(&r.source).is_some_and(|d| d.external == Some(true));
        let name = if external { r.source.clone() } else { format!("{stack}_{}", r.source) };
        push("--secret", file_ref(&name, r));
    }
    for (k, v) in svc.environment.iter().filter(|(k, _)| RESTORE_ENV.contains(&k.as_str())) {
        push("--env", format!("{k}={v}"));
    }
    push("--env", format!("PGBACKREST_PG1_PATH={pgdata}"));
    // The repository: the stack's volume, with its NFS options, so a node
    // that has not mounted it yet mounts the same export.
    if let Some(repo) = spec.backup_volume() {
        let m =
            svc.volumes.iter().find(|m| m.source.as_deref() == Some(repo.as_str())).expect("the repository is mounted");
        let mut fields = vec![format!("type=volume"), format!("source={stack}_{repo}"), format!("target={}", m.target)];
        if let Some((_, v)) = backup::volume(spec) {
            if !v.driver_opts.is_empty() {
                fields.push(format!("volume-driver={}", v.driver));
            }
            for (k, o) in &v.driver_opts {
                fields.push(format!("volume-opt={k}={o}"));
            }
        }
        push("--mount", fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
    }
    push("--mount", format!("type=volume,source={},target={data_mount}", req.into));
    create.push(svc.image.clone());
    create.extend(["recover-into".to_owned(), pgdata.clone()]);
    match &req.target {
        Target::Latest => create.push("latest".into()),
        Target::Time(t) => create.extend(["time".to_owned(), t.clone()]),
        Target::Name(n) => create.extend(["name".to_owned(), n.clone()]),
    }
    Ok(Plan {
        stanza: spec.backup_stanza().expect("backup is set"),
        server: format!("{stack}-restored"),
        stack,
        service,
        into: req.into.clone(),
        target: req.target.clone(),
        image: svc.image.clone(),
        constraints,
        create,
        data_mount,
        pgdata,
        database: s.postgres.database.get().clone(),
        user_secret: s.postgres.user.secret.get().clone(),
    })
}

/// Waits (bounded) for the job's one task and shows its log. Its exit
/// status is the script's: 0 only when the job completed (then the job is
/// removed); a failed job is kept for `docker service ps`.
const WAIT: &str = r#"( for _ in $(seq 3600); do
    state=$(docker service ps "$restore_job" --format '{{.CurrentState}}' 2> /dev/null) || state=
    case "$state" in
      Complete*)
        docker service logs --raw "$restore_job"
        docker service rm "$restore_job" > /dev/null
        exit 0 ;;
      Failed* | Rejected* | Shutdown* | Orphaned*)
        docker service logs --raw "$restore_job" >&2
        echo "the restore job ended: $state (kept: docker service ps --no-trunc $restore_job; docker service rm $restore_job)" >&2
        exit 1 ;;
    esac
    sleep 1
  done
  echo "the restore job did not finish within an hour: docker service ps --no-trunc $restore_job" >&2
  exit 1 )
"#;

impl Plan {
    /// The commands, for a POSIX shell, each value quoted.
    pub fn script(&self) -> String {
        let q = |s: &str| shell_word(s);
        let target = match &self.target {
            Target::Latest => "the end of the archive".to_owned(),
            Target::Time(t) => format!("the time {t}"),
            Target::Name(n) => format!("the restore point {n}"),
        };
        let node = if self.constraints.is_empty() {
            "any node".to_owned()
        } else {
            format!("the node where {}", self.constraints.join(" and "))
        };
        let mut out = format!(
            "# hacompile restore: stanza {stanza} of the stack {stack}, replayed to {target},\n\
             # into the new volume {into}, on {node}.\n\
             # Run on a manager. The job writes only into {into} (a copy already there is\n\
             # refused); the cluster and its repository are not changed, and the restored copy\n\
             # never archives.\n",
            stanza = self.stanza,
            stack = self.stack,
            into = self.into,
        );
        out.push_str(&format!("restore_job={}\n", q(&self.service)));
        let mut line = String::new();
        for (i, w) in self.create.iter().enumerate() {
            let word = if w == &self.service { "\"$restore_job\"".to_owned() } else { q(w) };
            // A new line before each flag and before the image, for a reader.
            if i > 0 && (w.starts_with("--") || w == &self.image) && !line.trim().is_empty() {
                out.push_str(&line);
                out.push_str(" \\\n");
                line = "  ".to_owned();
            } else if i > 0 {
                line.push(' ');
            }
            line.push_str(&word);
        }
        out.push_str(&line);
        out.push('\n');
        out.push_str("# Wait for it (an hour at most); its log says where recovery stopped.\n");
        out.push_str(WAIT);
        out.push_str(&format!(
            "# Then, on that node (a local volume lives there): a server on the restored copy, with\n\
             # no network, to read it back or dump what was lost. Or name {into} as a data volume\n\
             # (`external`) of a new stack.\n\
             #   docker run -d --name {server} --network none --volume {into}:{mount} \\\n\
             #     --env PGDATA={pgdata} {image}\n\
             #   docker exec -it {server} psql -U SUPERUSER -d {db}     (SUPERUSER: the name in the secret {user})\n",
            into = q(&self.into),
            server = q(&self.server),
            mount = q(&self.data_mount),
            pgdata = q(&self.pgdata),
            image = q(&self.image),
            db = q(&self.database),
            user = self.user_secret,
        ));
        out
    }
}
