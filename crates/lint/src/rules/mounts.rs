//! Bind mounts of a service, shared by the host-mount rules.

use super::interpolation::{split_colons, with_defaults};
use crate::context::StackCx;
use crate::yaml::NodeId;

/// A bind mount: the host path (a variable's default when it has one), the
/// path in the container, whether it is read-only, and its node.
pub struct Bind {
    /// `None` when the source is a variable without a default.
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
    pub node: NodeId,
}

fn is_host_path(s: &str) -> bool {
    s.starts_with(['/', '.', '~'])
}

/// Every bind mount, short or long syntax. A source written as a variable
/// is judged by its default (`${DOCKER_SOCK:-/var/run/docker.sock}`).
pub fn binds(cx: &StackCx<'_>, svc_node: NodeId) -> Vec<Bind> {
    let Some(list) = cx.at(svc_node, &["volumes"]).and_then(|v| cx.doc.seq(v)) else { return Vec::new() };
    let mut out = Vec::new();
    for &item in list {
        if let Some(short) = cx.doc.scalar(item) {
            let parts = split_colons(short);
            let [source, target, rest @ ..] = parts.as_slice() else { continue };
            let read_only = rest.first().is_some_and(|o| o.split(',').any(|f| f == "ro"));
            let target = (*target).to_owned();
            if source.starts_with('$') {
                let resolved = with_defaults(source).map(|s| s.into_owned());
                if resolved.as_deref().is_none_or(is_host_path) {
                    out.push(Bind { source: resolved, target, read_only, node: item });
                }
            } else if is_host_path(source) {
                out.push(Bind { source: Some((*source).to_owned()), target, read_only, node: item });
            }
        } else if cx.str_at(item, &["type"]) == Some("bind")
            && let Some(source) = cx.str_at(item, &["source"])
        {
            out.push(Bind {
                source: with_defaults(source).map(|s| s.into_owned()),
                target: cx.str_at(item, &["target"]).unwrap_or("").to_owned(),
                read_only: cx.str_at(item, &["read_only"]) == Some("true"),
                node: item,
            });
        }
    }
    out
}
