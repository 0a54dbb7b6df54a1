//! The topology as a picture: clients, the proxies, the database services
//! with the nodes their constraints name and the volumes they own, etcd
//! (patroni), the pgBackRest repository (with `[backup]`), the networks and
//! the write and read routes. One model, two
//! renderings: Mermaid (for READMEs) and SVG. Deterministic: the same spec
//! gives the same bytes. Text from the spec goes through the one sanitizer
//! and is escaped for the format.

use std::fmt::Write as _;

use hacompile_boundary::text::line;
use hacompile_spec::{Role, TopologyKind, ValidSpec};

use crate::names::HAPROXY_SERVICE;

/// A box of the picture.
#[derive(Debug, Clone)]
pub struct GraphNode {
    pub id: String,
    pub title: String,
    /// Further lines: placement, volume, image role.
    pub lines: Vec<String>,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Clients,
    Proxy,
    Database,
    Dcs,
    /// The backup repository the databases archive WAL and back up into.
    Repository,
}

/// An arrow of the picture.
#[derive(Debug, Clone)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub label: String,
    /// Drawn dashed: a fallback route (backup server, leader for reads).
    pub fallback: bool,
}

#[derive(Debug, Clone)]
pub struct Graph {
    pub title: String,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    pub networks: Vec<String>,
}

/// The etcd cluster as a whole: the target of the members' lock edges.
pub const DCS: &str = "dcs";
/// The pgBackRest repository's box.
pub const REPOSITORY: &str = "pgbackrest_repository";
/// The one label of the arrows into the repository (every database
/// service archives and backs up while it is the primary).
pub const REPOSITORY_ROUTE: &str = "WAL archive, base backups (the primary)";

fn placement(constraints: &[String]) -> String {
    if constraints.is_empty() { "every node".to_owned() } else { constraints.join(" && ") }
}

