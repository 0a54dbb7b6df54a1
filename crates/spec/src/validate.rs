//! The second pass: cross-references and value languages, every problem at once.

use std::collections::BTreeMap;
use std::ops::Range;

use hacompile_image::ImageRef;

use crate::diagnostic::{SourceFile, SpecDiagnostic, SpecErrors};
use crate::model::*;
use crate::values::*;

/// The port HAProxy answers its own container healthcheck on (loopback only).
pub const HAPROXY_HEALTH_PORT: u16 = 8404;
/// PostgreSQL's port inside the containers.
pub const POSTGRES_PORT: u16 = 5432;
const MAX_REPLICAS: usize = 16;
/// The official flavor's healthcheck asks the primary with a 3 s bound.
const HEALTHCHECK_MIN_TIMEOUT_MS: u64 = 5_000;

/// The role of a database service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica(usize),
    /// A Patroni member (1-based): any of them may lead.
    Member(usize),
}

/// A database service as the compiler will emit it.
#[derive(Debug, Clone)]
pub struct DbService<'a> {
    pub role: Role,
    /// The service name inside the stack (`pg-primary`, `pg-replica-1`).
    pub name: String,
    pub volume: String,
    pub node: &'a DbNode,
}

/// A spec that passed validation: the compiler may rely on every check here.
#[derive(Debug, Clone)]
pub struct ValidSpec {
    spec: Spec,
    postgres_image: ImageRef,
    haproxy_image: ImageRef,
    /// The Patroni members' and etcd's images (topology `patroni`).
    patroni_images: Option<(ImageRef, ImageRef)>,
    /// The database image with pgBackRest (topology `pinned` with `[backup]`).
    backup_image: Option<ImageRef>,
    /// The postgres_exporter image (with `[postgres.exporter]`).
    exporter_image: Option<ImageRef>,
    source: SourceFile,
}

impl ValidSpec {
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn postgres_image(&self) -> &ImageRef {
        &self.postgres_image
    }

    pub fn haproxy_image(&self) -> &ImageRef {
        &self.haproxy_image
    }

    /// The spec file, for diagnostics of later passes (e.g. a missing lock entry).
    pub fn source(&self) -> &SourceFile {
        &self.source
    }

    /// Every image the spec names, with where it is written: what `lock`
    /// resolves, `build` pins and lint checks, in one list.
    pub fn images(&self) -> Vec<(&ImageRef, &Sp<String>)> {
        let s = &self.spec;
        let mut out = vec![(&self.postgres_image, &s.postgres.image), (&self.haproxy_image, &s.haproxy.image)];
        if let (Some((members, etcd)), Some(p), Some(d)) = (&self.patroni_images, &s.patroni, &s.dcs) {
            out.push((members, &p.image));
            out.push((etcd, &d.image));
        }
        if let (Some(img), Some(at)) = (&self.backup_image, s.backup.as_ref().and_then(|b| b.image.as_ref())) {
            out.push((img, at));
        }
        if let (Some(img), Some(e)) = (&self.exporter_image, &s.postgres.exporter) {
            out.push((img, &e.image));
        }
        out
    }

    /// The postgres_exporter image (with `[postgres.exporter]`).
    pub fn exporter_image(&self) -> Option<&ImageRef> {
        self.exporter_image.as_ref()
    }

    /// The exporter settings, when the spec has `[postgres.exporter]`.
    pub fn exporter(&self) -> Option<&Exporter> {
        self.spec.postgres.exporter.as_ref().map(|e| e.get())
    }

    /// The database image with pgBackRest (topology `pinned` with `[backup]`).
    pub fn backup_image(&self) -> Option<&ImageRef> {
        self.backup_image.as_ref()
    }

    /// The backup settings, when the spec has `[backup]`.
    pub fn backup(&self) -> Option<&Backup> {
        self.spec.backup.as_ref().map(|b| b.get())
    }

    /// The pgBackRest stanza: the spec's, or the stack name.
    pub fn backup_stanza(&self) -> Option<String> {
        self.backup().map(|b| b.stanza.as_ref().unwrap_or(&self.spec.stack).get().clone())
    }

    /// The posix repository's volume name (default `pgbackrest-repo`).
    pub fn backup_volume(&self) -> Option<String> {
        let b = self.backup()?;
        (*b.repository.kind.get() == RepoType::Posix)
            .then(|| b.repository.volume.as_ref().map_or_else(|| DEFAULT_REPO_VOLUME.to_owned(), |v| v.get().clone()))
    }

    /// The Patroni members' image and the etcd image (topology `patroni`).
    pub fn patroni_images(&self) -> Option<(&ImageRef, &ImageRef)> {
        self.patroni_images.as_ref().map(|(p, e)| (p, e))
    }

    /// The database services: the primary and the replicas (pinned), or the
    /// Patroni members.
    pub fn db_services(&self) -> Vec<DbService<'_>> {
        db_services(&self.spec)
    }

    /// The etcd members (topology `patroni`; empty otherwise).
    pub fn dcs_services(&self) -> Vec<DbService<'_>> {
        dcs_services(&self.spec)
    }

    /// The Patroni settings; present in every valid `patroni` spec.
    pub fn patroni(&self) -> Option<&Patroni> {
        self.spec.patroni.as_ref().map(|p| p.get())
    }

    /// The Patroni scope: the spec's, or the stack name.
    pub fn patroni_scope(&self) -> String {
        self.patroni().and_then(|p| p.scope.as_ref()).unwrap_or(&self.spec.stack).get().clone()
    }
}

fn volume_of(name: &str, node: &DbNode) -> String {
    node.volume.as_ref().map_or_else(|| format!("{name}-data"), |v| v.get().clone())
}

fn dcs_services(spec: &Spec) -> Vec<DbService<'_>> {
    let Some(dcs) = spec.dcs.as_ref().filter(|_| *spec.topology.get() == TopologyKind::Patroni) else {
        return Vec::new();
    };
    dcs.members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let name = format!("etcd-{}", i + 1);
            DbService { role: Role::Member(i + 1), volume: volume_of(&name, m.get()), name, node: m.get() }
        })
        .collect()
}

fn db_services(spec: &Spec) -> Vec<DbService<'_>> {
    let pg = &spec.postgres;
    if *spec.topology.get() == TopologyKind::Patroni {
        let members = spec.patroni.as_ref().map_or(&[][..], |p| &p.members[..]);
        return members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let name = format!("pg-{}", i + 1);
                DbService { role: Role::Member(i + 1), volume: volume_of(&name, m.get()), name, node: m.get() }
            })
            .collect();
    }
    let named = |name: String, node: &DbNode| volume_of(&name, node);
    let mut out = Vec::with_capacity(1 + pg.replicas.len());
    if let Some(primary) = &pg.primary {
        out.push(DbService {
            role: Role::Primary,
            volume: named("pg-primary".into(), primary.get()),
            name: "pg-primary".into(),
            node: primary.get(),
        });
    }
    for (i, r) in pg.replicas.iter().enumerate() {
        let name = format!("pg-replica-{}", i + 1);
        out.push(DbService { role: Role::Replica(i + 1), volume: named(name.clone(), r.get()), name, node: r.get() });
    }
    out
}

