//! Bind mounts of a service, shared by the host-mount rules.

use crate::context::StackCx;
use crate::yaml::NodeId;

/// (host path, node) of every bind mount, short or long syntax.
pub fn binds(cx: &StackCx<'_>, svc_node: NodeId) -> Vec<(String, NodeId)> {
    let Some(list) = cx.at(svc_node, &["volumes"]).and_then(|v| cx.doc.seq(v)) else { return Vec::new() };
    let mut out = Vec::new();
    for &item in list {
        if let Some(short) = cx.doc.scalar(item) {
            let source = short.split(':').next().unwrap_or("");
            if source.starts_with(['/', '.', '~']) {
                out.push((source.to_owned(), item));
            }
        } else if cx.str_at(item, &["type"]) == Some("bind")
            && let Some(source) = cx.str_at(item, &["source"])
        {
            out.push((source.to_owned(), item));
        }
    }
    out
}
