//! The swarm as preflight sees it, parsed from the docker CLI's JSON.
//!
//! Only the fields preflight reads are declared; the rest of docker's
//! answer is ignored, so a newer engine's extra fields change nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything preflight knows about the swarm.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// The node the docker CLI talks to (a manager).
    pub local_node_id: String,
    /// The API version of the CLI and of the daemon (`1.41`).
    pub client_api: String,
    pub server_api: String,
    pub nodes: Vec<Node>,
    /// Names of the secrets swarm holds.
    pub secrets: Vec<String>,
    pub services: Vec<ServiceInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `unknown`, `disconnected`.
    pub state: String,
    pub labels: BTreeMap<String, String>,
    pub engine_labels: BTreeMap<String, String>,
    /// As the engine reports it (`20.10.24+dfsg1`).
    pub engine_version: String,
    pub os: String,
    pub arch: String,
    /// What the node offers to reservations (0 when not reported).
    pub nano_cpus: u64,
    pub memory_bytes: u64,
}

impl Node {
    /// Swarm schedules tasks only on active, ready nodes.
    pub fn schedulable(&self) -> bool {
        self.availability.eq_ignore_ascii_case("active") && self.state.eq_ignore_ascii_case("ready")
    }
}

/// A service already in the swarm, with what it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceInfo {
    pub id: String,
    pub name: String,
    /// The `com.docker.stack.namespace` label (empty outside a stack).
    pub stack: String,
    pub global: bool,
    pub constraints: Vec<String>,
    pub ports: Vec<PublishedPort>,
    /// The nodes its running tasks are on (read for services that publish
    /// a port in host mode only).
    pub task_nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedPort {
    pub published: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// `ingress` or `host`.
    pub mode: String,
}

/// Why docker's answer could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the answer of `{call}`: {message}")]
pub struct ParseError {
    pub call: &'static str,
    pub message: String,
}

fn parse<T: for<'de> Deserialize<'de>>(call: &'static str, text: &str) -> Result<T, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError { call, message: e.to_string() })
}

// ---- docker info --format '{{json .}}' ----

#[derive(Debug, Deserialize)]
struct RawInfo {
    #[serde(rename = "Swarm", default)]
    swarm: RawInfoSwarm,
}

#[derive(Debug, Default, Deserialize)]
struct RawInfoSwarm {
    #[serde(rename = "NodeID", default)]
    node_id: String,
    #[serde(rename = "LocalNodeState", default)]
    state: String,
    #[serde(rename = "ControlAvailable", default)]
    control: bool,
}

/// What `docker info` says about this daemon's place in a swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmMembership {
    pub node_id: String,
    /// `inactive`, `pending`, `active`, `error`, `locked`.
    pub state: String,
    pub manager: bool,
}

pub fn parse_info(text: &str) -> Result<SwarmMembership, ParseError> {
    let raw: RawInfo = parse("docker info", text)?;
    Ok(SwarmMembership { node_id: raw.swarm.node_id, state: raw.swarm.state, manager: raw.swarm.control })
}

// ---- docker version --format '{{json .}}' ----

#[derive(Debug, Deserialize)]
struct RawVersion {
    #[serde(rename = "Client", default)]
    client: Option<RawApi>,
    #[serde(rename = "Server", default)]
    server: Option<RawApi>,
}

#[derive(Debug, Deserialize)]
struct RawApi {
    #[serde(rename = "ApiVersion", default)]
    api: String,
}

/// The API versions of the CLI and of the daemon.
pub fn parse_version(text: &str) -> Result<(String, String), ParseError> {
    let raw: RawVersion = parse("docker version", text)?;
    let api = |a: Option<RawApi>| a.map(|a| a.api).unwrap_or_default();
    Ok((api(raw.client), api(raw.server)))
}

// ---- docker node inspect ----

#[derive(Debug, Deserialize)]
struct RawNode {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Spec", default)]
    spec: RawNodeSpec,
    #[serde(rename = "Description", default)]
    description: RawNodeDescription,
    #[serde(rename = "Status", default)]
    status: RawNodeStatus,
}