struct Checker<'s> {
    source: &'s SourceFile,
    found: Vec<SpecDiagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, code: &'static str, span: Range<usize>, message: impl Into<String>) -> &mut SpecDiagnostic {
        self.found.push(SpecDiagnostic::new(self.source, code, span, message));
        self.found.last_mut().expect("just pushed")
    }

    fn err(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
        label: &str,
        help: impl Into<String>,
    ) {
        let d = SpecDiagnostic::new(self.source, code, span, message).label(label).help(help);
        self.found.push(d);
    }

    /// A name swarm accepts for a stack, network, secret or volume.
    fn object_name(&mut self, what: &str, value: &Sp<String>) {
        if let Err(why) = check_object_name(value) {
            self.err(
                "spec::name",
                value.span(),
                format!("`{}` is not a valid {what} name", value.get()),
                "invalid name",
                why,
            );
        }
    }

    /// A duration docker reads (Go's `time.ParseDuration`, int64 nanoseconds).
    fn duration(&mut self, what: &str, value: &Sp<String>, min_ms: u64) -> Option<u64> {
        self.duration_within(what, value, min_ms, DOCKER_MAX_DURATION_MS, "docker reads durations as int64 nanoseconds")
    }

    /// A WAL size PostgreSQL takes (at most [`PG_MAX_WAL_KEEP_MB`]): its bytes.
    fn wal_size(&mut self, what: &str, value: &Sp<String>, example: &str) -> Option<u64> {
        match parse_bytes(value) {
            Err(why) => {
                self.err("spec::size", value.span(), format!("`{what}` is not a size: {why}"), "not a size", example);
                None
            }
            Ok(b) if b / (1024 * 1024) > PG_MAX_WAL_KEEP_MB => {
                self.err(
                    "spec::size",
                    value.span(),
                    format!("`{what}` is larger than PostgreSQL accepts"),
                    "too large",
                    format!("PostgreSQL takes at most {PG_MAX_WAL_KEEP_MB} MB (about 2 PiB)"),
                );
                None
            }
            Ok(b) => Some(b),
        }
    }

    /// A duration HAProxy reads as a timer (at most 2^31-1 ms).
    fn timer(&mut self, what: &str, value: &Sp<String>, min_ms: u64) -> Option<u64> {
        self.duration_within(what, value, min_ms, HAPROXY_MAX_TIMER_MS, "HAProxy refuses longer timers (2147483647 ms)")
    }

    fn duration_within(&mut self, what: &str, value: &Sp<String>, min_ms: u64, max_ms: u64, why: &str) -> Option<u64> {
        match parse_duration(value) {
            Ok(ms) if ms > max_ms => {
                self.err(
                    "spec::duration",
                    value.span(),
                    format!("`{what}` is too long"),
                    "too long",
                    format!("use at most {}: {why}", format_duration(max_ms)),
                );
                None
            }
            Ok(ms) if ms >= min_ms => Some(ms),
            Ok(_) => {
                self.err(
                    "spec::duration",
                    value.span(),
                    format!("`{what}` is too short"),
                    "too short",
                    format!("use at least {}", human_ms(min_ms)),
                );
                None
            }
            Err(why) => {
                self.err(
                    "spec::duration",
                    value.span(),
                    format!("`{what}` is not a duration: {why}"),
                    "not a duration",
                    "write a Go duration such as `10s`, `2m` or `1m30s`",
                );
                None
            }
        }
    }

    fn image(&mut self, what: &str, value: &Sp<String>) -> Option<ImageRef> {
        match ImageRef::parse(value) {
            Ok(r) if r.tag().is_none() && r.digest().is_none() => {
                self.err(
                    "spec::image",
                    value.span(),
                    format!("`{what}` has no tag"),
                    "no tag",
                    format!(
                        "name the version you tested, e.g. `{}:16`; the digest is pinned in hacompile.lock",
                        r.name()
                    ),
                );
                None
            }
            Ok(r) => Some(r),
            Err(e) => {
                self.err(
                    "spec::image",
                    value.span(),
                    format!("`{what}` is not a valid image reference: {e}"),
                    "invalid reference",
                    "write `name:tag`, e.g. `postgres:16` or `registry.example.com:5000/team/pg:16`",
                );
                None
            }
        }
    }

    fn secret_ref(&mut self, declared: &BTreeMap<Sp<String>, Sp<SecretDecl>>, r: &SecretRef) {
        if declared.keys().any(|k| k.get() == r.secret.get()) {
            return;
        }
        let help = match suggest(&r.secret, declared.keys().map(|k| k.as_str())) {
            Some(best) => format!("did you mean `{best}`? Otherwise declare it: [secrets.{}]", r.secret.get()),
            None => format!(
                "declare it under [secrets]: `[secrets.{}]` (created with `docker secret create {} -`)",
                r.secret.get(),
                r.secret.get()
            ),
        };
        self.err(
            "spec::undeclared-secret",
            r.secret.span(),
            format!("the secret `{}` is not declared", r.secret.get()),
            "used here",
            help,
        );
    }

    fn resources(&mut self, r: &Resources) {
        for cpus in [&r.cpus, &r.reserve_cpus].into_iter().flatten() {
            let v = *cpus.get();
            // Written as `format!("{v}")`, which swarm reads in nanoCPUs: more
            // than 9 decimals is "too precise", less than 0.01 is refused.
            let decimals = format!("{v}").split_once('.').map_or(0, |(_, f)| f.len());
            if !(v.is_finite() && (0.01..=1024.0).contains(&v) && decimals <= 9) {
                self.err(
                    "spec::resources",
                    cpus.span(),
                    "CPUs must be from 0.01 to 1024, with at most 9 decimals",
                    "out of range",
                    "e.g. `cpus = 2` or `cpus = 0.5`",
                );
            }
        }
        let mut bytes = |v: &Option<Sp<String>>| {
            let v = v.as_ref()?;
            match parse_bytes(v) {
                Ok(b) if b < DOCKER_MIN_MEMORY => {
                    self.err(
                        "spec::resources",
                        v.span(),
                        format!("`{}` is less than docker's minimum of 6 MiB", v.get()),
                        "too small",
                        "docker refuses a memory limit or reservation below `6m`",
                    );
                    None
                }
                Ok(b) => Some(b),
                Err(why) => {
                    self.err(
                        "spec::resources",
                        v.span(),
                        format!("`{}` is not a size: {why}", v.get()),
                        "not a size",
                        "e.g. `512m` or `2g`",
                    );
                    None
                }
            }
        };
        let limit = bytes(&r.memory);
        let reserve = bytes(&r.reserve_memory);
        if let (Some(l), Some(res), Some(span)) = (limit, reserve, r.reserve_memory.as_ref().map(Sp::span))
            && res > l
        {
            self.err(
                "spec::resources",
                span,
                "the memory reservation is larger than the limit",
                "more than `memory`",
                "reserve at most the limit",
            );
        }
        if let (Some(l), Some(res)) = (&r.cpus, &r.reserve_cpus)
            && res.get() > l.get()
        {
            self.err(
                "spec::resources",
                res.span(),
                "the CPU reservation is larger than the limit",
                "more than `cpus`",
                "reserve at most the limit",
            );
        }
    }

    fn policies(&mut self, restart: &RestartPolicy, update: &UpdatePolicy) {
        self.duration("restart.window", &restart.window, 1_000);
        self.duration("update.delay", &update.delay, 0);
        self.duration("update.monitor", &update.monitor, 1_000);
        self.duration("restart.delay", &restart.delay, 1_000);
        if *restart.max_attempts != 0 {
            self.err(
                "spec::restart",
                restart.max_attempts.span(),
                "a `restart.max_attempts` bound makes swarm abandon the task for good",
                "a bound",
                "leave it at 0 (never give up): after that many quick failures swarm never restarts the task again, \
                 and the cluster's only primary (or a node's only proxy) stays down until a person acts; \
                 `restart.delay` paces a crash loop",
            );
        }
    }

    fn constraints(&mut self, what: &str, list: &[Sp<String>], required_at: Option<Range<usize>>) {
        if let (true, Some(span)) = (list.is_empty(), required_at) {
            self.err(
                "spec::placement",
                span,
                format!("{what} has no placement constraint"),
                "needs `constraints`",
                "pin it to the node(s) that hold its data, e.g. `constraints = [\"node.labels.pg.role == primary\"]` after `docker node update --label-add pg.role=primary NODE`",
            );
        }
        for c in list {
            if let Err(why) = check_constraint(c) {
                self.err(
                    "spec::placement",
                    c.span(),
                    format!("swarm would reject the constraint `{}`: {why}", c.get()),
                    "invalid constraint",
                    "e.g. `node.labels.pg.role == primary`, `node.hostname != db-3`",
                );
            }
        }
    }
}

