//! Cluster topologies: who runs the databases, how writes find the primary,
//! and which scripts the services need. Each topology is one module behind
//! [`Topology`]; the shared pieces (hardening, limits, logging, secrets, the
//! proxy's global sections) stay in `services` and `proxy`, so a new
//! topology touches no existing one.

use hacompile_haproxy::{Directive, Section};
use hacompile_spec::{TopologyKind, ValidSpec};
use hacompile_stack as st;

use crate::{OutputFile, PinnedImages};

pub mod patroni;
pub mod pinned;

/// What the compiler asks of a topology.
pub trait Topology {
    /// Files its services read (scripts), written beside the stack file and
    /// delivered as content-hashed swarm configs.
    fn companions(&self, spec: &ValidSpec, images: &PinnedImages) -> Vec<OutputFile>;
    /// Its database services (and any helpers), in a fixed order.
    fn services(&self, spec: &ValidSpec, images: &PinnedImages, network: &str) -> Vec<(String, st::Service)>;
    /// Its proxy sections: the write and read listeners. `guard` comes first
    /// in each (the client allow list), `check` is the configured health check.
    fn listeners(&self, spec: &ValidSpec, guard: &[Directive], check: Option<&Directive>) -> Vec<Section>;
    /// Overlay networks beyond the spec's own, with the same encryption.
    fn extra_networks(&self, _spec: &ValidSpec) -> Vec<String> {
        Vec::new()
    }
}

/// The topology a spec asks for.
pub fn of(spec: &ValidSpec) -> &'static dyn Topology {
    match spec.spec().topology.get() {
        TopologyKind::Pinned => &pinned::Pinned,
        TopologyKind::Patroni => &patroni::Patroni,
    }
}