/// The picture's model for a spec.
pub fn graph(spec: &ValidSpec) -> Graph {
    let s = spec.spec();
    let hp = &s.haproxy;
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut ports = vec![format!("write :{}", hp.write_port.get()), format!("read :{}", hp.read_port.get())];
    if let Some(stats) = &hp.stats {
        let metrics = if *stats.metrics.get() { ", /metrics" } else { "" };
        ports.push(format!("stats :{} (auth{metrics})", stats.port.get()));
    }
    nodes.push(GraphNode { id: "clients".into(), title: "clients".into(), lines: ports, kind: NodeKind::Clients });
    let proxy_on: Vec<String> = hp.constraints.iter().map(|c| c.get().clone()).collect();
    nodes.push(GraphNode {
        id: HAPROXY_SERVICE.into(),
        title: "haproxy (global)".into(),
        lines: vec![format!("on {}", placement(&proxy_on)), "host-mode ports".into()],
        kind: NodeKind::Proxy,
    });
    edges.push(GraphEdge {
        from: "clients".into(),
        to: HAPROXY_SERVICE.into(),
        label: format!(":{} :{}", hp.write_port.get(), hp.read_port.get()),
        fallback: false,
    });
    let patroni = *s.topology.get() == TopologyKind::Patroni;
    for db in spec.db_services() {
        let constraints: Vec<String> = db.node.constraints.iter().map(|c| c.get().clone()).collect();
        let role = match db.role {
            Role::Primary => "primary (pinned)",
            Role::Replica(_) => "streaming replica",
            Role::Member(_) => "Patroni member",
        };
        let mut lines =
            vec![role.to_owned(), format!("on {}", placement(&constraints)), format!("volume {}", db.volume)];
        if let Some(e) = spec.exporter() {
            lines.push(format!("metrics: {} :{}", crate::metrics::exporter_name(&db.name), e.port.get()));
        }
        nodes.push(GraphNode { id: db.name.clone(), title: db.name.clone(), lines, kind: NodeKind::Database });
        let (write, read, read_fallback) = match db.role {
            Role::Primary => (true, true, true),
            Role::Replica(_) => (false, true, false),
            Role::Member(_) => (true, true, false),
        };
        if write {
            let label = if patroni { "writes if leader (/primary)" } else { "writes" };
            edges.push(GraphEdge {
                from: HAPROXY_SERVICE.into(),
                to: db.name.clone(),
                label: label.into(),
                fallback: false,
            });
        }
        if read {
            let label = match (patroni, read_fallback) {
                (true, _) => "reads if replica within lag",
                (false, true) => "reads while no replica is up",
                (false, false) => "reads",
            };
            edges.push(GraphEdge {
                from: HAPROXY_SERVICE.into(),
                to: db.name.clone(),
                label: label.into(),
                fallback: read_fallback,
            });
        }
    }
    for e in spec.dcs_services() {
        let constraints: Vec<String> = e.node.constraints.iter().map(|c| c.get().clone()).collect();
        nodes.push(GraphNode {
            id: e.name.clone(),
            title: e.name.clone(),
            lines: vec![
                "etcd member".into(),
                format!("on {}", placement(&constraints)),
                format!("volume {}", e.volume),
            ],
            kind: NodeKind::Dcs,
        });
    }
    if patroni {
        for db in spec.db_services() {
            edges.push(GraphEdge {
                from: db.name.clone(),
                to: DCS.into(),
                label: "leader lock".into(),
                fallback: true,
            });
        }
    }
    if let Some(b) = spec.backup() {
        let r = b.repository.get();
        let mut lines = vec!["WAL + backups from the primary".to_owned()];
        match r.kind.get() {
            hacompile_spec::RepoType::Posix => {
                lines.push(format!("volume {}", spec.backup_volume().unwrap_or_default()));
                match &r.nfs {
                    Some(nfs) => lines.push(format!("NFS {}:{}", nfs.get().address.get(), nfs.get().export.get())),
                    None => lines.push("local: one node only".into()),
                }
            }
            hacompile_spec::RepoType::S3 => {
                let get =
                    |v: &Option<hacompile_spec::Sp<String>>| v.as_ref().map(|v| v.get().clone()).unwrap_or_default();
                lines.push(format!("S3 bucket {}", get(&r.bucket)));
                lines.push(get(&r.endpoint));
            }
        }
        lines.push(if *b.encrypt.get() { "encrypted (aes-256-cbc)".into() } else { "NOT encrypted".into() });
        lines.push(format!("full {}, retention {}", b.schedule.full.get(), b.retention_full.get()));
        nodes.push(GraphNode {
            id: REPOSITORY.into(),
            title: "pgBackRest repository".into(),
            lines,
            kind: NodeKind::Repository,
        });
        for db in spec.db_services() {
            edges.push(GraphEdge {
                from: db.name.clone(),
                to: REPOSITORY.into(),
                label: REPOSITORY_ROUTE.into(),
                fallback: false,
            });
        }
    }
    let net = s.network.name.get();
    let crypt = if s.network.encrypted { "encrypted overlay" } else { "overlay, NOT encrypted" };
    let mut networks = vec![format!("{net}: {crypt} (haproxy, databases)")];
    if patroni {
        networks.push(format!("{net}_dcs: {crypt} (members, etcd only)"));
    }
    Graph {
        title: format!("{} ({} topology)", s.stack.get(), if patroni { "patroni" } else { "pinned" }),
        nodes,
        edges,
        networks,
    }
}