fn human_ms(ms: u64) -> String {
    if ms % 1000 == 0 { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

/// The posix repository's default volume and path.
pub const DEFAULT_REPO_VOLUME: &str = "pgbackrest-repo";
pub const DEFAULT_REPO_PATH: &str = "/var/lib/pgbackrest";
pub const DEFAULT_S3_PATH: &str = "/pgbackrest";

/// `[backup]`: the image by topology, the repository by type, retention,
/// schedule, encryption and compression.
fn backup(c: &mut Checker<'_>, spec: &Spec) -> Option<ImageRef> {
    let b = spec.backup.as_ref()?;
    let mut image = None;
    match (spec.topology.get(), &b.image) {
        (TopologyKind::Pinned, Some(at)) => image = c.image("backup.image", at),
        (TopologyKind::Pinned, None) => c.err(
            "spec::backup",
            b.span(),
            "`[backup]` in the pinned topology needs `image`",
            "no image",
            "the official image has no pgBackRest: `hacompile dockerfile SPEC > postgres.Dockerfile`, build and push it, and name it here, e.g. `image = \"registry.example.com/ha_db/postgres:16\"`",
        ),
        (TopologyKind::Patroni, Some(at)) => c.err(
            "spec::backup",
            at.span(),
            "`backup.image` is not used by the patroni topology",
            "not used",
            "patroni.Dockerfile installs pgBackRest into `patroni.image`; remove this key",
        ),
        (TopologyKind::Patroni, None) => {}
    }
    if spec.postgres.flavor != Flavor::Official {
        c.err(
            "spec::backup",
            b.span(),
            "backups need the official `postgres` image flavor",
            "with the Bitnami flavor",
            "hacompile passes no archive settings to the Bitnami image; use `flavor = \"official\"`",
        );
    }
    if let Some(stanza) = &b.stanza {
        c.object_name("stanza", stanza);
    }
    let r = b.repository.get();
    let not_for = |c: &mut Checker<'_>, kind: &str, keys: &[(&str, Option<Range<usize>>)]| {
        for (key, span) in keys {
            if let Some(span) = span {
                c.err(
                    "spec::backup",
                    span.clone(),
                    format!("`{key}` is not used by a {kind} repository"),
                    "not used",
                    "remove it, or change `type`",
                );
            }
        }
    };
    let need = |c: &mut Checker<'_>, kind: &str, keys: &[(&str, bool)]| {
        for (key, present) in keys {
            if !present {
                c.err(
                    "spec::backup",
                    b.repository.span(),
                    format!("a {kind} repository needs `{key}`"),
                    "in this table",
                    "see the README's Backups section for a complete example",
                );
            }
        }
    };
    let span_of = |v: &Option<Sp<String>>| v.as_ref().map(Sp::span);
    let secret_span = |v: &Option<SecretRef>| v.as_ref().map(|r| r.secret.span());
    match r.kind.get() {
        RepoType::Posix => {
            not_for(
                c,
                "posix",
                &[
                    ("bucket", span_of(&r.bucket)),
                    ("endpoint", span_of(&r.endpoint)),
                    ("region", span_of(&r.region)),
                    ("key", secret_span(&r.key)),
                    ("key_secret", secret_span(&r.key_secret)),
                    ("uri_style", r.uri_style.as_ref().map(Sp::span)),
                    ("verify_tls", r.verify_tls.as_ref().map(Sp::span)),
                    ("ca", secret_span(&r.ca)),
                ],
            );
            if let Some(v) = &r.volume {
                c.object_name("volume", v);
                if db_services(spec).iter().chain(dcs_services(spec).iter()).any(|d| d.volume == *v.get()) {
                    c.err(
                        "spec::shared-volume",
                        v.span(),
                        format!("the repository volume `{}` is a database volume", v.get()),
                        "data volume",
                        "a backup on the volume it backs up is lost with it; give the repository its own volume (default `pgbackrest-repo`) on other storage",
                    );
                }
            }
            if let Some(nfs) = &r.nfs {
                let plain = |t: &str| {
                    !t.is_empty()
                        && !t.contains([' ', ',', '$', '"', '\''])
                        && !t.chars().any(hacompile_boundary::text::is_unsafe)
                };
                if !plain(&nfs.address) {
                    c.err(
                        "spec::backup",
                        nfs.address.span(),
                        "`nfs.address` is not a plain host name or address",
                        "invalid",
                        "e.g. `10.0.0.5` or `nfs.internal`",
                    );
                }
                if !nfs.export.starts_with('/') || !plain(&nfs.export) {
                    c.err(
                        "spec::backup",
                        nfs.export.span(),
                        "`nfs.export` is not an absolute path",
                        "invalid",
                        "e.g. `/export/pgbackrest`",
                    );
                }
                if let Some(o) = &nfs.options
                    && (o.is_empty() || o.contains([' ', '$']) || o.chars().any(hacompile_boundary::text::is_unsafe))
                {
                    c.err(
                        "spec::backup",
                        o.span(),
                        "`nfs.options` is not a comma list of mount options",
                        "invalid",
                        "e.g. `nfsvers=4,rw`",
                    );
                }
            }
        }
        RepoType::S3 => {
            not_for(c, "s3", &[("volume", span_of(&r.volume)), ("nfs", r.nfs.as_ref().map(Sp::span))]);
            need(
                c,
                "s3",
                &[
                    ("bucket", r.bucket.is_some()),
                    ("endpoint", r.endpoint.is_some()),
                    ("region", r.region.is_some()),
                    ("key", r.key.is_some()),
                    ("key_secret", r.key_secret.is_some()),
                ],
            );
            for (what, v) in [("bucket", &r.bucket), ("endpoint", &r.endpoint), ("region", &r.region)] {
                if let Some(v) = v {
                    let ok = !v.is_empty()
                        && v.len() <= 255
                        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
                    if !ok {
                        c.err(
                            "spec::backup",
                            v.span(),
                            format!("`repository.{what}` is not a plain name"),
                            "invalid",
                            "letters, digits and `- _ . :` only, e.g. `s3.eu-west-1.amazonaws.com`",
                        );
                    }
                }
            }
            for k in [&r.key, &r.key_secret, &r.ca].into_iter().flatten() {
                c.secret_ref(&spec.secrets, k);
            }
            if let (Some(ca), Some(verify)) = (&r.ca, &r.verify_tls)
                && !*verify.get()
            {
                c.err(
                    "spec::backup",
                    ca.secret.span(),
                    "`repository.ca` is not used with `verify_tls = false`",
                    "not used",
                    "a CA only matters when the certificate is verified: remove `verify_tls = false` (keep `ca` for a private CA), or remove `ca`",
                );
            }
        }
    }
    if let Some(p) = &r.path {
        let ok =
            p.starts_with('/') && check_stack_path(p).is_ok() && !p.contains([' ', '\'', '"', '\\']) && p.len() > 1;
        if !ok {
            c.err(
                "spec::backup",
                p.span(),
                "`repository.path` is not a plain absolute path",
                "invalid path",
                "e.g. `/var/lib/pgbackrest` (posix) or `/pgbackrest` (s3); no spaces or quotes, not `/`",
            );
        }
    }
    if let Some(n) = &b.process_max
        && !(1..=32).contains(n.get())
    {
        c.err(
            "spec::backup",
            n.span(),
            "`backup.process_max` must be from 1 to 32",
            "out of range",
            "processes a backup or restore uses; each takes a core from the database while a backup runs (default 1; 2 was 7-15 % faster on 2 cores)",
        );
    }
    for (what, v) in [("retention_full", &b.retention_full), ("retention_diff", &b.retention_diff)] {
        if !(1..=9_999_999).contains(v.get()) {
            c.err(
                "spec::backup",
                v.span(),
                format!("`backup.{what}` must be from 1 to 9999999"),
                "out of range",
                "how many backups of this kind to keep; defaults: 2 full, 7 differential",
            );
        }
    }
    let mut full_slot = None;
    for (what, v) in [("full", &b.schedule.full), ("diff", &b.schedule.diff)] {
        if what == "diff" && v.get() == "none" {
            continue;
        }
        match parse_schedule(v) {
            Ok(slot) if what == "full" => full_slot = Some(slot),
            Ok(slot) if Some(&slot) == full_slot.as_ref() => c.err(
                "spec::backup",
                v.span(),
                "the differential schedule is the full one: it would never run",
                "same as full",
                "give differential backups other days or times, or `diff = \"none\"`",
            ),
            Ok(_) => {}
            Err(why) => c.err(
                "spec::backup",
                v.span(),
                format!("`backup.schedule.{what}` is not a schedule: `{}`", v.get()),
                "not a schedule",
                why,
            ),
        }
    }
    match (*b.encrypt.get(), &b.cipher_pass) {
        (true, None) => c.err(
            "spec::backup",
            if b.encrypt.span().is_empty() { b.span() } else { b.encrypt.span() },
            "an encrypted repository needs `cipher_pass`",
            "in [backup]",
            "add `cipher_pass = { secret = \"backup_cipher_pass\" }` (a long random passphrase: `openssl rand -base64 48 | docker secret create backup_cipher_pass -`), or say `encrypt = false`",
        ),
        (false, Some(r)) => c.err(
            "spec::backup",
            r.secret.span(),
            "`cipher_pass` is given but `encrypt = false`",
            "not used",
            "remove `encrypt = false` to encrypt the repository, or remove `cipher_pass`",
        ),
        (true, Some(r)) => c.secret_ref(&spec.secrets, r),
        (false, None) => {}
    }
    let max_level = match b.compress_type {
        CompressType::Zst => 19,
        CompressType::Lz4 => 12,
        CompressType::Gz | CompressType::Bz2 => 9,
        CompressType::None => u32::MAX,
    };
    if b.compress_type != CompressType::None && !(1..=max_level).contains(b.compress_level.get()) {
        c.err(
            "spec::backup",
            b.compress_level.span(),
            format!("`backup.compress_level` must be from 1 to {max_level} for {}", b.compress_type.as_str()),
            "out of range",
            "default 3",
        );
    }
    image
}

