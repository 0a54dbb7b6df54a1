//! A YAML document as a tree of positioned nodes.
//!
//! Built from granit-parser's event stream (saphyr-parser's API) without recursion. Aliases stay
//! references to their anchor's node, so rules can report a value at the
//! place it is written, and a "billion laughs" document is refused by
//! measuring its expanded size (memoised, linear time) instead of expanding
//! it. An alias inside the value of its own anchor (a recursive structure)
//! is refused as go-yaml, and so docker, refuse it: it has no finite
//! expansion, and every walk over it would have to guard against cycles.
//! Duplicate mapping keys are recorded for the rule that reports them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::OnceLock;

use granit_parser::{Event, Parser, ScalarStyle, Span};

use crate::source::Source;

pub type NodeId = usize;

/// The most nodes a document may have once every alias is expanded. Real
/// stack files have thousands; an alias bomb has billions.
pub const MAX_EXPANDED_NODES: u64 = 5_000_000;
/// Nesting deeper than this is refused: stack files nest less than 10 levels.
pub const MAX_DEPTH: usize = 256;
/// Maps smaller than this are checked for duplicate keys by a linear scan.
const SMALL_MAP: usize = 16;
/// Duplicate keys recorded with their text and places, in document order:
/// one more than lint reports ([`crate::MAX_FINDINGS_PER_RULE`]), so the
/// note about the rest has a place. The rest are only counted, by offset,
/// so a million duplicates cost a million offsets, not a million findings.
pub const MAX_RECORDED_DUPLICATES: usize = crate::MAX_FINDINGS_PER_RULE + 1;

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
pub struct DuplicateKey<'a> {
    /// Borrowed from the file where the key is written plainly: a file of
    /// a million duplicates does not become a million allocations.
    pub key: Cow<'a, str>,
    pub first: Range<usize>,
    pub again: Range<usize>,
}

#[derive(Debug)]
pub struct Doc<'a> {
    pub nodes: Vec<Node<'a>>,
    pub root: Option<NodeId>,
    /// The first [`MAX_RECORDED_DUPLICATES`] duplicate keys, in document order.
    pub duplicates: Vec<DuplicateKey<'a>>,
    /// The byte offsets of the duplicate keys after those.
    pub more_duplicates: Vec<usize>,
    /// The entries of each map with merge keys, computed on first use:
    /// rules ask the same service map for many keys.
    merged: HashMap<NodeId, OnceLock<Merged>>,
    /// The own pairs of each map of [`SMALL_MAP`] pairs or more by key,
    /// built on first lookup: rules ask the top-level `services`, `volumes`
    /// or `configs` for a key once per service, which was a scan of the
    /// whole map each time (quadratic in a stack of thousands of services).
    keyed: HashMap<NodeId, OnceLock<KeyIndex>>,
}

/// A map's entries with its merge keys applied, and their index when there
/// are many.
#[derive(Debug)]
struct Merged {
    entries: Vec<(NodeId, NodeId)>,
    keyed: Option<KeyIndex>,
}

/// (hash of the key's text, position) of each pair whose key is a scalar,
/// sorted: the pairs of one key are found by a binary search, in the order
/// they are written (the first one wins, as in a scan).
type KeyIndex = Vec<(u64, u32)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub message: String,
    pub span: Range<usize>,
}

enum Open {
    Seq(NodeId, Vec<NodeId>),
    /// The map, its pairs so far, a key waiting for its value, and (for
    /// large maps) the first node of each distinct key by hash of its text,
    /// so duplicate detection stays O(1) per key without copying keys.
    Map(NodeId, Vec<(NodeId, NodeId)>, Option<NodeId>, HashMap<u64, Vec<NodeId>>),
}

impl Open {
    fn id(&self) -> NodeId {
        match self {
            Open::Seq(n, _) | Open::Map(n, ..) => *n,
        }
    }
}

/// Where a scalar's own text starts in `raw` (its node's text), after any
/// anchor (`&a`) or tag (`!!str`).
pub fn after_properties(raw: &str) -> usize {
    let b = raw.as_bytes();
    let mut i = 0;
    loop {
        while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        if !matches!(b.get(i), Some(b'&' | b'!')) {
            return i;
        }
        while b.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
            i += 1;
        }
    }
}