/// Mermaid flowchart text.
pub fn mermaid(g: &Graph) -> String {
    // Mermaid labels are quoted strings; `"` and `#` are written as entities.
    let esc = |t: &str| line(t).replace('#', "#35;").replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;");
    let id = |t: &str| t.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let mut out = String::new();
    let _ = writeln!(out, "---\ntitle: \"{}\"\n---", esc(&g.title));
    out.push_str("flowchart LR\n");
    let dcs: Vec<&GraphNode> = g.nodes.iter().filter(|n| n.kind == NodeKind::Dcs).collect();
    for n in g.nodes.iter().filter(|n| n.kind != NodeKind::Dcs) {
        out.push_str(&mermaid_node(n, &esc, &id));
    }
    if !dcs.is_empty() {
        let _ = writeln!(out, "    subgraph {DCS}[\"etcd cluster (a majority must be up)\"]");
        for n in &dcs {
            out.push_str("    ");
            out.push_str(&mermaid_node(n, &esc, &id));
        }
        out.push_str("    end\n");
    }
    for e in &g.edges {
        let arrow = if e.fallback { "-.->" } else { "-->" };
        let _ = writeln!(out, "    {} {arrow}|\"{}\"| {}", id(&e.from), esc(&e.label), id(&e.to));
    }
    for (i, n) in g.networks.iter().enumerate() {
        let _ = writeln!(out, "    net{i}>\"{}\"]", esc(n));
    }
    out
}

fn mermaid_node(n: &GraphNode, esc: &dyn Fn(&str) -> String, id: &dyn Fn(&str) -> String) -> String {
    {
        let mut label = format!("<b>{}</b>", esc(&n.title));
        for l in &n.lines {
            let _ = write!(label, "<br/>{}", esc(l));
        }
        let (open, close) = match n.kind {
            NodeKind::Clients => ("([", "])"),
            NodeKind::Proxy => ("[[", "]]"),
            NodeKind::Database => ("[(", ")]"),
            NodeKind::Dcs => ("{{", "}}"),
            NodeKind::Repository => ("[/", "/]"),
        };
        format!("    {}{open}\"{label}\"{close}\n", id(&n.id))
    }
}

const W: u32 = 230;
const LINE_H: u32 = 16;
const GAP: u32 = 24;
const COLS: [u32; 4] = [20, 340, 730, 1050];