/// `[postgres.exporter]`: its image, a role of its own that is not a
/// superuser, a password of its own, a port it can bind.
fn exporter(c: &mut Checker<'_>, spec: &Spec) -> Option<ImageRef> {
    let pg = &spec.postgres;
    let e = pg.exporter.as_ref()?;
    let image = c.image("postgres.exporter.image", &e.image);
    if pg.flavor != Flavor::Official {
        c.err(
            "spec::exporter",
            e.span(),
            "the exporter needs the official `postgres` image flavor",
            "with the Bitnami flavor",
            "hacompile creates the monitoring role in the official image's init script (or Patroni's bootstrap); the Bitnami image runs no script of ours. Use `flavor = \"official\"`, or remove [postgres.exporter]",
        );
    }
    if let Err(why) = check_pg_identifier(&e.user) {
        c.err(
            "spec::name",
            e.user.span(),
            "`postgres.exporter.user` is not a plain PostgreSQL identifier",
            "invalid identifier",
            why,
        );
    } else if e.user.get() == "postgres" || e.user.starts_with("pg_") || e.user.get() == pg.replication.user.get() {
        c.err(
            "spec::exporter",
            e.user.span(),
            format!("the exporter cannot connect as `{}`", e.user.get()),
            "not a monitoring role",
            format!(
                "give it a role of its own (default `{DEFAULT_MONITOR_USER}`): hacompile creates it with only `pg_monitor`; `postgres`, the replication role and `pg_*` names are taken"
            ),
        );
    }
    c.secret_ref(&spec.secrets, &e.password);
    for (other, what) in [(&pg.password, "the superuser's"), (&pg.replication.password, "the replication role's")] {
        if other.secret.get() == e.password.secret.get() {
            c.err(
                "spec::exporter",
                e.password.secret.span(),
                format!("the monitoring role's password is {what} password"),
                "shared secret",
                "give it a secret of its own: the exporter's container holds it, and a leak there must not open a stronger role",
            );
        }
    }
    let port = *e.port.get();
    if port < 1024 || port == POSTGRES_PORT {
        c.err(
            "spec::port",
            e.port.span(),
            format!("`postgres.exporter.port` {port} is not usable"),
            "invalid port",
            format!("the exporter runs as an unprivileged user and cannot bind ports below 1024, and {POSTGRES_PORT} is PostgreSQL's; the default is {DEFAULT_EXPORTER_PORT}"),
        );
    }
    c.resources(&e.resources);
    image
}