#[derive(Debug, Default, Deserialize)]
struct RawNodeSpec {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Role", default)]
    role: String,
    #[serde(rename = "Availability", default)]
    availability: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawNodeDescription {
    #[serde(rename = "Hostname", default)]
    hostname: String,
    #[serde(rename = "Platform", default)]
    platform: RawPlatform,
    #[serde(rename = "Engine", default)]
    engine: RawEngine,
    #[serde(rename = "Resources", default)]
    resources: RawResources,
}

#[derive(Debug, Default, Deserialize)]
struct RawResources {
    #[serde(rename = "NanoCPUs", default)]
    nano_cpus: u64,
    #[serde(rename = "MemoryBytes", default)]
    memory_bytes: u64,
}

#[derive(Debug, Default, Deserialize)]
struct RawPlatform {
    #[serde(rename = "Architecture", default)]
    arch: String,
    #[serde(rename = "OS", default)]
    os: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawEngine {
    #[serde(rename = "EngineVersion", default)]
    version: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawNodeStatus {
    #[serde(rename = "State", default)]
    state: String,
}

/// The most nodes preflight reads: more than the largest swarms run, and
/// few enough that checking each service against every node stays quick
/// (a hostile CLI's 60,000 nodes, 7 MB of JSON, took minutes).
pub const MAX_NODES: usize = 5000;

/// `docker node inspect ID...` (a JSON array).
pub fn parse_nodes(text: &str) -> Result<Vec<Node>, ParseError> {
    let raw: Vec<RawNode> = parse("docker node inspect", text)?;
    if raw.len() > MAX_NODES {
        return Err(ParseError {
            call: "docker node inspect",
            message: format!("{} nodes, more than the {MAX_NODES} preflight reads", raw.len()),
        });
    }
    Ok(raw
        .into_iter()
        .map(|n| Node {
            id: n.id,
            hostname: n.description.hostname,
            role: n.spec.role,
            availability: n.spec.availability,
            state: n.status.state,
            labels: n.spec.labels.unwrap_or_default(),
            engine_labels: n.description.engine.labels.unwrap_or_default(),
            engine_version: n.description.engine.version,
            os: n.description.platform.os,
            arch: n.description.platform.arch,
            nano_cpus: n.description.resources.nano_cpus,
            memory_bytes: n.description.resources.memory_bytes,
        })
        .collect())
}

// ---- docker secret ls --format '{{json .}}' (one object per line) ----

#[derive(Debug, Deserialize)]
struct RawSecret {
    #[serde(rename = "Name")]
    name: String,
}

pub fn parse_secrets(text: &str) -> Result<Vec<String>, ParseError> {
    let mut names = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let s: RawSecret = parse("docker secret ls", line)?;
        names.push(s.name);
    }
    names.sort();
    Ok(names)
}

// ---- docker service inspect ID... ----

#[derive(Debug, Deserialize)]
struct RawService {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Spec", default)]
    spec: RawServiceSpec,
    #[serde(rename = "Endpoint", default)]
    endpoint: RawEndpoint,
}

#[derive(Debug, Default, Deserialize)]
struct RawServiceSpec {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Mode", default)]
    mode: RawMode,
    #[serde(rename = "TaskTemplate", default)]
    task: RawTaskTemplate,
    #[serde(rename = "EndpointSpec", default)]
    endpoint: RawEndpoint,
}

#[derive(Debug, Default, Deserialize)]
struct RawMode {
    #[serde(rename = "Global", default)]
    global: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct RawTaskTemplate {
    #[serde(rename = "Placement", default)]
    placement: RawPlacement,
}

#[derive(Debug, Default, Deserialize)]
struct RawPlacement {
    #[serde(rename = "Constraints", default)]
    constraints: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawEndpoint {
    #[serde(rename = "Ports", default)]
    ports: Option<Vec<RawPort>>,
}

#[derive(Debug, Deserialize)]
struct RawPort {
    #[serde(rename = "Protocol", default)]
    protocol: String,
    #[serde(rename = "PublishedPort", default)]
    published: u16,
    #[serde(rename = "PublishMode", default)]
    mode: String,
}

/// The stack label `docker stack deploy` puts on every service.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";

/// `docker service inspect ID...` (a JSON array). Task nodes are filled later.
pub fn parse_services(text: &str) -> Result<Vec<ServiceInfo>, ParseError> {
    let raw: Vec<RawService> = parse("docker service inspect", text)?;
    Ok(raw
        .into_iter()
        .map(|s| {
            // The ports swarm assigned and the ones asked for (a host-mode
            // port of a service without a running task is only in the spec).
            let raw = s.endpoint.ports.unwrap_or_default().into_iter().chain(s.spec.endpoint.ports.unwrap_or_default());
            let mut ports: Vec<PublishedPort> = raw
                .filter(|p| p.published != 0)
                .map(|p| PublishedPort {
                    published: p.published,
                    protocol: if p.protocol.is_empty() { "tcp".into() } else { p.protocol.to_ascii_lowercase() },
                    mode: if p.mode.is_empty() { "ingress".into() } else { p.mode.to_ascii_lowercase() },
                })
                .collect();
            ports.sort_by(|a, b| (a.published, &a.protocol, &a.mode).cmp(&(b.published, &b.protocol, &b.mode)));
            ports.dedup();
            ServiceInfo {
                id: s.id,
                name: s.spec.name,
                stack: s.spec.labels.unwrap_or_default().remove(STACK_LABEL).unwrap_or_default(),
                global: s.spec.mode.global.is_some(),
                constraints: s.spec.task.placement.constraints.unwrap_or_default(),
                ports,
                task_nodes: Vec::new(),
            }
        })
        .collect())
}

// ---- docker inspect --type task ID... (NodeID of running tasks) ----

#[derive(Debug, Deserialize)]
struct RawTask {
    #[serde(rename = "ServiceID", default)]
    service: String,
    #[serde(rename = "NodeID", default)]
    node: String,
}

/// (service ID, node ID) of each placed task, sorted, without repeats.
pub fn parse_task_nodes(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let raw: Vec<RawTask> = parse("docker inspect (tasks)", text)?;
    let mut placed: Vec<(String, String)> =
        raw.into_iter().filter(|t| !t.node.is_empty()).map(|t| (t.service, t.node)).collect();
    placed.sort();
    placed.dedup();
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_reads_from_docker_node_inspect() {
        let text = r#"[{"ID":"abc","Spec":{"Labels":{"pg.role":"primary"},"Role":"manager","Availability":"active"},
            "Description":{"Hostname":"db-1","Platform":{"Architecture":"x86_64","OS":"linux"},
            "Engine":{"EngineVersion":"20.10.24+dfsg1","Labels":null},
            "Resources":{"NanoCPUs":2000000000,"MemoryBytes":4124000256}},"Status":{"State":"ready","Addr":"10.0.0.1"},
            "Extra":{"ignored":true}}]"#;
        let nodes = parse_nodes(text).expect("parses");
        assert_eq!(nodes.len(), 1);
        let n = &nodes[0];
        assert_eq!((n.id.as_str(), n.hostname.as_str(), n.role.as_str()), ("abc", "db-1", "manager"));
        assert_eq!(n.labels.get("pg.role").map(String::as_str), Some("primary"));
        assert!(n.engine_labels.is_empty());
        assert_eq!((n.nano_cpus, n.memory_bytes), (2_000_000_000, 4_124_000_256));
        assert!(n.schedulable());
    }

    #[test]
    fn a_service_reads_its_stack_ports_and_mode() {
        let text = r#"[{"ID":"s1","Spec":{"Name":"web_front","Labels":{"com.docker.stack.namespace":"web"},
            "Mode":{"Global":{}},"TaskTemplate":{"Placement":{}},
            "EndpointSpec":{"Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":15000,"PublishMode":"host"}]}},
            "Endpoint":{}}]"#;
        let s = &parse_services(text).expect("parses")[0];
        assert_eq!(s.stack, "web");
        assert!(s.global);
        assert_eq!(s.ports, vec![PublishedPort { published: 15000, protocol: "tcp".into(), mode: "host".into() }]);
    }

    #[test]
    fn garbage_is_an_error_naming_the_call() {
        let e = parse_nodes("not json").expect_err("fails");
        assert!(e.to_string().contains("docker node inspect"), "{e}");
        assert_eq!(parse_secrets("{\"Name\":\"a\"}\n\n{\"Name\":\"b\"}\n").expect("parses"), vec!["a", "b"]);
    }
}
