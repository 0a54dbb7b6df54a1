//! A YAML document as a tree of positioned nodes.
//!
//! Built from saphyr's event stream without recursion. Aliases stay
//! references to their anchor's node, so rules can report a value at the
//! place it is written, and a "billion laughs" document is refused by
//! measuring its expanded size (memoised, linear time) instead of expanding
//! it. Duplicate mapping keys are recorded for the rule that reports them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::source::Source;

pub type NodeId = usize;

/// The most nodes a document may have once every alias is expanded. Real
/// stack files have thousands; an alias bomb has billions.
pub const MAX_EXPANDED_NODES: u64 = 5_000_000;
/// Nesting deeper than this is refused: stack files nest less than 10 levels.
pub const MAX_DEPTH: usize = 256;
/// Maps smaller than this are checked for duplicate keys by a linear scan.
const SMALL_MAP: usize = 16;

fn key_hash(key: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(key)
}

#[derive(Debug, Clone)]
pub enum Kind<'a> {
    /// Borrowed from the source text where the parser can (most plain
    /// scalars), so a large file does not become one allocation per value.
    Scalar {
        value: Cow<'a, str>,
        quoted: bool,
    },
    Seq(Vec<NodeId>),
    /// The pairs, and whether any key is a merge key (`<<`), so lookups in
    /// the common merge-free map need not check.
    Map(Vec<(NodeId, NodeId)>, bool),
    Alias(NodeId),
}

#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub kind: Kind<'a>,
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct DuplicateKey {
    pub key: String,
    pub first: Range<usize>,
    pub again: Range<usize>,
}

#[derive(Debug)]
pub struct Doc<'a> {
    pub nodes: Vec<Node<'a>>,
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
    /// The map, its pairs so far, a key waiting for its value, and (for
    /// large maps) the key nodes by hash of their text, so duplicate
    /// detection stays O(1) per key without copying keys.
    Map(NodeId, Vec<(NodeId, NodeId)>, Option<NodeId>, HashMap<u64, Vec<NodeId>>),
}

fn range(src: &Source, span: &Span) -> Range<usize> {
    let start = src.offset_of(span.start.index(), span.start.line(), span.start.col());
    let end = src.offset_of(span.end.index(), span.end.line(), span.end.col()).max(start);
    start..end
}