/// Validates a parsed spec; collects every problem.
pub fn validate(spec: Spec, source: &SourceFile) -> Result<ValidSpec, SpecErrors> {
    let mut c = Checker { source, found: Vec::new() };
    let pg = &spec.postgres;
    let hp = &spec.haproxy;

    c.object_name("stack", &spec.stack);
    if check_object_name(&spec.stack).is_ok() {
        if let Err(why) = check_stack_name(&spec.stack) {
            c.err(
                "spec::name",
                spec.stack.span(),
                format!("`{}` is not a valid stack name", spec.stack.get()),
                "invalid name",
                why,
            );
        } else if spec.stack.len() > MAX_STACK_NAME {
            c.err(
                "spec::name",
                spec.stack.span(),
                format!("the stack name is longer than {MAX_STACK_NAME} characters"),
                "too long",
                format!("swarm config names are `<stack>_pg_replica_entrypoint_<hash>` and at most {SWARM_MAX_CONFIG_NAME} characters"),
            );
        }
    }
    c.object_name("network", &spec.network.name);

    // Secrets: names, external-or-file, and every reference declared.
    for (name, decl) in &spec.secrets {
        c.object_name("secret", name);
        match (decl.external, &decl.file) {
            (true, Some(file)) => c.err(
                "spec::secret",
                file.span(),
                "an external secret has no `file`",
                "not used for an external secret",
                "drop `file`, or set `external = false` to create the secret from the file",
            ),
            (false, Some(file)) => {
                if let Err(why) = check_stack_path(file) {
                    c.err(
                        "spec::secret",
                        file.span(),
                        format!("the secret file path is not usable: {why}"),
                        "invalid path",
                        "name the file plainly, e.g. `./secrets/pg_password`",
                    );
                }
            }
            (false, None) => c.err(
                "spec::secret",
                decl.span(),
                format!("the secret `{}` is not external and has no `file`", name.get()),
                "in this table",
                "create it with `docker secret create` and keep `external = true` (the default), or name a `file`",
            ),
            _ => {}
        }
    }
    let mut refs = vec![&pg.user, &pg.password, &pg.replication.password];
    if let Some(stats) = &hp.stats {
        refs.push(&stats.users);
    }
    for r in refs {
        c.secret_ref(&spec.secrets, r);
    }

    // Images.
    let postgres_image = c.image("postgres.image", &pg.image);
    let haproxy_image = c.image("haproxy.image", &hp.image);
    if let Some(img) = &postgres_image {
        let repo = img.repository();
        let looks_bitnami = repo.starts_with("bitnami/") || repo.starts_with("bitnamilegacy/");
        if repo.starts_with("bitnami/") {
            c.err(
                "spec::image",
                pg.image.span(),
                "free `bitnami/*` images are no longer published; references like this stop resolving",
                "no longer published",
                "since 28 Aug 2025 the existing tags live under `docker.io/bitnamilegacy/*` (no updates); prefer `flavor = \"official\"` with the `postgres` image",
            );
        } else if looks_bitnami != (pg.flavor == Flavor::Bitnami) {
            let (want, why) =
                if looks_bitnami { ("bitnami", "a Bitnami image") } else { ("official", "not a Bitnami image") };
            c.err("spec::flavor", pg.image.span(), format!("the image is {why} but `flavor` does not match"), "this image", format!("set `flavor = \"{want}\"`: the flavor decides which environment variables, paths and user IDs the services get"));
        }
    }

    // Names inside PostgreSQL.
    for (what, v) in [
        ("postgres.database", &pg.database),
        ("postgres.replication.user", &pg.replication.user),
        ("haproxy.check_user", &hp.check_user),
    ] {
        if let Err(why) = check_pg_identifier(v) {
            c.err(
                "spec::name",
                v.span(),
                format!("`{what}` is not a plain PostgreSQL identifier"),
                "invalid identifier",
                why,
            );
        }
    }

    // Database services: constraints and volumes, by topology.
    let patroni_images = match spec.topology.get() {
        TopologyKind::Pinned => {
            pinned_services(&mut c, &spec);
            None
        }
        TopologyKind::Patroni => patroni_services(&mut c, &spec),
    };
    let backup_image = backup(&mut c, &spec);
    let exporter_image = exporter(&mut c, &spec);
    let mut volumes: BTreeMap<String, (String, Range<usize>)> = BTreeMap::new();
    for svc in db_services(&spec).into_iter().chain(dcs_services(&spec)) {
        let span = svc.node.volume.as_ref().map_or(0..0, Sp::span);
        if let Some(v) = &svc.node.volume {
            c.object_name("volume", v);
        }
        if let Some((other, other_span)) = volumes.get(&svc.volume) {
            let d = c.error(
                "spec::shared-volume",
                span.clone(),
                format!("`{}` and `{other}` would share the volume `{}`", svc.name, svc.volume),
            );
            *d = d.clone().label("second use").help("two PostgreSQL servers on one data directory corrupt it; give each its own `volume` (or leave `volume` out for `<service>-data`)");
            if !other_span.is_empty() {
                *d = d.clone().related(other_span.clone(), "first use");
            }
        } else {
            volumes.insert(svc.volume.clone(), (svc.name.clone(), span));
        }
    }

    c.wal_size("postgres.wal_keep_size", &pg.wal_keep_size, "e.g. `1g` or `512m`");

    server_settings(&mut c, &spec);

    // Durations and policies.
    let grace = c.duration("postgres.stop_grace_period", &pg.stop_grace_period, 10_000);
    if let Some(ms) = grace
        && ms < 30_000
    {
        c.err(
            "spec::duration",
            pg.stop_grace_period.span(),
            "`postgres.stop_grace_period` is shorter than 30s",
            "too short",
            "PostgreSQL needs time for a shutdown checkpoint; 60s-120s is usual (default 120s)",
        );
    }
    let h = &pg.healthcheck;
    c.duration("postgres.healthcheck.interval", &h.interval, 1_000);
    // The official flavor's replica check waits up to 3 s for the primary (a
    // lost node's address hangs rather than refusing): a shorter timeout
    // kills the check exactly when the primary's node is lost, every
    // replica turns unhealthy and swarm restarts them.
    let min_timeout = if pg.flavor == Flavor::Official && *spec.topology.get() == TopologyKind::Pinned {
        HEALTHCHECK_MIN_TIMEOUT_MS
    } else {
        1_000
    };
    if let Some(ms) = c.duration("postgres.healthcheck.timeout", &h.timeout, 1_000)
        && ms < min_timeout
    {
        c.err(
            "spec::healthcheck",
            h.timeout.span(),
            "`postgres.healthcheck.timeout` is shorter than 5s",
            "too short",
            "a replica's healthcheck waits up to 3 s for the primary, which hangs when the primary's node is lost; with less, every replica turns unhealthy then and swarm restarts it (default 5s)",
        );
    }
    c.duration("postgres.healthcheck.start_period", &h.start_period, 0);
    if *h.retries == 0 {
        c.err("spec::healthcheck", h.retries.span(), "`retries` must be at least 1", "too few", "default 5");
    }
    c.resources(&pg.resources);
    c.resources(&hp.resources);
    c.policies(&pg.restart, &pg.update);
    c.policies(&hp.restart, &hp.update);
    c.constraints("haproxy", &hp.constraints, None);
    for (what, v) in [
        ("timeouts.connect", &hp.timeouts.connect),
        ("timeouts.client", &hp.timeouts.client),
        ("timeouts.server", &hp.timeouts.server),
        ("timeouts.check", &hp.timeouts.check),
        ("timeouts.queue", &hp.timeouts.queue),
        ("checks.interval", &hp.checks.interval),
    ] {
        c.timer(&format!("haproxy.{what}"), v, 100);
    }
    for (what, v) in [("fall", &hp.checks.fall), ("rise", &hp.checks.rise)] {
        if !(1..=HAPROXY_MAX_COUNT).contains(v.get()) {
            c.err(
                "spec::checks",
                v.span(),
                format!("`haproxy.checks.{what}` must be from 1 to {HAPROXY_MAX_COUNT}"),
                "out of range",
                "defaults: fall 3, rise 2",
            );
        }
    }
    if !(1..=HAPROXY_MAX_MAXCONN).contains(hp.maxconn.get()) {
        c.err(
            "spec::haproxy",
            hp.maxconn.span(),
            format!("`haproxy.maxconn` must be from 1 to {HAPROXY_MAX_MAXCONN}"),
            "out of range",
            "default 2000; HAProxy needs two file descriptors per connection and does not start above the container's limit",
        );
    }
    if let Err(why) = parse_bytes(&spec.logging.max_size) {
        c.err(
            "spec::logging",
            spec.logging.max_size.span(),
            format!("`logging.max_size` is not a size: {why}"),
            "not a size",
            "e.g. `10m`",
        );
    }
    if *spec.logging.max_file == 0 {
        c.err(
            "spec::logging",
            spec.logging.max_file.span(),
            "`logging.max_file` must be at least 1",
            "too few",
            "default 5",
        );
    }

    // Ports: every listener of the proxy needs its own.
    let mut ports: Vec<(&str, &Sp<u16>)> = vec![("write_port", &hp.write_port), ("read_port", &hp.read_port)];
    if let Some(stats) = &hp.stats {
        ports.push(("stats.port", &stats.port));
    }
    let health = Sp::synthetic(HAPROXY_HEALTH_PORT);
    ports.push(("the proxy's healthcheck port", &health));
    for (i, (what, port)) in ports.iter().enumerate() {
        if *port.get() == 0 {
            c.err(
                "spec::port",
                port.span(),
                format!("`{what}` cannot be 0"),
                "invalid port",
                "use a port from 1 to 65535",
            );
        }
        if let Some((first, first_port)) = ports[..i].iter().find(|(_, p)| p.get() == port.get()) {
            // Report at whichever of the two the user wrote.
            let (at, other, other_span) = if port.span().is_empty() {
                (first_port.span(), what, port.span())
            } else {
                (port.span(), first, first_port.span())
            };
            let d =
                c.error("spec::port-collision", at, format!("port {} is used twice (also by `{other}`)", port.get()));
            *d = d.clone().label("collides").help("give every listener its own port");
            if !other_span.is_empty() {
                *d = d.clone().related(other_span, "first use");
            }
        }
    }

    if let Some(stats) = &hp.stats {
        if let Err(why) = check_stats_path(&stats.path) {
            c.err(
                "spec::stats",
                stats.path.span(),
                "the stats path is not one plain HAProxy word",
                "invalid path",
                format!("{why}; e.g. `/stats`"),
            );
        }
        if *stats.metrics.get() && stats.path.get() == METRICS_PATH {
            c.err(
                "spec::stats",
                stats.path.span(),
                format!("the stats page cannot be at `{METRICS_PATH}`, where the Prometheus exporter answers"),
                "taken",
                "use `/stats`, or `metrics = false` to turn the exporter off",
            );
        }
        if stats.allow_from.is_empty() {
            c.err(
                "spec::stats",
                stats.port.span(),
                "`allow_from` is empty, so nobody could reach the stats page",
                "in [haproxy.stats]",
                "list the networks of your operators, or remove [haproxy.stats] to turn the page off",
            );
        }
        for cidr in &stats.allow_from {
            if let Err(why) = check_cidr(cidr) {
                c.err(
                    "spec::stats",
                    cidr.span(),
                    format!("`{}` is not a CIDR: {why}", cidr.get()),
                    "invalid CIDR",
                    "e.g. `10.0.0.0/8`",
                );
            }
        }
    }

    match (c.found.is_empty(), postgres_image, haproxy_image) {
        (true, Some(postgres_image), Some(haproxy_image)) => Ok(ValidSpec {
            spec,
            postgres_image,
            haproxy_image,
            patroni_images,
            backup_image,
            exporter_image,
            source: source.clone(),
        }),
        _ => Err(SpecErrors { diagnostics: c.found }),
    }
}

