//! Compiles a validated spec and its lock into the files a swarm deploys:
//! `docker-stack.yml`, `haproxy.cfg` and, for the official image flavor, the
//! replication scripts. Everything is built as typed models first
//! ([`hacompile_stack`], [`hacompile_haproxy`]) and serialized once, so the
//! same input always gives the same bytes.

mod backup;
pub mod graph;
pub mod metrics;
mod names;
mod proxy;
pub mod restore;
mod services;
pub mod topology;

use hacompile_image::{Digest, ImageRef, LockFile};
use hacompile_spec::{Sp, SpecDiagnostic, SpecErrors, ValidSpec};
use sha2::{Digest as _, Sha256};

pub use names::*;
pub use proxy::haproxy_config;

/// One output file: its name relative to the stack file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub name: String,
    pub contents: String,
    /// Whether the file is meant to be executable (scripts).
    pub executable: bool,
    /// The key of the swarm config that delivers it; empty for a file the
    /// stack does not deliver (the Patroni image's Dockerfile).
    pub config_key: String,
}

impl OutputFile {
    /// A file the stack delivers as a swarm config under `key`.
    pub fn config(name: impl Into<String>, key: impl Into<String>, contents: &str, executable: bool) -> Self {
        Self { name: name.into(), contents: contents.to_owned(), executable, config_key: key.into() }
    }

    /// A file written beside the stack that no service reads.
    pub fn beside(name: impl Into<String>, contents: String) -> Self {
        Self { name: name.into(), contents, executable: false, config_key: String::new() }
    }
}

/// What a build produces. The stack file comes first; the others are the
/// files it refers to with stack-relative `file:` paths.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub stack: hacompile_stack::StackFile,
    pub haproxy: hacompile_haproxy::Config,
    pub files: Vec<OutputFile>,
}

impl Compiled {
    pub fn stack_file(&self) -> &OutputFile {
        &self.files[0]
    }

    /// The files the stack file refers to (written beside it).
    pub fn companions(&self) -> &[OutputFile] {
        &self.files[1..]
    }
}

/// The two images of a spec, pinned.
#[derive(Debug, Clone)]
pub struct PinnedImages {
    pub postgres: String,
    pub haproxy: String,
    /// The Patroni members' image and the etcd image (topology `patroni`).
    pub patroni: Option<(String, String)>,
    /// The database services' image with pgBackRest (topology `pinned` with `[backup]`).
    pub backup: Option<String>,
    /// The postgres_exporter image (with `[postgres.exporter]`).
    pub exporter: Option<String>,
}

/// Pins each image from its own digest or from the lock.
pub fn pin_images(spec: &ValidSpec, lock: &LockFile) -> Result<PinnedImages, SpecErrors> {
    let s = spec.spec();
    let mut errors = Vec::new();
    let mut keep = |r: Result<String, Box<SpecDiagnostic>>| match r {
        Ok(p) => Some(p),
        Err(d) => {
            errors.push(*d);
            None
        }
    };
    let postgres = keep(pin_one(spec, spec.postgres_image(), &s.postgres.image, lock));
    let haproxy = keep(pin_one(spec, spec.haproxy_image(), &s.haproxy.image, lock));
    let patroni = match (spec.patroni_images(), &s.patroni, &s.dcs) {
        (Some((members, etcd)), Some(p), Some(d)) => {
            let members = pin_one(spec, members, &p.image, lock).map_err(|d| built_here(spec, d, "patroni", members));
            Some((keep(members), keep(pin_one(spec, etcd, &d.image, lock))))
        }
        _ => None,
    };
    // Every image is tried, so one build reports every missing entry.
    let backup = match (spec.backup_image(), s.backup.as_ref().and_then(|b| b.image.as_ref())) {
        (Some(img), Some(at)) => {
            Some(keep(pin_one(spec, img, at, lock).map_err(|d| built_here(spec, d, "postgres", img))))
        }
        _ => None,
    };
    let exporter = match (spec.exporter_image(), &s.postgres.exporter) {
        (Some(img), Some(e)) => Some(keep(pin_one(spec, img, &e.image, lock))),
        _ => None,
    };
    if !errors.is_empty() {
        return Err(SpecErrors { diagnostics: errors });
    }
    let (backup, exporter) = (backup.flatten(), exporter.flatten());
    match (postgres, haproxy, patroni) {
        (Some(postgres), Some(haproxy), None) => {
            Ok(PinnedImages { postgres, haproxy, patroni: None, backup, exporter })
        }
        (Some(postgres), Some(haproxy), Some((Some(members), Some(etcd)))) => {
            Ok(PinnedImages { postgres, haproxy, patroni: Some((members, etcd)), backup, exporter })
        }
        _ => Err(SpecErrors { diagnostics: errors }),
    }
}

