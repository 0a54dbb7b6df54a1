//! The swarm stack file (`docker-stack.yml`, compose format v3) as typed data.
//!
//! Field order in these structs is the order keys are written in; maps are
//! `IndexMap` (filled in a fixed order by the compiler) or `BTreeMap`
//! (sorted), so the same model always gives the same bytes.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// The compose file version written: 3.8 has every key we use
/// (`max_replicas_per_node`, config `name`, `rollback_config`, `start_period`)
/// and older docker CLIs still require a version for `docker stack deploy`.
pub const STACK_VERSION: &str = "3.8";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackFile {
    pub version: String,
    pub services: IndexMap<String, Service>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub networks: IndexMap<String, Network>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub volumes: IndexMap<String, Volume>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, Secret>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub configs: IndexMap<String, Config>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The user the container runs as (`UID:GID`), where the image's own is not enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Docker's init as PID 1: it reaps processes the main one did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// A read-only root filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
}

/// A secret or config mounted into a service (long syntax).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    pub source: String,
    pub target: String,
    pub uid: String,
    pub gid: String,
    /// File mode; YAML has no octal literal that every reader agrees on, so
    /// this is the decimal value of the octal mode (0o400 = 256).
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: String,
    /// The volume's name; a tmpfs has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Tmpfs>,
}

/// Options of a `type: tmpfs` mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tmpfs {
    /// Bytes.
    pub size: u64,
}

/// Long port syntax; `mode: host` bypasses the ingress mesh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub target: u16,
    pub published: u16,
    pub protocol: String,
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: String,
    pub timeout: String,
    pub retries: u32,
    pub start_period: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logging {
    pub driver: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
    /// Service labels (what Prometheus' Docker Swarm discovery reads).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    pub resources: Resources,
    pub restart_policy: RestartPolicy,
    pub update_config: UpdateConfig,
    pub rollback_config: UpdateConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub limits: ResourceSet,
    pub reservations: ResourceSet,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSet {
    /// A decimal string (`"0.5"`), as the v3 format wants.
    pub cpus: String,
    pub memory: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub condition: String,
    pub delay: String,
    pub max_attempts: u32,
    pub window: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    pub parallelism: u32,
    pub delay: String,
    pub failure_action: String,
    pub monitor: String,
    pub max_failure_ratio: f64,
    pub order: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub driver: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default)]
    pub attachable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub driver: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// A swarm config created from a file beside the stack file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The name in swarm; carries a content hash so a change rolls out.
    pub name: String,
    pub file: String,
}

impl StackFile {
    /// The YAML text, after `header` lines written as `# ` comments.
    pub fn to_yaml(&self, header: &[String]) -> String {
        let body = serde_yaml_ng::to_string(self).expect("the stack model has only strings, numbers, lists and maps");
        let mut out = String::with_capacity(body.len() + 256);
        for line in header {
            out.push_str("# ");
            // A header line quotes input (the spec's path): it must stay one
            // comment line for every YAML reader, whose line breaks include
            // NEL, U+2028 and U+2029, not only the control characters.
            out.push_str(&hacompile_boundary::text::line(line));
            out.push('\n');
        }
        out.push_str(&body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(value: &str) -> StackFile {
        let mut environment = BTreeMap::new();
        environment.insert("X".to_owned(), value.to_owned());
        let service = Service { image: "postgres:16".into(), environment, ..Default::default() };
        StackFile {
            version: STACK_VERSION.into(),
            services: IndexMap::from([("db".to_owned(), service)]),
            networks: IndexMap::new(),
            volumes: IndexMap::new(),
            secrets: IndexMap::new(),
            configs: IndexMap::new(),
        }
    }

    #[test]
    fn input_in_headers_and_values_adds_no_structure() {
        let hostile = "a\u{2028}services: {evil: {image: alpine}}\u{2029}b\u{85}c\rd\ne";
        let stack = tiny(hostile);
        let text = stack.to_yaml(&[format!("from {hostile}")]);
        // The header is one comment line; the value round-trips as one value.
        assert_eq!(text.lines().next(), Some(&*format!("# from {}", hacompile_boundary::text::line(hostile))));
        assert!(!text.contains('\u{2028}') && !text.contains('\u{2029}') && !text.contains('\u{85}'));
        let back: StackFile = serde_yaml_ng::from_str(&text).expect("parses");
        assert_eq!(back, stack);
    }
}