/// Superuser-reserved connections PostgreSQL keeps by default.
pub const PG_SUPERUSER_RESERVED: u32 = 3;
/// Connections kept free beyond the proxies' share and their checks (an
/// operator's psql, a monitoring agent).
pub const PG_SPARE_CONNECTIONS: u32 = 2;

impl ValidSpec {
    /// How many proxies share each server's connections.
    pub fn proxies(&self) -> u32 {
        self.spec().proxies()
    }

    /// Connections one proxy may open to one server: the server's
    /// connections less the superuser reserve, two health checks per proxy
    /// (the primary is checked from the write and the read listener) and a
    /// spare, divided between the proxies.
    pub fn server_share(&self) -> u32 {
        let pg = &self.spec().postgres;
        let proxies = self.proxies();
        let budget =
            pg.max_connections.get().saturating_sub(PG_SUPERUSER_RESERVED + 2 * proxies + PG_SPARE_CONNECTIONS);
        budget / proxies
    }

    /// `maxconn` of a replica in the read listener: the whole share.
    pub fn replica_maxconn(&self) -> u32 {
        self.server_share().max(1)
    }

    /// `maxconn` of the primary in the write listener and, as the read
    /// listener's backup, there: the share split between the two (three
    /// quarters for writes), so both together never exceed it.
    pub fn primary_maxconn(&self) -> (u32, u32) {
        let share = self.server_share().max(2);
        let write = (share * 3).div_ceil(4).min(share - 1);
        (write, share - write)
    }

    /// Replication slots are on: the official flavor, unless turned off.
    pub fn replication_slots(&self) -> bool {
        let pg = &self.spec().postgres;
        pg.flavor == Flavor::Official && pg.replication_slots.as_ref().is_none_or(|v| *v.get())
    }

    /// WAL senders and slots every server allows: one per replica, two for
    /// base backups running at once, and two spare.
    pub fn wal_senders(&self) -> u32 {
        // Every server but this one may stream from it, plus three.
        self.db_services().len() as u32 + 3
    }
}

impl Spec {
    /// How many proxies share each server's connections: the spec's
    /// `haproxy.proxies`, else one per database service (primary + replicas).
    pub fn proxies(&self) -> u32 {
        self.haproxy.proxies.as_ref().map_or(db_services(self).len() as u32, |p| *p.get()).max(1)
    }
}