impl<'a> Doc<'a> {
    /// Parses the first document of `src`.
    pub fn parse(src: &'a Source) -> Result<Doc<'a>, LoadError> {
        // About one node per 12 bytes of a typical stack file: reserving up
        // front avoids re-copying (and re-faulting) a growing vector.
        let estimate = src.text.len() / 12 + 16;
        let mut nodes: Vec<Node<'a>> = Vec::with_capacity(estimate);
        let mut anchors: Vec<Option<NodeId>> = vec![None];
        let mut stack: Vec<Open> = Vec::new();
        let mut root = None;
        let mut duplicates = Vec::new();
        let mut documents = 0;
        // Expanded size of each finished node; an alias costs its target's.
        let mut sizes: Vec<u64> = Vec::with_capacity(estimate);
        for event in Parser::new_from_str(&src.text) {
            let (event, span) = event.map_err(|e| {
                let m = e.marker();
                let at = src.offset(m.line(), m.col());
                LoadError { message: format!("invalid YAML: {}", e.info()), span: at..at }
            })?;
            let place = range(src, &span);
            let new_node = |nodes: &mut Vec<Node<'a>>, kind: Kind<'a>| {
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
                    // A plain scalar on one line is its own source text: keep a
                    // slice of the file instead of the parser's copy.
                    let value = match value {
                        Cow::Owned(own) if !quoted && src.text.get(place.clone()) == Some(own.as_str()) => {
                            Cow::Borrowed(&src.text[place.clone()])
                        }
                        other => other,
                    };
                    let n = new_node(&mut nodes, Kind::Scalar { value, quoted });
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
                    stack.push(Open::Seq(n, Vec::with_capacity(4)));
                    if stack.len() > MAX_DEPTH {
                        return Err(LoadError {
                            message: format!("the YAML nests deeper than {MAX_DEPTH} levels"),
                            span: place,
                        });
                    }
                    None
                }
                Event::MappingStart(id, _) => {
                    let n = new_node(&mut nodes, Kind::Map(Vec::new(), false));
                    anchor(&mut anchors, id, n);
                    stack.push(Open::Map(n, Vec::with_capacity(4), None, HashMap::new()));
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
                    Some(Open::Map(n, pairs, _, _)) => {
                        let merges = pairs.iter().any(
                            |(k, _)| matches!(&nodes[*k].kind, Kind::Scalar { value, quoted: false } if value == "<<"),
                        );
                        nodes[n].kind = Kind::Map(pairs, merges);
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
                Kind::Map(pairs, _) => {
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
                Some(Open::Map(_, pairs, pending, keys)) => match pending.take() {
                    None => *pending = Some(n),
                    Some(key) => {
                        if let Kind::Scalar { value, .. } = &nodes[key].kind {
                            let same =
                                |k: &NodeId| matches!(&nodes[*k].kind, Kind::Scalar { value: v, .. } if v == value);
                            let first = if pairs.len() < SMALL_MAP {
                                pairs.iter().map(|(k, _)| *k).find(|k| same(k))
                            } else {
                                if keys.is_empty() {
                                    for (k, _) in pairs.iter() {
                                        if let Kind::Scalar { value: v, .. } = &nodes[*k].kind {
                                            keys.entry(key_hash(v)).or_default().push(*k);
                                        }
                                    }
                                }
                                let bucket = keys.entry(key_hash(value)).or_default();
                                let found = bucket.iter().copied().find(|k| same(k));
                                bucket.push(key);
                                found
                            };
                            if let Some(first) = first {
                                duplicates.push(DuplicateKey {
                                    key: value.to_string(),
                                    first: nodes[first].span.clone(),
                                    again: nodes[key].span.clone(),
                                });
                            }
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

    pub fn node(&self, id: NodeId) -> &Node<'a> {
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
        match &self.nodes[self.resolve(id)].kind {
            Kind::Map(pairs, false) => pairs.clone(),
            Kind::Map(_, true) => {
                let mut out = Vec::new();
                let mut seen = HashSet::new();
                self.collect_entries(id, &mut out, &mut seen, 0);
                out
            }
            _ => Vec::new(),
        }
    }

    fn collect_entries<'s>(
        &'s self,
        id: NodeId,
        out: &mut Vec<(NodeId, NodeId)>,
        seen: &mut HashSet<&'s str>,
        depth: usize,
    ) {
        let Kind::Map(pairs, _) = &self.nodes[self.resolve(id)].kind else { return };
        let mut merges = Vec::new();
        for (k, v) in pairs {
            if self.scalar(*k) == Some("<<") && !self.is_quoted(*k) {
                merges.push(*v);
            } else if self.scalar(*k).is_none_or(|name| seen.insert(name)) {
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
                        self.collect_entries(item, out, seen, depth + 1);
                    }
                }
                None => self.collect_entries(m, out, seen, depth + 1),
            }
        }
    }

    /// The (key, value) pair of `key` in a mapping (merge-aware). Own keys
    /// win over merged ones, so the common case scans the map's own pairs
    /// once and allocates nothing.
    fn pair(&self, map: NodeId, key: &str) -> Option<(NodeId, NodeId)> {
        let Kind::Map(pairs, merges) = &self.nodes[self.resolve(map)].kind else { return None };
        let own = pairs.iter().copied().find(|(k, _)| match &self.nodes[*k].kind {
            Kind::Scalar { value, .. } => value == key,
            Kind::Alias(_) => self.scalar(*k) == Some(key),
            _ => false,
        });
        if own.is_some() || !merges {
            return own;
        }
        self.entries(map).into_iter().find(|(k, _)| self.scalar(*k) == Some(key))
    }

    /// The value of `key` in a mapping (merge-aware).
    pub fn get(&self, map: NodeId, key: &str) -> Option<NodeId> {
        self.pair(map, key).map(|(_, v)| v)
    }

    /// The key node of `key` in a mapping (for reporting at the key).
    pub fn key_of(&self, map: NodeId, key: &str) -> Option<NodeId> {
        self.pair(map, key).map(|(k, _)| k)
    }

    pub fn is_map(&self, id: NodeId) -> bool {
        matches!(self.nodes[self.resolve(id)].kind, Kind::Map(..))
    }

    /// Where a value is written: an alias is reported at its anchor's value.
    pub fn span(&self, id: NodeId) -> Range<usize> {
        self.nodes[self.resolve(id)].span.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source::new("t.yml", text)
    }

    #[test]
    fn spans_point_at_values() {
        let src = src("services:\n  db:\n    image: postgres:16\n");
        let d = Doc::parse(&src).expect("parses");
        let root = d.root.expect("root");
        let svc = d.get(d.get(root, "services").expect("services"), "db").expect("db");
        let image = d.get(svc, "image").expect("image");
        assert_eq!(&src.text[d.span(image)], "postgres:16");
        assert_eq!(src.line_col(d.span(image).start), (3, 12));
    }

    #[test]
    fn merge_keys_and_aliases() {
        let src =
            src("x-env: &env\n  PASSWORD: s3cret\nservices:\n  a:\n    environment:\n      <<: *env\n      USER: u\n");
        let d = Doc::parse(&src).expect("parses");
        let root = d.root.expect("root");
        let env = d.get(d.get(d.get(root, "services").expect("s"), "a").expect("a"), "environment").expect("env");
        let pw = d.get(env, "PASSWORD").expect("merged key");
        assert_eq!(&src.text[d.span(pw)], "s3cret", "reported where it is written");
        assert_eq!(d.entries(env).len(), 2);
    }

    #[test]
    fn duplicate_keys_are_recorded() {
        let src = src("a: 1\nb: 2\na: 3\n");
        let d = Doc::parse(&src).expect("parses");
        assert_eq!(d.duplicates.len(), 1);
        assert_eq!(d.duplicates[0].key, "a");
    }

    #[test]
    fn unicode_offsets_are_bytes() {
        let src = src("é: \"ü\"\nk: v\n");
        let d = Doc::parse(&src).expect("parses");
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
