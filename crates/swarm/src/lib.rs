//! Preflight: what a compiled stack needs from a swarm against what the
//! live swarm has.
//!
//! - [`snapshot`]: a typed picture of the swarm (nodes, secrets, other
//!   services' published ports, API versions), parsed from the docker CLI's
//!   JSON with only the fields used;
//! - [`docker`]: reads that picture through the docker CLI, each call bounded
//!   in time and in output size;
//! - [`constraint`]: swarm's placement constraints, evaluated against a node
//!   as swarmkit does;
//! - [`check`]: the stack against the snapshot, as typed findings with the
//!   exact commands that fix them; the binary prints them.
//!
//! Nothing here prints or exits.

pub mod check;
pub mod constraint;
pub mod docker;
pub mod probe;
pub mod snapshot;

pub use check::{Finding, Report, check};
pub use snapshot::Snapshot;

use hacompile_image::{LockEntry, LockFile};
use hacompile_spec::{SpecErrors, ValidSpec};

/// The stack a spec compiles to, for preflight. Placement, secrets and ports
/// do not depend on the images: an image without a digest gets a
/// placeholder one, so preflight needs no lock and no network.
pub fn stack_of(spec: &ValidSpec) -> Result<hacompile_stack::StackFile, SpecErrors> {
    let mut lock = LockFile::default();
    for (img, _) in spec.images() {
        if img.digest().is_some() {
            continue;
        }
        lock.insert(LockEntry {
            reference: img.as_written().to_owned(),
            name: img.canonical_name(),
            tag: img.tag().unwrap_or("latest").to_owned(),
            digest: format!("sha256:{}", "0".repeat(64)),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            registry: img.registry().to_owned(),
        });
    }
    hacompile_compile::compile(spec, &lock).map(|c| c.stack)
}