/// The byte range of a flow-quoted scalar (`"..."` or `'...'`, quotes
/// included) at the start of `raw`, after any anchor or tag. Only ASCII
/// bytes are compared, so the range is on character boundaries.
pub fn quoted_scalar(raw: &str) -> Option<Range<usize>> {
    let b = raw.as_bytes();
    let i = after_properties(raw);
    let quote = *b.get(i).filter(|c| matches!(c, b'"' | b'\''))?;
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if quote == b'"' => j += 2,
            b'\'' if quote == b'\'' && b.get(j + 1) == Some(&b'\'') => j += 2,
            c if c == quote => return Some(i..j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The value of `text` when it is one YAML scalar and nothing else.
pub fn lone_scalar(text: &str) -> Option<String> {
    let mut value = None;
    for event in Parser::new_from_str(text) {
        match event.ok()?.0 {
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(..) | Event::DocumentEnd => {}
            Event::Scalar(v, ..) if value.is_none() => value = Some(v.into_owned()),
            _ => return None,
        }
    }
    value
}

/// A plain `<<` key (directly or through an alias): a merge key.
fn is_merge_key(nodes: &[Node<'_>], mut key: NodeId) -> bool {
    while let Kind::Alias(t) = nodes[key].kind {
        key = t;
    }
    matches!(&nodes[key].kind, Kind::Scalar { value, quoted: false } if value == "<<")
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
        let mut more_duplicates = Vec::new();
        let mut merged = HashMap::new();
        let mut keyed = HashMap::new();
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
                Event::DocumentStart(..) => {
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
                    // Open collections are on the stack in node order, so
                    // a binary search tells whether the target is one.
                    if stack.binary_search_by_key(&target, Open::id).is_ok() {
                        // An anchor's name ends at a space or a flow indicator.
                        let name: String = src.text[place.clone()]
                            .trim_start_matches('*')
                            .chars()
                            .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                            .take(64)
                            .collect();
                        return Err(LoadError {
                            message: format!(
                                "the value of the anchor `{name}` contains itself: this alias is inside it (a recursive structure, which docker refuses too)"
                            ),
                            span: place,
                        });
                    }
                    Some(new_node(&mut nodes, Kind::Alias(target)))
                }
                Event::SequenceStart(_, id, _) => {
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
                Event::MappingStart(_, id, _) => {
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
                        let merges = pairs.iter().any(|(k, _)| is_merge_key(&nodes, *k));
                        if merges {
                            merged.insert(n, OnceLock::new());
                        }
                        if pairs.len() >= SMALL_MAP {
                            keyed.insert(n, OnceLock::new());
                        }
                        nodes[n].kind = Kind::Map(pairs, merges);
                        nodes[n].span.end = place.end.max(nodes[n].span.start);
                        Some(n)
                    }
                    None => None,
                },
                _ => None,
            };
            // Every node counts at least once in the root's expanded size:
            // refuse as soon as there are too many, before they take memory.
            if nodes.len() as u64 > MAX_EXPANDED_NODES {
                return Err(LoadError {
                    message: format!("the YAML has more than {MAX_EXPANDED_NODES} nodes (a stack file has thousands)"),
                    span: place,
                });
            }
            let Some(n) = done else { continue };
            sizes.resize(nodes.len(), 1);
            sizes[n] = match &nodes[n].kind {
                Kind::Scalar { .. } => 1,
                // The target is finished (a recursive alias was refused above), so its size is known.
                Kind::Alias(target) => sizes[*target],
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
                    Some(key) => pairs.push((key, n)),
                    // A key: every earlier pair of its map is complete, so
                    // duplicates are found (and recorded) in document order.
                    None => {
                        if let Kind::Scalar { value, .. } = &nodes[n].kind {
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
                                // Only distinct keys: a key written a million times is one entry.
                                if found.is_none() {
                                    bucket.push(n);
                                }
                                found
                            };
                            if first.is_some() && duplicates.len() >= MAX_RECORDED_DUPLICATES {
                                more_duplicates.push(nodes[n].span.start);
                            } else if let Some(first) = first {
                                duplicates.push(DuplicateKey {
                                    key: value.clone(),
                                    first: nodes[first].span.clone(),
                                    again: nodes[n].span.clone(),
                                });
                            }
                        }
                        *pending = Some(n);
                    }
                },
            }
        }
        Ok(Doc { nodes, root, duplicates, more_duplicates, merged, keyed })
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
        self.entries_ref(id).to_vec()
    }

    fn entries_ref(&self, id: NodeId) -> &[(NodeId, NodeId)] {
        let id = self.resolve(id);
        match &self.nodes[id].kind {
            Kind::Map(pairs, false) => pairs,
            Kind::Map(_, true) => self.merged(id).map_or(&[], |m| &m.entries),
            _ => &[],
        }
    }

    fn merged(&self, id: NodeId) -> Option<&Merged> {
        let cell = self.merged.get(&id)?;
        Some(cell.get_or_init(|| {
            let entries = self.collect_entries(id);
            let keyed = (entries.len() >= SMALL_MAP).then(|| self.key_index(&entries));
            Merged { entries, keyed }
        }))
    }

    fn key_index(&self, pairs: &[(NodeId, NodeId)]) -> KeyIndex {
        let mut index: KeyIndex = pairs
            .iter()
            .enumerate()
            .filter_map(|(i, (k, _))| Some((key_hash(self.scalar(*k)?), u32::try_from(i).ok()?)))
            .collect();
        index.sort_unstable();
        index
    }

    /// The first of `pairs` whose key is `key`: through `index` (of
    /// `pairs`) when there is one, else by a scan.
    fn find_key(&self, pairs: &[(NodeId, NodeId)], index: Option<&KeyIndex>, key: &str) -> Option<(NodeId, NodeId)> {
        let Some(index) = index else {
            return pairs.iter().copied().find(|(k, _)| self.scalar(*k) == Some(key));
        };
        let hash = key_hash(key);
        let from = index.partition_point(|(h, _)| *h < hash);
        index[from..]
            .iter()
            .take_while(|(h, _)| *h == hash)
            .map(|(_, i)| pairs[*i as usize])
            .find(|(k, _)| self.scalar(*k) == Some(key))
    }

    /// Merges depth first, in order (a map's own keys, then each map it
    /// merges, and theirs), visiting each map once: a map seen before adds
    /// no key, so `<<: [*a, *a, *a]` chains cost their size, not 3^depth.
    fn collect_entries(&self, id: NodeId) -> Vec<(NodeId, NodeId)> {
        let mut out = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut visited: HashSet<NodeId> = HashSet::new();
        let mut todo = vec![id];
        while let Some(map) = todo.pop() {
            let map = self.resolve(map);
            let Kind::Map(pairs, _) = &self.nodes[map].kind else { continue };
            if !visited.insert(map) {
                continue;
            }
            let mut merges = Vec::new();
            for (k, v) in pairs {
                if is_merge_key(&self.nodes, *k) {
                    match self.seq(*v) {
                        Some(items) => merges.extend(items.iter().copied()),
                        None => merges.push(*v),
                    }
                } else if self.scalar(*k).is_none_or(|name| seen.insert(name)) {
                    out.push((*k, *v));
                }
            }
            todo.extend(merges.into_iter().rev());
        }
        out
    }

    /// The (key, value) pair of `key` in a mapping (merge-aware). Own keys
    /// win over merged ones, so the common case scans the map's own pairs
    /// once and allocates nothing.
    fn pair(&self, map: NodeId, key: &str) -> Option<(NodeId, NodeId)> {
        let id = self.resolve(map);
        let Kind::Map(pairs, merges) = &self.nodes[id].kind else { return None };
        let index = self.keyed.get(&id).map(|cell| cell.get_or_init(|| self.key_index(pairs)));
        let own = self.find_key(pairs, index, key);
        if own.is_some() || !merges {
            return own;
        }
        let merged = self.merged(id)?;
        self.find_key(&merged.entries, merged.keyed.as_ref(), key)
    }

    /// The value of `key` in a mapping (merge-aware).
    /// The node at `path` (mapping keys) below `node`.
    pub fn at(&self, node: NodeId, path: &[&str]) -> Option<NodeId> {
        path.iter().try_fold(node, |n, key| self.get(n, key))
    }

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

    /// A large map is looked up through its index: the same pair a scan
    /// finds (the first of a duplicate key, a key written as an alias,
    /// own keys over merged ones, keys only merged).
    #[test]
    fn large_maps_answer_as_a_scan_does() {
        let mut text = String::from("x-k: &k k7\nx-big: &big\n");
        text.extend((0..40).map(|i| format!("  m{i}: merged{i}\n  k3: merged-k3\n")));
        text.push_str("map:\n  <<: *big\n");
        text.extend((0..40).map(|i| format!("  k{i}: v{i}\n")));
        text.push_str("  k5: second\n  *k : aliased\n");
        let src = src(&text);
        let d = Doc::parse(&src).expect("parses");
        let map = d.get(d.root.expect("root"), "map").expect("map");
        let value = |key: &str| d.get(map, key).map(|v| &src.text[d.span(v)]);
        assert_eq!(value("k5"), Some("v5"), "the first of a duplicate key");
        assert_eq!(value("k7"), Some("v7"), "written before its alias");
        assert_eq!(value("k3"), Some("v3"), "own keys win over merged ones");
        assert_eq!(value("m39"), Some("merged39"));
        assert_eq!(value("k40"), None);
        let big = d.get(d.root.expect("root"), "x-big").expect("x-big");
        assert_eq!(d.get(map, "<<").map(|v| d.resolve(v)), Some(d.resolve(big)), "the merge key is a key too");
        assert_eq!(d.get(big, "k3").map(|v| &src.text[d.span(v)]), Some("merged-k3"));
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

    #[test]
    fn an_alias_inside_its_own_anchor_is_refused_at_the_alias() {
        for text in ["a: &x [*x]\n", "web: &w {image: x, <<: [*w, *w]}\n", "s: &s\n  k:\n    - *s # c\n"] {
            let src = src(text);
            let err = Doc::parse(&src).expect_err(text);
            assert!(err.message.contains("contains itself"), "{}", err.message);
            let name = &text[text.find('&').expect("an anchor") + 1..][..1];
            assert!(err.message.contains(&format!("anchor `{name}` ")), "{}", err.message);
            assert_eq!(&src.text[err.span.clone()][..1], "*", "{text}: at the alias");
        }
        // An alias to a finished sibling is fine.
        assert!(Doc::parse(&src("a: &x [1]\nb: [*x, *x]\n")).is_ok());
    }

    #[test]
    fn merge_chains_visit_each_map_once_and_keep_the_order() {
        let mut text = String::from("a0: &a0 {k: 0, z0: v}\n");
        for i in 1..=11 {
            text.push_str(&format!("a{i}: &a{i} {{<<: [*a{p}, *a{p}, *a{p}], k: {i}, z{i}: v}}\n", p = i - 1));
        }
        text.push_str("top: {<<: *a11, own: 1}\n");
        let src = src(&text);
        let d = Doc::parse(&src).expect("parses");
        let top = d.get(d.root.expect("root"), "top").expect("top");
        let keys: Vec<&str> = d.entries(top).iter().filter_map(|(k, _)| d.scalar(*k)).collect();
        assert_eq!(keys.len(), 1 + 1 + 12, "own, k once, and every z");
        assert_eq!(&keys[..3], ["own", "k", "z11"]);
        assert_eq!(d.scalar(d.get(top, "k").expect("k")), Some("11"), "the nearest map wins");
        assert_eq!(d.scalar(d.get(top, "z0").expect("z0")), Some("v"));
    }

    #[test]
    fn quoted_scalars_are_found_whole() {
        for (raw, want) in [
            ("\"a\\u0065\"  # c", "\"a\\u0065\""),
            ("&b !!str 'it''s' # c", "'it''s'"),
            ("&b\n  \"x\\\"y\"", "\"x\\\"y\""),
            ("\"a\\\n   b\"", "\"a\\\n   b\""),
        ] {
            let r = quoted_scalar(raw).unwrap_or_else(|| panic!("{raw}"));
            assert_eq!(&raw[r], want);
        }
        assert_eq!(quoted_scalar("plain"), None);
        assert_eq!(quoted_scalar("\"open"), None);
        assert_eq!(lone_scalar("\"a\\u0065\\\n   b\"").as_deref(), Some("aeb"));
        assert_eq!(lone_scalar("'it''s'").as_deref(), Some("it's"));
        assert_eq!(lone_scalar("[a]"), None);
        assert_eq!(lone_scalar("\"a\" \"b\""), None);
    }

    #[test]
    fn duplicates_past_the_record_are_counted_by_place() {
        let text = "a: 1\n".repeat(MAX_RECORDED_DUPLICATES + 11);
        let src = Source::new("t.yml", text.as_str());
        let d = Doc::parse(&src).expect("parses");
        assert_eq!(d.duplicates.len(), MAX_RECORDED_DUPLICATES);
        assert!(matches!(d.duplicates[0].key, Cow::Borrowed("a")), "borrowed from the file");
        assert_eq!(d.more_duplicates.len(), 10);
        assert_eq!(d.more_duplicates[0], 5 * (MAX_RECORDED_DUPLICATES + 1));
        // In document order, though an inner map's value completes first.
        let src = Source::new("t.yml", "a: 1\na: {b: 1, b: 2}\n");
        let d = Doc::parse(&src).expect("parses");
        let keys: Vec<&str> = d.duplicates.iter().map(|k| k.key.as_ref()).collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