/// An image the user builds from a recipe hacompile emits has no lock entry
/// until it is built: say how, not only that it is missing. The recipe needs
/// only `postgres.image` locked, which `lock --only` does alone.
fn built_here(spec: &ValidSpec, d: Box<SpecDiagnostic>, recipe: &str, img: &ImageRef) -> Box<SpecDiagnostic> {
    if d.code != "build::not-locked" {
        return d;
    }
    let help = format!(
        "build it first: `hacompile lock {0} --only {2}` (the recipe's base), `hacompile dockerfile {0} > {recipe}.Dockerfile`, `docker build -f {recipe}.Dockerfile -t {1} .`, `docker push {1}`, then `hacompile lock {0}`",
        spec.source().name(),
        img.as_written(),
        spec.postgres_image().as_written()
    );
    Box::new((*d).help(help))
}

fn pin_one(spec: &ValidSpec, img: &ImageRef, at: &Sp<String>, lock: &LockFile) -> Result<String, Box<SpecDiagnostic>> {
    let source = spec.source();
    let locked: Option<Digest> = lock.digest_for(img.as_written());
    match (img.digest(), locked) {
        (Some(own), Some(locked)) if *own != locked => Err(Box::new(SpecDiagnostic::new(
            source,
            "build::lock-mismatch",
            at.span(),
            format!("the image `{}` names a digest that differs from hacompile.lock ({locked})", img.as_written()),
        )
        .label("digest here")
        .help("run `hacompile lock --update` to re-resolve, or remove the digest from the spec and let the lock pin it"))),
        (Some(own), _) => Ok(img.pinned(own)),
        (None, Some(locked)) => Ok(img.pinned(&locked)),
        (None, None) => Err(Box::new(SpecDiagnostic::new(
            source,
            "build::not-locked",
            at.span(),
            format!("the image `{}` has no digest in hacompile.lock", img.as_written()),
        )
        .label("not pinned")
        .help(format!(
            "run `hacompile lock {}` (online) to resolve it from its registry and record the digest; build itself never touches the network",
            source.name()
        )))),
    }
}

/// The database image recipe of a spec: the Patroni members' image
/// (topology `patroni`, with pgBackRest when `[backup]` is set) or, for the
/// pinned topology with `[backup]`, the official image plus pgBackRest.
/// Needs only the `postgres` image pinned, so it can be built before the
/// image it makes is locked.
pub fn image_dockerfile(spec: &ValidSpec, lock: &LockFile) -> Result<(&'static str, String), SpecErrors> {
    let s = spec.spec();
    let name = match (spec.patroni().is_some(), spec.backup().is_some()) {
        (true, _) => topology::patroni::DOCKERFILE,
        (false, true) => topology::pinned::DOCKERFILE,
        (false, false) => {
            return Err(SpecErrors {
                diagnostics: vec![
                    SpecDiagnostic::new(
                        spec.source(),
                        "build::no-image",
                        s.topology.span(),
                        "this spec runs the official image as it is, so there is no image to build",
                    )
                    .label("topology")
                    .help("an image is built for `topology = \"patroni\"` (Patroni) or with `[backup]` (pgBackRest)"),
                ],
            });
        }
    };
    let postgres = pin_one(spec, spec.postgres_image(), &s.postgres.image, lock)
        .map_err(|d| SpecErrors { diagnostics: vec![*d] })?;
    let text = if spec.patroni().is_some() {
        topology::patroni::dockerfile(spec, &postgres)
    } else {
        topology::pinned::dockerfile(spec, &postgres)
    };
    Ok((name, text))
}

