//! etcd members in a stack: which services run an etcd server, and the
//! cluster each one declares (`ETCD_INITIAL_CLUSTER`, `--initial-cluster`).

use std::collections::HashSet;
use std::ops::Range;

use super::interpolation::with_defaults;
use crate::context::StackCx;
use crate::yaml::NodeId;

/// Environment variables only an etcd server reads (etcd maps every flag to
/// `ETCD_<FLAG>`). Client settings (`ETCD_HOST`, `ETCD_ENDPOINTS`, Spilo's
/// `ETCD3_HOSTS`) do not make a service a member.
const SERVER_ENV: &[&str] = &[
    "ETCD_NAME",
    "ETCD_DATA_DIR",
    "ETCD_INITIAL_CLUSTER",
    "ETCD_INITIAL_CLUSTER_STATE",
    "ETCD_INITIAL_CLUSTER_TOKEN",
    "ETCD_INITIAL_ADVERTISE_PEER_URLS",
    "ETCD_LISTEN_PEER_URLS",
    "ETCD_LISTEN_CLIENT_URLS",
    "ETCD_ADVERTISE_CLIENT_URLS",
];

/// Words of an image name that make it a tool around etcd, not etcd.
const TOOL_WORDS: &[&str] = &["backup", "browser", "exporter", "operator", "ui", "web", "client", "tools", "defrag"];

/// Clients that etcd images also carry: a service that runs only these is a job.
const CLIENTS: &[&str] = &["etcdctl", "etcdutl"];

/// The services that run an etcd server: the image is etcd (a name word
/// `etcd`: `quay.io/coreos/etcd`, `bitnami/etcd`), the command runs `etcd`,
/// or the environment configures a server. A swarm job, or a command that
/// runs only `etcdctl`, is not a member.
/// Indices into [`StackCx::services`].
pub fn members(cx: &StackCx<'_>) -> Vec<usize> {
    cx.services()
        .iter()
        .zip(cx.environments())
        .enumerate()
        .filter(|(_, (svc, env))| {
            if matches!(cx.str_at(svc.node, &["deploy", "mode"]), Some("replicated-job" | "global-job")) {
                return false;
            }
            let programs = cx.programs(svc.node);
            if programs.iter().any(|p| p == "etcd") {
                return true;
            }
            if programs.iter().any(|p| CLIENTS.contains(&p.as_str())) {
                return false;
            }
            let image = cx.image_base(svc).is_some_and(|base| {
                let words: Vec<&str> = base.split(['-', '_']).collect();
                words.contains(&"etcd") && !words.iter().any(|w| TOOL_WORDS.contains(w))
            });
            image || env.iter().any(|e| SERVER_ENV.contains(&e.key))
        })
        .map(|(i, _)| i)
        .collect()
}

/// A member's declared initial cluster: the text (defaults of variables
/// applied) and where its value is written.
pub struct Declared {
    pub text: String,
    pub span: Range<usize>,
}

impl Declared {
    /// The distinct member names (`name=url` entries; a member with several
    /// peer URLs is listed once per URL).
    pub fn names(&self) -> Vec<&str> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut names: Vec<&str> = Vec::new();
        for entry in self.text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let name = entry.split('=').next().unwrap_or(entry).trim();
            if seen.insert(name) {
                names.push(name);
            }
        }
        names
    }
}

/// The initial cluster a member declares, from `ETCD_INITIAL_CLUSTER` or an
/// `--initial-cluster` argument; `None` when it declares none, or it is a
/// variable without a default.
pub fn declared(cx: &StackCx<'_>, index: usize) -> Option<Declared> {
    let svc = &cx.services()[index];
    if let Some(entry) = cx.environments()[index].iter().find(|e| e.key == "ETCD_INITIAL_CLUSTER") {
        let text = with_defaults(entry.value?)?.into_owned();
        return Some(Declared { text, span: entry.value_span.clone() });
    }
    for field in ["entrypoint", "command"] {
        let Some(node) = cx.at(svc.node, &[field]) else { continue };
        let items: Vec<NodeId> = cx.doc.seq(node).map_or_else(|| vec![node], <[_]>::to_vec);
        for (i, &item) in items.iter().enumerate() {
            let Some(text) = cx.doc.scalar(item) else { continue };
            let mut words = text.split_whitespace().peekable();
            while let Some(word) = words.next() {
                let word = word.trim_matches(['"', '\'']);
                let Some(rest) = word.strip_prefix("--initial-cluster") else { continue };
                let (value, at) = if let Some(v) = rest.strip_prefix('=') {
                    (v.to_owned(), item)
                } else if !rest.is_empty() {
                    // `--initial-cluster-state`, `--initial-cluster-token`.
                    continue;
                } else if let Some(next) = words.peek() {
                    (next.trim_matches(['"', '\'']).to_owned(), item)
                } else if let Some(&next) = items.get(i + 1) {
                    (cx.doc.scalar(next)?.to_owned(), next)
                } else {
                    return None;
                };
                let text = with_defaults(&value)?.into_owned();
                // The value's own bytes when written verbatim, else the whole item.
                let node_span = cx.span(at);
                let span = cx.src.text[node_span.clone()]
                    .find(value.as_str())
                    .filter(|_| !value.is_empty())
                    .map_or(node_span.clone(), |s| node_span.start + s..node_span.start + s + value.len());
                return Some(Declared { text, span });
            }
        }
    }
    None
}