/// `[postgres]` settings that reach the server: connections, slots, tuning.
fn server_settings(c: &mut Checker<'_>, spec: &Spec) {
    let pg = &spec.postgres;
    let hp = &spec.haproxy;
    if pg.flavor == Flavor::Bitnami {
        if let Some(on) = pg.replication_slots.as_ref().filter(|v| *v.get()) {
            c.err(
                "spec::bitnami",
                on.span(),
                "the Bitnami image cannot use replication slots",
                "not supported here",
                "it has no setting for them; use `flavor = \"official\"` with the `postgres` image, or drop the key",
            );
        }
        // The image takes no server settings hacompile can pass (no command
        // line, no documented variable): refuse what would be dropped.
        let dropped = [
            ("max_connections", pg.max_connections.span()),
            ("hot_standby_feedback", pg.hot_standby_feedback.span()),
            ("max_slot_wal_keep_size", pg.max_slot_wal_keep_size.span()),
        ];
        for (key, span) in dropped.into_iter().filter(|(_, s)| !s.is_empty()) {
            c.err(
                "spec::bitnami",
                span,
                format!("the Bitnami flavor cannot apply `postgres.{key}`"),
                "would be dropped",
                "hacompile passes no server settings to the Bitnami image (it keeps its defaults, max_connections 100); use `flavor = \"official\"` or drop the key",
            );
        }
        if let Some((name, _)) = pg.parameters.iter().next() {
            c.err(
                "spec::bitnami",
                name.span(),
                "the Bitnami flavor cannot apply `[postgres.parameters]`",
                "would be dropped",
                "use `flavor = \"official\"`, or configure the Bitnami image yourself",
            );
        }
        if !pg.wal_keep_size.span().is_empty() {
            c.err(
                "spec::bitnami",
                pg.wal_keep_size.span(),
                "the Bitnami image ignores `wal_keep_size`",
                "would be dropped",
                "it reads no such setting; use `flavor = \"official\"` with the `postgres` image, or drop the key",
            );
        }
    }
    if let Some(b) = c.wal_size("postgres.max_slot_wal_keep_size", &pg.max_slot_wal_keep_size, "e.g. `16g`")
        && b < parse_bytes(&pg.wal_keep_size).unwrap_or(0)
    {
        c.err(
            "spec::size",
            pg.max_slot_wal_keep_size.span(),
            "`postgres.max_slot_wal_keep_size` is smaller than `wal_keep_size`",
            "smaller",
            "a slot should be able to hold at least what is kept for every standby anyway",
        );
    }
    let proxies = spec.proxies();
    if let Some(p) = &hp.proxies
        && !(1..=1000).contains(p.get())
    {
        c.err(
            "spec::haproxy",
            p.span(),
            "`haproxy.proxies` must be from 1 to 1000",
            "out of range",
            "one per node that runs a proxy",
        );
    }
    let max = *pg.max_connections.get();
    // Per proxy: two checks of the primary and at least one client connection on each listener.
    let needed = PG_SUPERUSER_RESERVED + 4 * proxies + PG_SPARE_CONNECTIONS;
    if max > 262_143 {
        c.err(
            "spec::connections",
            pg.max_connections.span(),
            "`postgres.max_connections` is larger than PostgreSQL accepts (262143)",
            "too large",
            "a few hundred is usual; put a pooler in front for more clients",
        );
    } else if max < needed {
        c.err(
            "spec::connections",
            pg.max_connections.span(),
            format!("`postgres.max_connections` leaves no connection for {} prox{}", proxies, if proxies == 1 { "y" } else { "ies" }),
            "too few",
            format!(
                "each proxy needs two connections for its checks of the primary and at least one for clients of each listener, after {PG_SUPERUSER_RESERVED} reserved for superusers and {PG_SPARE_CONNECTIONS} spare: at least {needed}"
            ),
        );
    }
    for cidr in &hp.allow_from {
        if let Err(why) = check_cidr(cidr) {
            c.err(
                "spec::haproxy",
                cidr.span(),
                format!("`{}` is not a network: {why}", cidr.get()),
                "not a CIDR",
                "e.g. `10.0.0.0/8` or `192.168.1.20/32`",
            );
        }
    }
    if hp.allow_from.is_empty() {
        c.err(
            "spec::haproxy",
            hp.write_port.span(),
            "`haproxy.allow_from` is empty, so no client could reach the database",
            "in [haproxy]",
            "list your application networks (default: loopback and private ranges)",
        );
    }
    if let Some(rate) = &pg.basebackup_max_rate
        && !valid_max_rate(rate)
    {
        c.err(
            "spec::size",
            rate.span(),
            format!("`postgres.basebackup_max_rate` is not a rate pg_basebackup takes: `{}`", rate.get()),
            "invalid rate",
            "kilobytes per second with an optional k or M suffix, from 32k to 1024M, e.g. `100M`",
        );
    }
    c.duration("postgres.recopy_after", &pg.recopy_after, 1_000);
    if let Some(shm) = &pg.shm_size {
        match parse_bytes(shm) {
            Err(why) => c.err(
                "spec::size",
                shm.span(),
                format!("`postgres.shm_size` is not a size: {why}"),
                "not a size",
                "e.g. `512m`",
            ),
            Ok(b) if b < 64 * 1024 * 1024 => c.err(
                "spec::size",
                shm.span(),
                "`postgres.shm_size` is smaller than docker's default of 64m",
                "too small",
                "leave it out for a quarter of the memory limit",
            ),
            Ok(_) => {}
        }
    }
    for (name, value) in &pg.parameters {
        if let Some(why) = crate::params::owned(name) {
            c.err(
                "spec::parameter",
                name.span(),
                format!("`{}` is set by hacompile", name.get()),
                "not settable here",
                format!("it comes from {why}"),
            );
            continue;
        }
        let Some(kind) = crate::params::kind(name) else {
            let names = crate::params::KNOWN.iter().map(|(n, _)| *n);
            let help = match crate::values::suggest(name, names) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "a PostgreSQL setting name, e.g. `work_mem`; see `SHOW ALL` for the full list".to_owned(),
            };
            c.err(
                "spec::parameter",
                name.span(),
                format!("`{}` is not a PostgreSQL setting hacompile knows", name.get()),
                "unknown setting",
                help,
            );
            continue;
        };
        use crate::model::ParamValue;
        use crate::params::Kind;
        let checked = match (kind, value.get()) {
            (_, ParamValue::Text(t)) => crate::params::check_text(kind, t),
            (Kind::Bool, ParamValue::Bool(_)) => Ok(()),
            (Kind::Memory | Kind::Time | Kind::Int, ParamValue::Int(_)) => Ok(()),
            (Kind::Real, ParamValue::Int(_) | ParamValue::Float(_)) => Ok(()),
            (Kind::Text, ParamValue::Int(_) | ParamValue::Float(_) | ParamValue::Bool(_)) => Ok(()),
            _ => Err("this setting takes another type of value"),
        };
        if let Err(why) = checked {
            c.err(
                "spec::parameter",
                value.span(),
                format!("`{}`: {why}", name.get()),
                "invalid value",
                "see the PostgreSQL documentation of this setting",
            );
        }
    }
    // Alpine variants differ from what the compiled services assume.
    for (what, image, why) in [
        (
            "postgres.image",
            &pg.image,
            "the Alpine `postgres` image runs as UID 70, so secrets mounted for UID 999 are unreadable and the init script fails after initdb",
        ),
        ("haproxy.image", &hp.image, "the Alpine `haproxy` image has no bash, which the compiled healthcheck runs"),
    ] {
        let tag = image.rsplit_once(':').map_or("", |(_, t)| t);
        if tag.to_ascii_lowercase().contains("alpine") {
            c.err(
                "spec::image",
                image.span(),
                format!("`{what}` is an Alpine variant, which hacompile does not support"),
                "Alpine tag",
                format!("{why}; use the Debian-based tag (e.g. `postgres:16`, `haproxy:2.8`)"),
            );
        }
    }
    for (what, port) in [("write_port", &hp.write_port), ("read_port", &hp.read_port)] {
        if *port.get() < 1024 {
            c.err(
                "spec::port",
                port.span(),
                format!("`haproxy.{what}` is below 1024"),
                "privileged port",
                "the official haproxy image runs as the unprivileged user haproxy, which cannot bind ports below 1024; use e.g. 5000",
            );
        }
    }
}

/// `pg_basebackup --max-rate`: kB/s, or with a `k` or `M` suffix; 32 kB/s to 1 GB/s.
fn valid_max_rate(text: &str) -> bool {
    let (digits, factor) = match text.strip_suffix('M') {
        Some(d) => (d, 1024),
        None => (text.strip_suffix('k').unwrap_or(text), 1),
    };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| (32..=1024 * 1024).contains(&n.saturating_mul(factor)))
}