/// An image recipe from a template: its leading comments, `FROM` the pinned
/// image, the rest; with `[backup]`, pgBackRest is installed after the
/// template's `apt-get install` line.
pub(crate) fn image_recipe(spec: &ValidSpec, postgres_image: &str, template: &str) -> String {
    let mut out = format!(
        "# Generated by hacompile from {}. Do not edit: change the spec and build again.\n",
        hacompile_boundary::text::line(spec.source().name())
    );
    let lines: Vec<&str> = template.lines().collect();
    let split = lines.iter().position(|l| !l.starts_with('#')).unwrap_or(lines.len());
    for l in &lines[..split] {
        out.push_str(l);
        out.push('\n');
    }
    // A pinned reference: validated, name and digest only.
    out.push_str(&format!("FROM {postgres_image}\n"));
    for l in &lines[split..] {
        out.push_str(l);
        out.push('\n');
        if spec.backup().is_some() && l.contains("apt-get install") && !l.contains("pgbackrest") {
            out.push_str("    apt-get install -y --no-install-recommends pgbackrest; \\\n");
            out.push_str("    install -d -o postgres -g postgres -m 0750 /var/lib/pgbackrest; \\\n");
        }
    }
    out
}

/// The first 12 hex digits of the SHA-256 of a file: part of a swarm config's
/// name, so changed content gets a new config and rolls out on deploy.
pub fn content_hash(contents: &str) -> String {
    let digest = Sha256::digest(contents.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Compiles a spec. Fails only when an image cannot be pinned.
pub fn compile(spec: &ValidSpec, lock: &LockFile) -> Result<Compiled, SpecErrors> {
    let images = pin_images(spec, lock)?;
    let haproxy = haproxy_config(spec);
    let haproxy_text = haproxy.render();
    let mut companions = vec![OutputFile::config(HAPROXY_CFG, services::CFG_KEY_HAPROXY, &haproxy_text, false)];
    companions.extend(topology::of(spec).companions(spec, &images));
    companions.extend(backup::companions(spec));
    companions.extend(metrics::companions(spec));
    let stack = services::stack(spec, &images, &companions);
    let mut header = vec![
        format!("Generated by hacompile from {}. Do not edit: change the spec and build again.", spec.source().name()),
        format!("Deploy: docker stack deploy -c docker-stack.yml {}", spec.spec().stack.get()),
    ];
    let names: Vec<&str> = companions.iter().filter(|f| !f.config_key.is_empty()).map(|f| f.name.as_str()).collect();
    header.push(format!("Reads, beside this file: {}", names.join(", ")));
    let stack_text = stack.to_yaml(&header);
    let mut files = vec![OutputFile::beside(STACK_FILE, stack_text)];
    files.extend(companions);
    Ok(Compiled { stack, haproxy, files })
}

/// The pinned topology's scripts are fixed files, parameterised by environment.
pub use topology::pinned::{
    HEALTHCHECK_SCRIPT, PRIMARY_ENTRYPOINT_SCRIPT, PRIMARY_INIT_SCRIPT, REPLICA_ENTRYPOINT_SCRIPT,
};

#[cfg(test)]
mod tests {
    use super::*;
    use hacompile_spec::values::{MAX_STACK_NAME, SWARM_MAX_CONFIG_NAME, SWARM_MAX_SERVICE_NAME};

    #[test]
    fn the_longest_stack_name_and_the_most_replicas_give_names_swarm_accepts() {
        let stack = "s".repeat(MAX_STACK_NAME);
        let mut text = include_str!("../../../examples/ha-postgres.toml").replacen(
            "stack = \"ha_db\"",
            &format!("stack = \"{stack}\""),
            1,
        );
        for i in 2..=16 {
            text.push_str(&format!("\n[[postgres.replicas]]\nconstraints = [\"node.hostname == db-{i}\"]\n"));
        }
        let source = hacompile_spec::SourceFile::new("spec.toml", text);
        let spec = hacompile_spec::load(&source).expect("a valid spec");
        let lock = LockFile::parse(include_str!("../../../examples/hacompile.lock")).expect("the example lock");
        let compiled = compile(&spec, &lock).expect("compiles");
        assert_eq!(compiled.stack.configs.len(), 5, "haproxy.cfg and the official flavor's four scripts");
        for config in compiled.stack.configs.values() {
            assert!(config.name.len() <= SWARM_MAX_CONFIG_NAME, "{}", config.name);
        }
        assert!(compiled.stack.services.contains_key("pg-replica-16"));
        for service in compiled.stack.services.keys() {
            // `docker stack deploy` names each service `<stack>_<service>`.
            assert!(format!("{stack}_{service}").len() <= SWARM_MAX_SERVICE_NAME, "{service}");
        }
    }
}