fn xml(t: &str) -> String {
    line(t).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// SVG drawing: clients, proxy, databases and etcd in four columns.
pub fn svg(g: &Graph) -> String {
    let column = |k: NodeKind| match k {
        NodeKind::Clients => 0,
        NodeKind::Proxy => 1,
        NodeKind::Database => 2,
        NodeKind::Dcs | NodeKind::Repository => 3,
    };
    let height = |n: &GraphNode| 28 + LINE_H * n.lines.len() as u32;
    // Place each node: its column's next free y.
    let mut next_y = [60u32, 60, 60, 84];
    let mut placed: Vec<(&GraphNode, u32, u32, u32)> = Vec::new();
    for n in &g.nodes {
        let c = column(n.kind);
        let y = next_y[c];
        next_y[c] += height(n) + GAP;
        placed.push((n, COLS[c], y, height(n)));
    }
    let has_dcs = g.nodes.iter().any(|n| matches!(n.kind, NodeKind::Dcs | NodeKind::Repository));
    let width = if has_dcs { COLS[3] + W + 20 } else { COLS[2] + W + 20 };
    let body_h = next_y.iter().copied().max().unwrap_or(60);
    let total_h = body_h + 30 + LINE_H * g.networks.len() as u32;
    // The etcd column's frame stands for the cluster the members lock in.
    let dcs_nodes: Vec<_> = placed.iter().filter(|(n, ..)| n.kind == NodeKind::Dcs).collect();
    let dcs_frame = dcs_nodes.first().map(|(_, x, y, _)| {
        let bottom = dcs_nodes.iter().map(|(_, _, y, h)| y + h).max().unwrap_or(*y);
        (x - 10, y - 22, W + 20, bottom - y + 32)
    });
    let find = |id: &str| {
        if id == DCS {
            return dcs_frame.map(|(x, y, _, h)| (&g.nodes[0], x, y, h));
        }
        placed.iter().find(|(n, ..)| n.id == id).map(|(n, x, y, h)| (*n, *x, *y, *h))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{total_h}\" viewBox=\"0 0 {width} {total_h}\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">"
    );
    out.push_str("  <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker></defs>\n");
    out.push_str(&format!("  <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{total_h}\" fill=\"#ffffff\"/>\n"));
    let _ = writeln!(out, "  <text x=\"20\" y=\"30\" font-size=\"16\" font-weight=\"bold\">{}</text>", xml(&g.title));
    // One arrow per pair of boxes; its labels stacked just before the head.
    let mut arrows: Vec<(&str, &str, Vec<&str>, bool)> = Vec::new();
    for e in &g.edges {
        match arrows.iter_mut().find(|(f, t, ..)| *f == e.from && *t == e.to) {
            Some(a) => {
                a.2.push(&e.label);
                a.3 &= e.fallback;
            }
            None => arrows.push((&e.from, &e.to, vec![&e.label], e.fallback)),
        }
    }
    for (from, to, labels, fallback) in arrows {
        let (Some((_, fx, fy, fh)), Some((_, tx, ty, th))) = (find(from), find(to)) else { continue };
        let (x1, y1) = (fx + W, fy + fh / 2);
        let (x2, y2) = (tx, ty + th / 2);
        let dash = if fallback { " stroke-dasharray=\"5,4\"" } else { "" };
        let _ = writeln!(
            out,
            "  <line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#444\" stroke-width=\"1.5\"{dash} marker-end=\"url(#arrow)\"/>"
        );
        // The labels of arrows into one box never meet another box's.
        // Into the repository: its box says what the arrows carry.
        if to == DCS || to == REPOSITORY {
            continue;
        }
        for (i, label) in labels.iter().enumerate() {
            let ly = y2 + 14 + 12 * i as u32;
            let _ = writeln!(
                out,
                "  <text x=\"{}\" y=\"{ly}\" text-anchor=\"end\" font-size=\"10\" fill=\"#333\">{}</text>",
                x2 - 6,
                xml(label)
            );
        }
    }
    if let Some((x, y, _, h)) = dcs_frame {
        let _ = writeln!(
            out,
            "  <text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\" fill=\"#333\">leader lock</text>",
            x - 6,
            y + h / 2 - 8
        );
    }
    if let Some((x, y, w, h)) = dcs_frame {
        let _ = writeln!(
            out,
            "  <rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"8\" fill=\"none\" stroke=\"#8a6bb0\" stroke-dasharray=\"3,3\"/>"
        );
        let _ = writeln!(
            out,
            "  <text x=\"{}\" y=\"{}\" fill=\"#5b3f86\">etcd cluster (a majority must be up)</text>",
            x + 8,
            y + 15
        );
    }
    for (n, x, y, h) in &placed {
        let fill = match n.kind {
            NodeKind::Clients => "#eef3ff",
            NodeKind::Proxy => "#e8f6e8",
            NodeKind::Database => "#fff4e0",
            NodeKind::Dcs => "#f3e8ff",
            NodeKind::Repository => "#e6f4f4",
        };
        let _ = writeln!(
            out,
            "  <rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{h}\" rx=\"6\" fill=\"{fill}\" stroke=\"#555\"/>"
        );
        let _ =
            writeln!(out, "  <text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>", x + 10, y + 18, xml(&n.title));
        for (i, l) in n.lines.iter().enumerate() {
            let _ = writeln!(
                out,
                "  <text x=\"{}\" y=\"{}\" fill=\"#333\">{}</text>",
                x + 10,
                y + 34 + LINE_H * i as u32,
                xml(l)
            );
        }
    }
    for (i, n) in g.networks.iter().enumerate() {
        let _ = writeln!(
            out,
            "  <text x=\"20\" y=\"{}\" fill=\"#555\">network {}</text>",
            body_h + 20 + LINE_H * i as u32,
            xml(n)
        );
    }
    out.push_str("</svg>\n");
    out
}