/// The pinned topology's services: a primary and 1 to 16 replicas; no
/// Patroni or etcd tables.
fn pinned_services(c: &mut Checker<'_>, spec: &Spec) {
    let pg = &spec.postgres;
    for (table, span) in
        [("[patroni]", spec.patroni.as_ref().map(Sp::span)), ("[dcs]", spec.dcs.as_ref().map(Sp::span))]
    {
        if let Some(span) = span {
            c.err(
                "spec::topology",
                span,
                format!("`{table}` is read only with `topology = \"patroni\"`"),
                "not used by the pinned topology",
                "set `topology = \"patroni\"` at the top of the spec for automatic failover, or remove the table",
            );
        }
    }
    match &pg.primary {
        Some(primary) => c.constraints("the primary", &primary.constraints, Some(primary.span())),
        None => c.err(
            "spec::primary",
            pg.image.span(),
            "the pinned topology needs a primary",
            "in [postgres]",
            "add `[postgres.primary]` with the `constraints` that pin it to its node, e.g. `constraints = [\"node.labels.pg.role == primary\"]`",
        ),
    }
    if pg.replicas.is_empty() {
        c.err(
            "spec::replicas",
            pg.image.span(),
            "the cluster has no replica",
            "in [postgres]",
            "add at least one `[[postgres.replicas]]` table with its `constraints`",
        );
    }
    if pg.replicas.len() > MAX_REPLICAS {
        c.err(
            "spec::replicas",
            pg.replicas[MAX_REPLICAS].span(),
            format!("more than {MAX_REPLICAS} replicas"),
            "too many",
            "asynchronous replicas each hold a replication slot and a WAL sender on the primary",
        );
    }
    for (i, r) in pg.replicas.iter().enumerate() {
        c.constraints(&format!("replica {}", i + 1), &r.constraints, Some(r.span()));
    }
}

/// Patroni needs at least this ttl (documented minimum of current releases).
pub const PATRONI_MIN_TTL: u32 = 20;
const PATRONI_MIN_RETRY_TIMEOUT: u32 = 3;
const PATRONI_MAX_SECONDS: u32 = 3600;
const MAX_DCS_MEMBERS: usize = 7;

/// The Patroni topology's services: members, the etcd cluster, their images
/// and Patroni's timing rule.
fn patroni_services(c: &mut Checker<'_>, spec: &Spec) -> Option<(ImageRef, ImageRef)> {
    let pg = &spec.postgres;
    let at = spec.topology.span();
    if let Some(primary) = &pg.primary {
        c.err(
            "spec::topology",
            primary.span(),
            "`[postgres.primary]` is not used by the patroni topology",
            "pinned topology only",
            "Patroni elects the primary among `[[patroni.members]]`: move its constraints there",
        );
    }
    if let Some(first) = pg.replicas.first() {
        c.err(
            "spec::topology",
            first.span(),
            "`[[postgres.replicas]]` is not used by the patroni topology",
            "pinned topology only",
            "list every server as a `[[patroni.members]]` table: any of them may lead",
        );
    }
    if pg.flavor != Flavor::Official {
        c.err(
            "spec::flavor",
            pg.image.span(),
            "the patroni topology builds on the official `postgres` image",
            "not the official flavor",
            "Patroni runs PostgreSQL itself; set `flavor = \"official\"` and `image = \"postgres:16\"`",
        );
    }
    let (Some(patroni), Some(dcs)) = (&spec.patroni, &spec.dcs) else {
        let missing = if spec.patroni.is_none() { "[patroni]" } else { "[dcs]" };
        c.err(
            "spec::topology",
            at,
            format!("the patroni topology needs a `{missing}` table"),
            "patroni topology",
            "see examples/ha-patroni.toml: `[patroni]` (image, members, REST API credentials) and `[dcs]` (the etcd image and members)",
        );
        return None;
    };
    let patroni_image = c.image("patroni.image", &patroni.image);
    let etcd_image = c.image("dcs.image", &dcs.image);
    c.secret_ref(&spec.secrets, &patroni.rest_api.password);
    if let Some(scope) = &patroni.scope {
        c.object_name("Patroni scope", scope);
    }
    if let Err(why) = check_pg_identifier(&patroni.rest_api.user) {
        c.err(
            "spec::name",
            patroni.rest_api.user.span(),
            "`patroni.rest_api.user` is not a plain name",
            "invalid name",
            why,
        );
    }

    // Members.
    if patroni.members.len() < 2 {
        c.err(
            "spec::members",
            patroni.span(),
            "Patroni needs at least 2 members",
            "in [patroni]",
            "add `[[patroni.members]]` tables (3 recommended), each with `constraints` that place it on its own node",
        );
    }
    if patroni.members.len() > MAX_REPLICAS {
        c.err(
            "spec::members",
            patroni.members[MAX_REPLICAS].span(),
            format!("more than {MAX_REPLICAS} members"),
            "too many",
            "each member holds a replication slot and a WAL sender on the leader",
        );
    }
    for (i, m) in patroni.members.iter().enumerate() {
        c.constraints(&format!("member {}", i + 1), &m.constraints, Some(m.span()));
    }

    // The etcd cluster: a majority must survive a loss.
    let n = dcs.members.len();
    if n == 0 || (n == 1 && !dcs.development) || n % 2 == 0 || n > MAX_DCS_MEMBERS {
        let why = match n {
            0 => "the etcd cluster has no member".to_owned(),
            1 => "one etcd member is a single point of failure".to_owned(),
            n if n > MAX_DCS_MEMBERS => format!("{n} etcd members: every write waits for a majority of them"),
            n => format!("{n} etcd members tolerate no more losses than {}", n - 1),
        };
        c.err(
            "spec::dcs",
            dcs.members.get(n.saturating_sub(1)).map_or(dcs.span(), Sp::span),
            why,
            "member count",
            "use 3 members (survive 1 loss) or 5 (survive 2), each on its own node; `development = true` allows a single one",
        );
    }
    for (i, m) in dcs.members.iter().enumerate() {
        c.constraints(&format!("etcd member {}", i + 1), &m.constraints, Some(m.span()));
    }

    // Patroni's timing rule, and the minimums of current releases.
    let (ttl, loop_wait, retry) = (*patroni.ttl.get(), *patroni.loop_wait.get(), *patroni.retry_timeout.get());
    for (what, v, min) in [
        ("ttl", &patroni.ttl, PATRONI_MIN_TTL),
        ("loop_wait", &patroni.loop_wait, 1),
        ("retry_timeout", &patroni.retry_timeout, PATRONI_MIN_RETRY_TIMEOUT),
    ] {
        if !(min..=PATRONI_MAX_SECONDS).contains(v.get()) {
            c.err(
                "spec::patroni-timing",
                v.span(),
                format!("`patroni.{what}` must be from {min} to {PATRONI_MAX_SECONDS} seconds"),
                "out of range",
                "Patroni refuses lower values (current releases: ttl >= 20, loop_wait >= 1, retry_timeout >= 3); defaults ttl 20, loop_wait 5, retry_timeout 5",
            );
        }
    }
    if u64::from(loop_wait) + 2 * u64::from(retry) > u64::from(ttl) {
        let d = c.error(
            "spec::patroni-timing",
            patroni.ttl.span(),
            format!(
                "loop_wait + 2 * retry_timeout = {} exceeds ttl = {ttl}",
                u64::from(loop_wait) + 2 * u64::from(retry)
            ),
        );
        *d = d
            .clone()
            .label("ttl")
            .help("Patroni requires `loop_wait + 2 * retry_timeout <= ttl`, else a healthy leader can lose its lock; raise ttl or lower the others");
        for v in [&patroni.loop_wait, &patroni.retry_timeout] {
            if !v.span().is_empty() {
                *d = d.clone().related(v.span(), "counted here");
            }
        }
    }
    for (what, v) in [
        ("patroni.maximum_lag_on_failover", &patroni.maximum_lag_on_failover),
        ("patroni.read_lag_limit", &patroni.read_lag_limit),
    ] {
        c.wal_size(what, v, "e.g. `1MB` or `16MB`");
    }
    patroni_image.zip(etcd_image)
}
