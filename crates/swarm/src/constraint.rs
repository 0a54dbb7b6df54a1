//! Swarm placement constraints, evaluated against a node as swarmkit does
//! (manager/constraint): `KEY == VALUE` or `KEY != VALUE`; values compare
//! without regard to case; a missing label reads as the empty string; an
//! unknown key matches no node.

use crate::snapshot::Node;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub key: String,
    pub equal: bool,
    pub value: String,
}

impl Constraint {
    pub fn parse(text: &str) -> Option<Self> {
        let (at, equal) = match (text.find("=="), text.find("!=")) {
            (Some(i), None) => (i, true),
            (None, Some(i)) => (i, false),
            _ => return None,
        };
        let key = text[..at].trim();
        let value = text[at + 2..].trim();
        (!key.is_empty()).then(|| Self { key: key.to_owned(), equal, value: value.to_owned() })
    }

    /// The node label this constraint reads, if it reads one: a label is
    /// the one thing an operator fixes with `docker node update`.
    pub fn node_label(&self) -> Option<&str> {
        self.key.strip_prefix("node.labels.")
    }

    /// What the node has under this constraint's key; `None` for a key
    /// swarm does not know.
    pub fn actual<'n>(&self, node: &'n Node) -> Option<&'n str> {
        if let Some(label) = self.node_label() {
            return Some(node.labels.get(label).map_or("", String::as_str));
        }
        if let Some(label) = self.key.strip_prefix("engine.labels.") {
            return Some(node.engine_labels.get(label).map_or("", String::as_str));
        }
        match self.key.as_str() {
            "node.id" => Some(&node.id),
            "node.hostname" => Some(&node.hostname),
            "node.role" => Some(&node.role),
            "node.platform.os" => Some(&node.os),
            "node.platform.arch" => Some(&node.arch),
            _ => None,
        }
    }

    pub fn matches(&self, node: &Node) -> bool {
        match self.actual(node) {
            Some(v) => v.eq_ignore_ascii_case(&self.value) == self.equal,
            None => false,
        }
    }

    pub fn text(&self) -> String {
        format!("{} {} {}", self.key, if self.equal { "==" } else { "!=" }, self.value)
    }
}

/// Does the node satisfy every constraint? (Unparsable ones match nothing.)
pub fn all_match(constraints: &[String], node: &Node) -> bool {
    constraints.iter().all(|c| Constraint::parse(c).is_some_and(|c| c.matches(node)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        let mut n = Node {
            id: "n1".into(),
            hostname: "db-1".into(),
            role: "manager".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            ..Default::default()
        };
        n.labels.insert("pg.role".into(), "Primary".into());
        n.engine_labels.insert("disk".into(), "ssd".into());
        n
    }

    #[test]
    fn swarm_semantics() {
        let n = node();
        let yes = [
            "node.labels.pg.role == primary",
            "node.labels.absent != x",
            "node.labels.absent == ",
            "node.role==manager",
            "node.hostname == DB-1",
            "node.id == n1",
            "node.platform.os == linux",
            "node.platform.arch != arm64",
            "engine.labels.disk == ssd",
        ];
        for c in yes {
            assert!(all_match(&[c.to_owned()], &n), "{c}");
        }
        let no = [
            "node.labels.pg.role == replica",
            "node.labels.absent == x",
            "node.role != manager",
            "node.ip == 1",
            "garbage",
        ];
        for c in no {
            assert!(!all_match(&[c.to_owned()], &n), "{c}");
        }
    }
}
