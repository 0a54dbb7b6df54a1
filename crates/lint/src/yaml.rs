//! A YAML document as a tree of positioned nodes.
//!
//! Built from saphyr's event stream without recursion. Aliases stay
//! references to their anchor's node, so rules can report a value at the
//! place it is written, and a "billion laughs" document is refused by
//! measuring its expanded size (memoised, linear time) instead of expanding
//! it. Duplicate mapping keys are recorded for the rule that reports them.

use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::source::Source;

pub type NodeId = usize;

/// The most nodes a document may have once every alias is expanded. Real
/// stack files have thousands; an alias bomb has billions.
pub const MAX_EXPANDED_NODES: u64 = 5_000_000;
/// Nesting deeper than this is refused: stack files nest less than 10 levels.
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone)]
pub enum Kind {
    Scalar { value: String, quoted: bool },
    Seq(Vec<NodeId>),
    Map(Vec<(NodeId, NodeId)>),
    Alias(NodeId),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct DuplicateKey {
    pub key: String,
    pub first: Range<usize>,
    pub again: Range<usize>,
}

#[derive(Debug)]
pub struct Doc {
    pub nodes: Vec<Node>,
    pub root: Option<NodeId>,
    pub duplicates: Vec<DuplicateKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub message: String,
    pub span: Range<usize>,
}

enum Open {
    Seq(NodeId, Vec<NodeId>),
    Map(NodeId, Vec<(NodeId, NodeId)>, Option<NodeId>),
}

fn range(src: &Source, span: &Span) -> Range<usize> {
    let start = src.offset(span.start.line(), span.start.col());
    let end = src.offset(span.end.line(), span.end.col()).max(start);
    start..end
}

impl Doc {
    /// Parses the first document of `src`.
    pub fn parse(src: &Source) -> Result<Doc, LoadError> {
        let mut nodes: Vec<Node> = Vec::new();
        let mut anchors: Vec<Option<NodeId>> = vec![None];
        let mut stack: Vec<Open> = Vec::new();
        let mut root = None;
        let mut duplicates = Vec::new();
        let mut documents = 0;
        // Expanded size of each finished node; an alias costs its target's.
        let mut sizes: Vec<u64> = Vec::new();
        for event in Parser::new_from_str(&src.text) {
            let (event, span) = event.map_err(|e| {
                let m = e.marker();
                let at = src.offset(m.line(), m.col());
                LoadError { message: format!("invalid YAML: {}", e.info()), span: at..at }
            })?;
            let place = range(src, &span);
            let new_node = |nodes: &mut Vec<Node>, kind| {
                nodes.push(Node { kind, span: place.clone() });
                nodes.len() - 1
            };
            let anchor = |anchors: &mut Vec<Option<NodeId>>, id: usize, node: NodeId| {
                if id > 0 {
                    if anchors.len() <= id {
                        anchors.resize(id + 1, None);
                    }
                    anchors[id] = Some(node);
                }
            };
            let done: Option<NodeId> = match event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        break;
                    }
                    None
                }
                Event::Scalar(value, style, id, _) => {
                    let quoted = !matches!(style, ScalarStyle::Plain);
                    let n = new_node(&mut nodes, Kind::Scalar { value: value.into_owned(), quoted });
                    anchor(&mut anchors, id, n);
                    Some(n)
                }
                Event::Alias(id) => {
                    let target = anchors.get(id).copied().flatten().ok_or_else(|| LoadError {
                        message: "an alias refers to an anchor that is not defined before it".into(),
                        span: place.clone(),
                    })?;
                    Some(new_node(&mut nodes, Kind::Alias(target)))
                }
                Event::SequenceStart(id, _) => {
                    let n = new_node(&mut nodes, Kind::Seq(Vec::new()));
                    anchor(&mut anchors, id, n);
                    stack.push(Open::Seq(n, Vec::new()));
                    if stack.len() > MAX_DEPTH {
                        return Err(LoadError {
                            message: format!("the YAML nests deeper than {MAX_DEPTH} levels"),
                            span: place,
                        });
                    }
                    None
                }
                Event::MappingStart(id, _) => {
                    let n = new_node(&mut nodes, Kind::Map(Vec::new()));
                    anchor(&mut anchors, id, n);
                    stack.push(Open::Map(n, Vec::new(), None));
                    if stack.len() > MAX_DEPTH {
                        return Err(LoadError {
                            message: format!("the YAML nests deeper than {MAX_DEPTH} levels"),
                            span: place,
                        });
                    }
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                    Some(Open::Seq(n, items)) => {
                        nodes[n].kind = Kind::Seq(items);
                        nodes[n].span.end = place.end.max(nodes[n].span.start);
                        Some(n)
                    }
                    Some(Open::Map(n, pairs, _)) => {
                        nodes[n].kind = Kind::Map(pairs);
                        nodes[n].span.end = place.end.max(nodes[n].span.start);
                        Some(n)
                    }
                    None => None,
                },
                _ => None,
            };
            let Some(n) = done else { continue };
            sizes.resize(nodes.len(), 1);
            sizes[n] = match &nodes[n].kind {
                Kind::Scalar { .. } => 1,
                Kind::Alias(target) => sizes.get(*target).copied().unwrap_or(1).max(1),
                Kind::Seq(items) => items.iter().fold(1u64, |acc, c| acc.saturating_add(sizes[*c])),
                Kind::Map(pairs) => {
                    pairs.iter().fold(1u64, |acc, (k, v)| acc.saturating_add(sizes[*k]).saturating_add(sizes[*v]))
                }
            };
            if sizes[n] > MAX_EXPANDED_NODES {
                return Err(LoadError {
                    message: format!(
                        "aliases in this YAML expand to more than {MAX_EXPANDED_NODES} nodes (an alias bomb?)"
                    ),
                    span: nodes[n].span.clone(),
                });
            }
            match stack.last_mut() {
                None => root = Some(n),
                Some(Open::Seq(_, items)) => items.push(n),
                Some(Open::Map(_, pairs, pending)) => match pending.take() {
                    None => *pending = Some(n),
                    Some(key) => {
                        if let Kind::Scalar { value, .. } = &nodes[key].kind
                            && let Some((first, _)) = pairs
                                .iter()
                                .find(|(k, _)| matches!(&nodes[*k].kind, Kind::Scalar { value: v, .. } if v == value))
                        {
                            duplicates.push(DuplicateKey {
                                key: value.clone(),
                                first: nodes[*first].span.clone(),
                                again: nodes[key].span.clone(),
                            });
                        }
                        pairs.push((key, n));
                    }
                },
            }
        }
        Ok(Doc { nodes, root, duplicates })
    }

    /// Follows aliases to the node that holds the value.
    pub fn resolve(&self, mut id: NodeId) -> NodeId {
        // An alias always points at an earlier node, so this terminates.
        while let Kind::Alias(t) = self.nodes[id].kind {
            id = t;
        }
        id
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub fn scalar(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[self.resolve(id)].kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn is_quoted(&self, id: NodeId) -> bool {
        matches!(&self.nodes[self.resolve(id)].kind, Kind::Scalar { quoted: true, .. })
    }

    pub fn seq(&self, id: NodeId) -> Option<&[NodeId]> {
        match &self.nodes[self.resolve(id)].kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The pairs of a mapping, merge keys (`<<: *x`, `<<: [*a, *b]`)
    /// applied: own keys first, then merged keys not already present.
    pub fn entries(&self, id: NodeId) -> Vec<(NodeId, NodeId)> {
        let mut out: Vec<(NodeId, NodeId)> = Vec::new();
        self.collect_entries(id, &mut out, 0);
        out
    }

    fn collect_entries(&self, id: NodeId, out: &mut Vec<(NodeId, NodeId)>, depth: usize) {
        let Kind::Map(pairs) = &self.nodes[self.resolve(id)].kind else { return };
        let mut merges = Vec::new();
        for (k, v) in pairs {
            if self.scalar(*k) == Some("<<") && !self.is_quoted(*k) {
                merges.push(*v);
            } else if !out.iter().any(|(ok, _)| self.scalar(*ok).is_some() && self.scalar(*ok) == self.scalar(*k)) {
                out.push((*k, *v));
            }
        }
        if depth > 16 {
            return;
        }
        for m in merges {
            match self.seq(m) {
                Some(items) => {
                    for item in items.iter().copied() {
                        self.collect_entries(item, out, depth + 1);
                    }
                }
                None => self.collect_entries(m, out, depth + 1),
            }
        }
    }

    /// The value of `key` in a mapping (merge-aware).
    pub fn get(&self, map: NodeId, key: &str) -> Option<NodeId> {
        self.entries(map).into_iter().find(|(k, _)| self.scalar(*k) == Some(key)).map(|(_, v)| v)
    }

    /// The key node of `key` in a mapping (for reporting at the key).
    pub fn key_of(&self, map: NodeId, key: &str) -> Option<NodeId> {
        self.entries(map).into_iter().find(|(k, _)| self.scalar(*k) == Some(key)).map(|(k, _)| k)
    }

    pub fn is_map(&self, id: NodeId) -> bool {
        matches!(self.nodes[self.resolve(id)].kind, Kind::Map(_))
    }

    /// Where a value is written: an alias is reported at its anchor's value.
    pub fn span(&self, id: NodeId) -> Range<usize> {
        self.nodes[self.resolve(id)].span.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> (Source, Doc) {
        let src = Source::new("t.yml", text);
        let d = Doc::parse(&src).expect("parses");
        (src, d)
    }

    #[test]
    fn spans_point_at_values() {
        let (src, d) = doc("services:\n  db:\n    image: postgres:16\n");
        let root = d.root.expect("root");
        let svc = d.get(d.get(root, "services").expect("services"), "db").expect("db");
        let image = d.get(svc, "image").expect("image");
        assert_eq!(&src.text[d.span(image)], "postgres:16");
        assert_eq!(src.line_col(d.span(image).start), (3, 12));
    }

    #[test]
    fn merge_keys_and_aliases() {
        let (src, d) =
            doc("x-env: &env\n  PASSWORD: s3cret\nservices:\n  a:\n    environment:\n      <<: *env\n      USER: u\n");
        let root = d.root.expect("root");
        let env = d.get(d.get(d.get(root, "services").expect("s"), "a").expect("a"), "environment").expect("env");
        let pw = d.get(env, "PASSWORD").expect("merged key");
        assert_eq!(&src.text[d.span(pw)], "s3cret", "reported where it is written");
        assert_eq!(d.entries(env).len(), 2);
    }

    #[test]
    fn duplicate_keys_are_recorded() {
        let (_, d) = doc("a: 1\nb: 2\na: 3\n");
        assert_eq!(d.duplicates.len(), 1);
        assert_eq!(d.duplicates[0].key, "a");
    }

    #[test]
    fn unicode_offsets_are_bytes() {
        let (src, d) = doc("é: \"ü\"\nk: v\n");
        let v = d.get(d.root.expect("root"), "k").expect("k");
        assert_eq!(&src.text[d.span(v)], "v");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let src = Source::new("bomb.yml", text);
        let err = Doc::parse(&src).expect_err("refused");
        assert!(err.message.contains("alias bomb"), "{}", err.message);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = Doc::parse(&Source::new("deep.yml", text)).expect_err("refused");
        assert!(err.message.contains("nests deeper") || err.message.contains("recursion"), "{}", err.message);
    }
}
