//! Resolving image tags to content digests.
//!
//! For each reference: credentials the way docker finds them, a token from
//! the registry's token service (the Docker token flow, `token`), then a `HEAD` of the manifest by
//! tag with all four manifest media types in `Accept`, so a multi-arch image
//! answers with its index (or manifest list) and its digest, never a child's.
//! When a manifest body is fetched (no digest header, or `--platform`), its
//! SHA-256 is computed and must equal what the registry claims. Failures are
//! classified (auth, not found, rate limit, server, timeout, TLS, DNS,
//! refused, digest mismatch) with bounded retries where a retry can help.
//! Credentials are never printed: errors name the registry, not the secret,
//! and never sent in clear: only over HTTPS, or to a host named insecure.
//! Every body read is bounded (`body`), and one deadline bounds each
//! image's whole resolution, token included.

mod body;
mod credentials;
mod resolve;
mod token;

pub use credentials::{CredentialSource, Credentials, lookup as lookup_credentials};
pub use resolve::{Platform, Progress, ResolveError, Resolved, Resolver, ResolverConfig};

/// Accept header values, in preference order: index, list, single manifests.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
];
