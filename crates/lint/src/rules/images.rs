//! Image references as written in a stack file, shared by the HC2xx rules.

use hacompile_image::ImageRef;

use super::interpolation::with_defaults;
use crate::context::StackCx;

/// Tags that move: pinning to them pins nothing.
pub const FLOATING_TAGS: &[&str] = &[
    "latest",
    "stable",
    "edge",
    "dev",
    "develop",
    "development",
    "nightly",
    "main",
    "master",
    "beta",
    "alpha",
    "unstable",
    "testing",
    "test",
    "current",
    "canary",
    "preview",
    "lts",
    "rolling",
    "mainline",
];

pub struct Image {
    pub service: String,
    pub span: std::ops::Range<usize>,
    pub parsed: Result<ImageRef, hacompile_image::RefError>,
}

/// Every service image known before deploy: literal, or a variable with a
/// default (`${IMG:-postgres:latest}` is judged as `postgres:latest`, what
/// ships when the variable is unset); not `${IMAGE}`.
pub fn collect(cx: &StackCx<'_>) -> Vec<Image> {
    cx.services()
        .iter()
        .filter_map(|svc| {
            let node = cx.at(svc.node, &["image"])?;
            let text = with_defaults(cx.doc.scalar(node)?)?;
            Some(Image { service: svc.name.to_owned(), span: cx.span(node), parsed: ImageRef::parse(&text) })
        })
        .collect()
}

/// The lock entry that pins this reference (same repository and tag).
pub fn locked_digest(lock: &hacompile_image::LockFile, image: &ImageRef) -> Option<String> {
    lock.entries().iter().find_map(|e| {
        let r = ImageRef::parse(&e.reference).ok()?;
        (r.canonical_name() == image.canonical_name() && r.tag() == image.tag()).then(|| e.digest.clone())
    })
}
