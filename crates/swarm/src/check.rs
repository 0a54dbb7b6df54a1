//! The stack against the swarm: typed findings, each with the commands that
//! fix it.
//!
//! Placement is checked against the nodes swarm schedules on (active and
//! ready). Fixes are planned in order: a label suggested for one service is
//! seen by the next, so two members are not sent to the same node while
//! another is free, and the suggested commands together make the deploy
//! converge.

use std::collections::BTreeSet;

use hacompile_boundary::text;
use hacompile_stack::{Service, StackFile};
use serde::Serialize;

use crate::constraint::{Constraint, all_match};
use crate::probe::{PortProbe, Probe};
use crate::snapshot::{Node, Snapshot};

/// One thing that keeps the deploy from converging.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `placement`, `secret`, `port`, `local-port`, `engine`, `api`.
    pub kind: &'static str,
    /// What it is about: a service, a secret, a node.
    pub subject: String,
    pub message: String,
    /// Commands that fix it, in order; may be empty when only a change of
    /// the spec or of the machines can.
    pub fixes: Vec<Fix>,
    /// What to do when there is no command (or besides it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub command: String,
    /// Why this command (which node was chosen, and why that one).
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub stack: String,
    pub nodes: usize,
    pub schedulable: usize,
    pub findings: Vec<Finding>,
    /// What was checked and holds.
    pub passed: Vec<String>,
    /// What preflight cannot see from here.
    pub unseen: Vec<String>,
}

impl Report {
    /// Would `docker stack deploy` converge?
    pub fn converges(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Text from the spec or the swarm, safe for a terminal and a file.
fn safe(s: &str) -> String {
    text::line(s).into_owned()
}

/// Quotes a word for a POSIX shell (single quotes unless it needs none).
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_./:=@%+,-".contains(&b));
    if plain { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// A node as commands name it: its hostname when no other node has it.
fn node_ref(node: &Node, nodes: &[Node]) -> String {
    let unique = !node.hostname.is_empty() && nodes.iter().filter(|n| n.hostname == node.hostname).count() == 1;
    if unique { node.hostname.clone() } else { node.id.clone() }
}

/// A name a command may carry as it is: a letter or digit first (never an
/// option's `-`), then letters, digits, `.`, `_`, `-`.
fn plain_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
}

/// A node as a fix command names it (after `--`): its hostname when that is
/// plain, no other node has it and it is no node's ID (docker looks a node
/// up by ID first), else its ID when that is plain; `None` when neither can
/// be written so that the command does what it says.
fn node_arg(node: &Node, nodes: &[Node]) -> Option<String> {
    let unique = nodes.iter().filter(|n| n.hostname == node.hostname).count() == 1;
    if plain_name(&node.hostname) && unique && !nodes.iter().any(|n| n.id == node.hostname) {
        Some(node.hostname.clone())
    } else if !node.id.is_empty() && node.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Some(node.id.clone())
    } else {
        None
    }
}

/// What a fix command says when a node cannot be named in it.
fn unnamed(node: &Node, nodes: &[Node]) -> String {
    format!(
        "the node {} cannot be named safely in a command (its hostname and ID are not plain names): set it by hand",
        node_ref(node, nodes)
    )
}

/// Distinct nodes a service needs, and whether it is global.
fn nodes_needed(service: &Service) -> (usize, bool) {
    let Some(deploy) = &service.deploy else { return (1, false) };
    if deploy.mode == "global" {
        return (1, true);
    }
    let replicas = deploy.replicas.unwrap_or(1) as usize;
    let per_node = deploy.placement.as_ref().and_then(|p| p.max_replicas_per_node).unwrap_or(0) as usize;
    let needed = if per_node == 0 { replicas.min(1) } else { replicas.div_ceil(per_node) };
    (needed, false)
}

fn constraints(service: &Service) -> &[String] {
    service.deploy.as_ref().and_then(|d| d.placement.as_ref()).map_or(&[], |p| p.constraints.as_slice())
}

/// Checks `stack` (deployed as `stack_name`) against `swarm`. `probe` tests
/// ports on this machine when it is one of the swarm's nodes.
pub fn check(stack_name: &str, stack: &StackFile, swarm: &Snapshot, probe: &dyn PortProbe) -> Report {
    let mut report = Report {
        stack: safe(stack_name),
        nodes: swarm.nodes.len(),
        schedulable: swarm.nodes.iter().filter(|n| n.schedulable()).count(),
        findings: Vec::new(),
        passed: Vec::new(),
        unseen: Vec::new(),
    };
    let planned = placement(stack, swarm, &mut report);
    resources(stack, &planned, &mut report);
    secrets(stack, swarm, &mut report);
    ports(stack_name, stack, swarm, &planned, probe, &mut report);
    versions(stack, swarm, &mut report);
    report.unseen.push(
        "whether each node can pull the images (registry reachable, credentials: `docker stack deploy --with-registry-auth` for a private one)"
            .into(),
    );
    let encrypted =
        stack.networks.values().any(|n| n.driver_opts.get("encrypted").is_some_and(|v| v == "true" || v.is_empty()));
    if report.nodes > 1 {
        report.unseen.push(format!(
            "traffic between nodes: 2377/tcp, 7946/tcp+udp, 4789/udp{} must pass between them",
            if encrypted { " and, for the encrypted overlay, IP protocol 50 (ESP)" } else { "" }
        ));
    }
    report
}

fn placement(stack: &StackFile, swarm: &Snapshot, report: &mut Report) -> Vec<Node> {
    // The nodes as they will be once the suggested labels are set.
    let mut planned = swarm.nodes.clone();
    for (name, service) in &stack.services {
        let (needed, global) = nodes_needed(service);
        let wanted = constraints(service);
        let matching: Vec<usize> =
            (0..planned.len()).filter(|&i| planned[i].schedulable() && all_match(wanted, &planned[i])).collect();
        let shown = if wanted.is_empty() { "no constraint".to_owned() } else { format!("`{}`", wanted.join("`, `")) };
        let what = match (global, needed) {
            (true, _) | (false, 1) => "a node".to_owned(),
            _ => format!("{needed} distinct nodes"),
        };
        if matching.len() >= needed {
            let on: Vec<String> = matching.iter().map(|&i| node_ref(&planned[i], &planned)).collect();
            report.passed.push(safe(&format!("placement: {name} ({shown}) can run on {}", on.join(", "))));
            continue;
        }
        let missing = needed - matching.len();
        let parsed: Vec<Option<Constraint>> = wanted.iter().map(|c| Constraint::parse(c)).collect();
        // A node can take the service when every constraint but the node
        // labels already holds: labels are what `docker node update` sets.
        let fixable = |n: &Node| {
            n.schedulable()
                && parsed.iter().all(|c| c.as_ref().is_some_and(|c| c.node_label().is_some() || c.matches(n)))
        };
        let used_by = |n: &Node| -> Vec<String> {
            stack
                .services
                .iter()
                .filter(|(other, s)| *other != name && !constraints(s).is_empty() && all_match(constraints(s), n))
                .map(|(other, _)| other.clone())
                .collect()
        };
        let relabels = |n: &Node| -> Vec<String> {
            parsed
                .iter()
                .flatten()
                .filter(|c| c.equal)
                .filter_map(|c| c.node_label().and_then(|l| n.labels.get(l).map(|v| (l, v, &c.value))))
                .filter(|(_, have, want)| !have.eq_ignore_ascii_case(want))
                .map(|(l, have, _)| format!("{l}={have}"))
                .collect()
        };
        // A node another service is pinned to keeps its labels: relabelling
        // it would move that service away.
        let mut candidates: Vec<usize> = (0..planned.len())
            .filter(|&i| !matching.contains(&i) && fixable(&planned[i]))
            .filter(|&i| relabels(&planned[i]).is_empty() || used_by(&planned[i]).is_empty())
            .collect();
        candidates.sort_by_key(|&i| {
            let n = &planned[i];
            (relabels(n).len(), used_by(n).len(), n.hostname.clone(), n.id.clone())
        });
        // A node no command can name safely is left to the operator, and
        // the next one is taken.
        let mut help_unnamed = Vec::new();
        let unnamed_count = candidates.iter().filter(|&&i| node_arg(&planned[i], &planned).is_none()).count();
        candidates.retain(|&i| node_arg(&planned[i], &planned).is_some());
        if candidates.len() < missing {
            let nodes: Vec<String> = (0..planned.len())
                .filter(|&i| fixable(&planned[i]) && node_arg(&planned[i], &planned).is_none())
                .map(|i| unnamed(&planned[i], &planned))
                .take(unnamed_count)
                .collect();
            help_unnamed.extend(nodes);
        }
        let mut fixes = Vec::new();
        for &i in candidates.iter().take(missing) {
            let node = planned[i].clone();
            let mut args = Vec::new();
            for c in parsed.iter().flatten() {
                let Some(label) = c.node_label() else { continue };
                if c.matches(&node) {
                    continue;
                }
                if c.equal {
                    args.push(format!("--label-add {}", shell_quote(&format!("{label}={}", c.value))));
                    planned[i].labels.insert(label.to_owned(), c.value.clone());
                } else {
                    args.push(format!("--label-rm {}", shell_quote(label)));
                    planned[i].labels.remove(label);
                }
            }
            let target = node_ref(&node, &planned);
            let Some(arg) = node_arg(&node, &planned) else { continue };
            let others = used_by(&node);
            let changed = relabels(&node);
            let mut why = if others.is_empty() {
                format!("{target}: an active node no other service of the stack is pinned to")
            } else {
                format!("{target}: the least used active node left; it also runs {}", others.join(", "))
            };
            if !changed.is_empty() {
                why.push_str(&format!("; this replaces its label {}", changed.join(", ")));
            }
            fixes.push(Fix {
                command: safe(&format!("docker node update {} -- {}", args.join(" "), shell_quote(&arg))),
                why: safe(&why),
            });
        }
        let mut short = missing.saturating_sub(fixes.len());
        // Nodes that match but that swarm will not use.
        let idle: Vec<&Node> = planned.iter().filter(|n| !n.schedulable() && all_match(wanted, n)).collect();
        let mut help = help_unnamed;
        for n in &idle {
            if !n.availability.eq_ignore_ascii_case("active") && n.state.eq_ignore_ascii_case("ready") {
                let Some(arg) = node_arg(n, &planned) else {
                    help.push(unnamed(n, &planned));
                    continue;
                };
                fixes.push(Fix {
                    command: safe(&format!("docker node update --availability active -- {}", shell_quote(&arg))),
                    why: safe(&format!("{} matches but is {}", node_ref(n, &planned), n.availability)),
                });
                short = short.saturating_sub(1);
            } else {
                help.push(format!("{} matches but is {}", node_ref(n, &planned), n.state));
            }
        }
        if short > 0 {
            help.push(format!(
                "{short} more active node(s) are needed that meet the constraints other than node labels: add nodes to the swarm (`docker swarm join-token worker`) or change the constraints in the spec"
            ));
        }
        let on: Vec<String> = matching.iter().map(|&i| node_ref(&planned[i], &planned)).collect();
        let message = format!(
            "{name} needs {what} matching {shown}{}; {} of {} active node(s) match{}",
            if !global && needed > 1 { ", one replica per node" } else { "" },
            matching.len(),
            report.schedulable,
            if on.is_empty() { String::new() } else { format!(" ({})", on.join(", ")) },
        );
        report.findings.push(Finding {
            kind: "placement",
            subject: safe(name),
            message: safe(&message),
            fixes,
            help: (!help.is_empty()).then(|| safe(&help.join("; "))),
        });
    }
    planned
}

/// A service's reservation: nano CPUs and bytes (0 when none or unreadable).
fn reservation(service: &Service) -> (u64, u64) {
    let Some(r) = service.deploy.as_ref().map(|d| &d.resources.reservations) else { return (0, 0) };
    let cpus = r.cpus.parse::<f64>().map_or(0, |c| (c * 1e9).round() as u64);
    let memory = hacompile_spec::values::parse_bytes(&r.memory).unwrap_or(0);
    (cpus, memory)
}

fn shown_reservation(cpus: u64, memory: u64) -> String {
    format!("{} CPU and {} MiB", cpus as f64 / 1e9, memory / (1024 * 1024))
}

/// Swarm places a task only on a node with its reservation free. Checked:
/// each service against the size of the nodes it may run on, and each node
/// against the sum of what must run there (services pinned to it alone,
/// global ones). Tasks of other stacks are not subtracted (said in `unseen`).
fn resources(stack: &StackFile, planned: &[Node], report: &mut Report) {
    let mut load: Vec<(u64, u64, Vec<String>)> = vec![(0, 0, Vec::new()); planned.len()];
    let mut any = false;
    for (name, service) in &stack.services {
        let (cpus, memory) = reservation(service);
        if cpus == 0 && memory == 0 {
            continue;
        }
        any = true;
        let (needed, global) = nodes_needed(service);
        let matching: Vec<usize> = (0..planned.len())
            .filter(|&i| planned[i].schedulable() && all_match(constraints(service), &planned[i]))
            .collect();
        let fits = |n: &Node| n.nano_cpus >= cpus && n.memory_bytes >= memory;
        let fitting = matching.iter().filter(|&&i| fits(&planned[i])).count();
        if fitting < needed.min(matching.len()) {
            let small: Vec<String> = matching
                .iter()
                .filter(|&&i| !fits(&planned[i]))
                .map(|&i| {
                    let n = &planned[i];
                    format!("{} has {}", node_ref(n, planned), shown_reservation(n.nano_cpus, n.memory_bytes))
                })
                .collect();
            report.findings.push(Finding {
                kind: "resources",
                subject: safe(name),
                message: safe(&format!(
                    "{name} reserves {}, more than its node(s) offer: {}",
                    shown_reservation(cpus, memory),
                    small.join(", ")
                )),
                fixes: Vec::new(),
                help: Some("lower `reserve_cpus` / `reserve_memory` in the spec, or run it on a larger node".into()),
            });
        }
        if global || matching.len() == needed {
            for &i in &matching {
                load[i].0 += cpus;
                load[i].1 += memory;
                load[i].2.push(name.clone());
            }
        }
    }
    for (i, (cpus, memory, services)) in load.iter().enumerate() {
        let n = &planned[i];
        if services.len() > 1 && (*cpus > n.nano_cpus || *memory > n.memory_bytes) {
            report.findings.push(Finding {
                kind: "resources",
                subject: safe(&node_ref(n, planned)),
                message: safe(&format!(
                    "{} must run {} which together reserve {}; the node has {}",
                    node_ref(n, planned),
                    services.join(", "),
                    shown_reservation(*cpus, *memory),
                    shown_reservation(n.nano_cpus, n.memory_bytes)
                )),
                fixes: Vec::new(),
                help: Some(
                    "spread the services over more nodes (labels), or lower their reservations in the spec".into(),
                ),
            });
        }
    }
    if any && !report.findings.iter().any(|f| f.kind == "resources") {
        report.passed.push("resources: every reservation fits the nodes it must run on".into());
    }
    if any {
        report.unseen.push(
            "reservations of tasks already running on the nodes (other stacks) are not subtracted from what the nodes offer"
                .into(),
        );
    }
}

fn secrets(stack: &StackFile, swarm: &Snapshot, report: &mut Report) {
    let have: BTreeSet<&str> = swarm.secrets.iter().map(String::as_str).collect();
    for (name, secret) in &stack.secrets {
        if secret.external != Some(true) {
            continue;
        }
        if have.contains(name.as_str()) {
            report.passed.push(safe(&format!("secret: {name} exists")));
            continue;
        }
        report.findings.push(Finding {
            kind: "secret",
            subject: safe(name),
            message: safe(&format!("the external secret {name} does not exist")),
            fixes: vec![Fix {
                command: safe(&format!("printf '%s' \"$VALUE\" | docker secret create {} -", shell_quote(name))),
                why: "with its value in $VALUE (read it from your secret store; it never goes on a command line)"
                    .into(),
            }],
            help: None,
        });
    }
}

fn ports(
    stack_name: &str,
    stack: &StackFile,
    swarm: &Snapshot,
    planned: &[Node],
    probe: &dyn PortProbe,
    report: &mut Report,
) {
    let mut remote_ports = BTreeSet::new();
    for (name, service) in &stack.services {
        if service.ports.is_empty() {
            continue;
        }
        let (needed, global) = nodes_needed(service);
        let targets: BTreeSet<&str> = planned
            .iter()
            .filter(|n| n.schedulable() && all_match(constraints(service), n))
            .map(|n| n.id.as_str())
            .collect();
        for port in &service.ports {
            let mut conflict = false;
            let mut ours = false;
            for other in &swarm.services {
                for held in other.ports.iter().filter(|p| p.published == port.published && p.protocol == port.protocol)
                {
                    if other.stack == stack_name {
                        ours = true;
                        continue;
                    }
                    let holder = if other.stack.is_empty() {
                        other.name.clone()
                    } else {
                        format!("{} (stack {})", other.name, other.stack)
                    };
                    let blocked: Vec<&str> = if held.mode == "host" && port.mode == "host" {
                        let on: BTreeSet<&str> = if other.task_nodes.is_empty() {
                            planned
                                .iter()
                                .filter(|n| n.schedulable() && all_match(&other.constraints, n))
                                .map(|n| n.id.as_str())
                                .collect()
                        } else {
                            other.task_nodes.iter().map(String::as_str).collect()
                        };
                        let blocked: Vec<&str> = targets.intersection(&on).copied().collect();
                        let fits = if global { blocked.is_empty() } else { targets.len() - blocked.len() >= needed };
                        if fits {
                            continue;
                        }
                        blocked
                    } else {
                        // The routing mesh holds an ingress port on every node.
                        targets.iter().copied().collect()
                    };
                    conflict = true;
                    let nodes: Vec<String> = planned
                        .iter()
                        .filter(|n| blocked.contains(&n.id.as_str()))
                        .map(|n| node_ref(n, planned))
                        .collect();
                    report.findings.push(Finding {
                        kind: "port",
                        subject: safe(name),
                        message: safe(&format!(
                            "{name} publishes {}/{} in {} mode, but {holder} publishes it in {} mode{}",
                            port.published,
                            port.protocol,
                            port.mode,
                            held.mode,
                            if nodes.is_empty() { String::new() } else { format!(" on {}", nodes.join(", ")) },
                        )),
                        // Named so that docker finds this service (by ID
                        // first, then by name), and no other.
                        fixes: service_arg(other, &swarm.services)
                            .map(|arg| Fix {
                                command: safe(&format!("docker service rm -- {}", shell_quote(&arg))),
                                why: safe(&format!("frees the port {} held by {holder}", port.published)),
                            })
                            .into_iter()
                            .collect(),
                        help: Some(if service_arg(other, &swarm.services).is_some() {
                            "or publish another port in the spec and build again".into()
                        } else {
                            safe(&format!(
                                "remove {holder} by hand (its name and ID are not plain names), or publish another port in the spec and build again"
                            ))
                        }),
                    });
                }
            }
            if conflict {
                continue;
            }
            let local_target = targets.contains(swarm.local_node_id.as_str());
            let mut busy = false;
            if local_target && !ours && port.mode == "host" {
                let node = planned
                    .iter()
                    .find(|n| n.id == swarm.local_node_id)
                    .map(|n| node_ref(n, planned))
                    .unwrap_or_default();
                match probe.probe(port.published, &port.protocol) {
                    Probe::Free => {}
                    Probe::InUse => {
                        busy = true;
                        report.findings.push(Finding {
                            kind: "local-port",
                            subject: safe(name),
                            message: safe(&format!(
                                "{name} publishes {}/{} in host mode, but a process on this node ({node}) holds it",
                                port.published, port.protocol
                            )),
                            fixes: Vec::new(),
                            help: Some(safe(&format!(
                                "find it with `ss -lnp 'sport = :{}'` and stop it, or publish another port in the spec",
                                port.published
                            ))),
                        });
                    }
                    Probe::Unknown(why) => report.unseen.push(safe(&format!(
                        "port {}/{} on this node ({node}): not tested ({why})",
                        port.published, port.protocol
                    ))),
                }
            }
            if targets.iter().any(|t| *t != swarm.local_node_id) && port.mode == "host" {
                remote_ports.insert(port.published);
            }
            if !busy {
                report.passed.push(safe(&format!(
                    "port: {}/{} of {name} is not published by another service",
                    port.published, port.protocol
                )));
            }
        }
    }
    if !remote_ports.is_empty() {
        let list: Vec<String> = remote_ports.iter().map(u16::to_string).collect();
        report.unseen.push(format!(
            "a process outside docker bound to port(s) {} on a node other than this one: swarm does not report it; check with `ss -lnt` on those nodes",
            list.join(", ")
        ));
    }
}

/// A service as `docker service rm` names it: as [`node_arg`] does nodes.
fn service_arg(service: &crate::snapshot::ServiceInfo, all: &[crate::snapshot::ServiceInfo]) -> Option<String> {
    let unique = all.iter().filter(|s| s.name == service.name).count() == 1;
    if plain_name(&service.name) && unique && !all.iter().any(|s| s.id == service.name) {
        Some(service.name.clone())
    } else if !service.id.is_empty() && service.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Some(service.id.clone())
    } else {
        None
    }
}

/// A feature of the stack and the engine and API versions it needs.
struct Floor {
    engine: (u32, u32),
    api: (u32, u32),
    why: &'static str,
}

fn floors(stack: &StackFile) -> Vec<Floor> {
    let mut out = vec![Floor { engine: (19, 3), api: (1, 40), why: "compose file format 3.8" }];
    let any = |f: &dyn Fn(&Service) -> bool| stack.services.values().any(f);
    if any(&|s| s.deploy.as_ref().and_then(|d| d.placement.as_ref()).is_some_and(|p| p.max_replicas_per_node.is_some()))
    {
        out.push(Floor { engine: (19, 3), api: (1, 40), why: "max_replicas_per_node" });
    }
    if any(&|s| !s.cap_add.is_empty() || !s.cap_drop.is_empty()) {
        out.push(Floor { engine: (20, 10), api: (1, 41), why: "cap_add/cap_drop on swarm services" });
    }
    if any(&|s| s.init == Some(true)) {
        out.push(Floor { engine: (18, 6), api: (1, 37), why: "init on swarm services" });
    }
    out
}

/// `20.10.24+dfsg1` -> (20, 10); `1.41` -> (1, 41).
fn major_minor(v: &str) -> Option<(u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn versions(stack: &StackFile, swarm: &Snapshot, report: &mut Report) {
    let floors = floors(stack);
    let engine = floors.iter().map(|f| f.engine).max().unwrap_or((0, 0));
    let api = floors.iter().map(|f| f.api).max().unwrap_or((0, 0));
    let why = |pick: &dyn Fn(&Floor) -> (u32, u32), at: (u32, u32)| {
        floors.iter().filter(|f| pick(f) == at).map(|f| f.why).collect::<Vec<_>>().join(", ")
    };
    let engine_why = why(&|f| f.engine, engine);
    let api_why = why(&|f| f.api, api);
    let mut old = 0;
    for node in &swarm.nodes {
        match major_minor(&node.engine_version) {
            Some(v) if v >= engine => {}
            // Swarm places nothing on it: not in the way of this deploy.
            _ if !node.schedulable() => report.passed.push(safe(&format!(
                "engine: {} runs Docker Engine {} but is {}/{}: swarm places no task there",
                node_ref(node, &swarm.nodes),
                node.engine_version,
                node.availability,
                node.state
            ))),
            found => {
                old += 1;
                let have = if found.is_some() {
                    node.engine_version.clone()
                } else {
                    format!("unknown ({})", node.engine_version)
                };
                report.findings.push(Finding {
                    kind: "engine",
                    subject: safe(&node_ref(node, &swarm.nodes)),
                    message: safe(&format!(
                        "the node {} runs Docker Engine {have}; the stack needs {}.{:02} or later ({engine_why})",
                        node_ref(node, &swarm.nodes),
                        engine.0,
                        engine.1
                    )),
                    fixes: Vec::new(),
                    help: Some("upgrade Docker Engine on that node, or drain it: `docker node update --availability drain NODE`".into()),
                });
            }
        }
    }
    if old == 0 {
        report.passed.push(format!(
            "engine: every active node runs Docker Engine {}.{:02} or later ({engine_why})",
            engine.0, engine.1
        ));
    }
    for (side, have) in [("docker CLI", &swarm.client_api), ("daemon", &swarm.server_api)] {
        match major_minor(have) {
            Some(v) if v >= api => report.passed.push(safe(&format!("api: the {side} speaks API {have}"))),
            _ => report.findings.push(Finding {
                kind: "api",
                subject: side.into(),
                message: safe(&format!(
                    "the {side} speaks API {have}; the stack needs {}.{} ({api_why})",
                    api.0, api.1
                )),
                fixes: Vec::new(),
                help: Some(format!("upgrade the {side}")),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{PublishedPort, ServiceInfo};

    fn stack(example: &str) -> StackFile {
        let text = std::fs::read_to_string(format!("{}/../../examples/{example}", env!("CARGO_MANIFEST_DIR")))
            .expect("example");
        let source = hacompile_spec::SourceFile::new(example, text);
        let spec = hacompile_spec::load(&source).expect("valid");
        crate::stack_of(&spec).expect("compiles")
    }

    fn node(id: &str, role: &str) -> Node {
        Node {
            id: id.into(),
            hostname: format!("host-{id}"),
            role: role.into(),
            availability: "active".into(),
            state: "ready".into(),
            engine_version: "20.10.24+dfsg1".into(),
            nano_cpus: 4_000_000_000,
            memory_bytes: 8 << 30,
            os: "linux".into(),
            arch: "x86_64".into(),
            ..Default::default()
        }
    }

    fn swarm(nodes: Vec<Node>) -> Snapshot {
        Snapshot {
            local_node_id: nodes[0].id.clone(),
            client_api: "1.41".into(),
            server_api: "1.41".into(),
            nodes,
            ..Default::default()
        }
    }

    struct Fake(Probe);
    impl PortProbe for Fake {
        fn probe(&self, _: u16, _: &str) -> Probe {
            self.0.clone()
        }
    }
    const FREE: Fake = Fake(Probe::Free);

    /// Applies the printed fixes to the snapshot, as an operator would.
    fn apply(report: &Report, swarm: &mut Snapshot) {
        for f in &report.findings {
            if f.kind == "secret" {
                swarm.secrets.push(f.subject.clone());
            }
            for fix in &f.fixes {
                let words: Vec<&str> = fix.command.split(' ').collect();
                if words.starts_with(&["docker", "node", "update"]) {
                    let target = *words.last().expect("a node");
                    let n = swarm.nodes.iter_mut().find(|n| n.hostname == target || n.id == target).expect("a node");
                    for pair in words.windows(2) {
                        if pair[0] == "--label-add" {
                            let (k, v) = pair[1].split_once('=').expect("k=v");
                            n.labels.insert(k.into(), v.into());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn patroni_on_three_bare_nodes_gets_one_member_per_node_and_converges_after_the_fixes() {
        let stack = stack("ha-patroni.toml");
        let mut swarm = swarm(vec![node("a", "manager"), node("b", "worker"), node("c", "worker")]);
        let report = check("ha_db", &stack, &swarm, &FREE);
        assert!(!report.converges());
        let placement: Vec<&Finding> = report.findings.iter().filter(|f| f.kind == "placement").collect();
        assert_eq!(placement.len(), 6, "{:#?}", report.findings);
        // The three Patroni members go to three different nodes, and so do
        // the three etcd members.
        for prefix in ["pg-", "etcd-"] {
            let targets: BTreeSet<&str> = placement
                .iter()
                .filter(|f| f.subject.starts_with(prefix))
                .map(|f| f.fixes[0].command.rsplit(' ').next().expect("node"))
                .collect();
            assert_eq!(targets.len(), 3, "{prefix}: {placement:#?}");
        }
        assert!(report.unseen.iter().any(|u| u.contains("IP protocol 50 (ESP)")), "{:#?}", report.unseen);
        let pg1 = placement.iter().find(|f| f.subject == "pg-1").expect("pg-1");
        assert_eq!(pg1.fixes[0].command, "docker node update --label-add pg.member=1 -- host-a");
        let secrets: Vec<&Finding> = report.findings.iter().filter(|f| f.kind == "secret").collect();
        assert!(!secrets.is_empty());
        for s in &secrets {
            assert_eq!(s.fixes[0].command, format!("printf '%s' \"$VALUE\" | docker secret create {} -", s.subject));
        }
        apply(&report, &mut swarm);
        let after = check("ha_db", &stack, &swarm, &FREE);
        assert!(after.converges(), "{:#?}", after.findings);
    }

    #[test]
    fn a_single_node_takes_both_pinned_services_and_says_so() {
        let mut stack = stack("ha-postgres.toml");
        let replica = stack.services.get_mut("pg-replica-1").expect("replica");
        replica.deploy.as_mut().and_then(|d| d.placement.as_mut()).expect("placement").constraints =
            vec!["node.labels.pg.replica == true".into()];
        let mut swarm = swarm(vec![node("a", "manager")]);
        let report = check("ha_db", &stack, &swarm, &FREE);
        let placement: Vec<&Finding> = report.findings.iter().filter(|f| f.kind == "placement").collect();
        assert_eq!(placement.len(), 2, "{placement:#?}");
        assert!(placement[1].fixes[0].why.contains("it also runs pg-primary"), "{placement:#?}");
        apply(&report, &mut swarm);
        assert!(check("ha_db", &stack, &swarm, &FREE).converges());
    }

    #[test]
    fn a_label_another_service_is_pinned_by_is_not_overwritten() {
        // The example pins both services by one key (pg.role): one node
        // cannot hold both values, so the replica needs another node.
        let stack = stack("ha-postgres.toml");
        let report = check("ha_db", &stack, &swarm(vec![node("a", "manager")]), &FREE);
        let replica = report.findings.iter().find(|f| f.subject == "pg-replica-1").expect("replica");
        assert!(replica.fixes.is_empty(), "{replica:#?}");
        assert!(replica.help.as_deref().is_some_and(|h| h.contains("1 more active node(s)")), "{replica:#?}");
    }

    #[test]
    fn no_node_can_take_a_hostname_constraint_and_a_drained_node_is_named() {
        let mut stack = stack("ha-postgres.toml");
        let primary = stack.services.get_mut("pg-primary").expect("primary");
        primary.deploy.as_mut().and_then(|d| d.placement.as_mut()).expect("placement").constraints =
            vec!["node.hostname == db-9".into()];
        let mut drained = node("b", "worker");
        drained.hostname = "db-9".into();
        drained.availability = "drain".into();
        let report = check("ha_db", &stack, &swarm(vec![node("a", "manager"), drained]), &FREE);
        let f = report.findings.iter().find(|f| f.subject == "pg-primary").expect("a finding");
        assert_eq!(f.fixes.len(), 1, "{f:#?}");
        assert_eq!(f.fixes[0].command, "docker node update --availability active -- db-9");
        assert!(f.help.as_deref().is_none_or(|h| !h.contains("more active node")), "{f:#?}");
        let mut down = node("b", "worker");
        down.hostname = "db-9".into();
        down.state = "down".into();
        let report = check("ha_db", &stack, &swarm(vec![node("a", "manager"), down]), &FREE);
        let f = report.findings.iter().find(|f| f.subject == "pg-primary").expect("a finding");
        assert!(f.fixes.is_empty(), "{f:#?}");
        let help = f.help.as_deref().expect("help");
        assert!(help.contains("db-9 matches but is down") && help.contains("1 more active node"), "{help}");
    }

    fn labelled(mut n: Node) -> Node {
        n.labels.insert("pg.role".into(), "primary".into());
        n
    }

    fn holder(name: &str, stack: &str, mode: &str, port: u16, on: &[&str]) -> ServiceInfo {
        ServiceInfo {
            id: format!("id-{name}"),
            name: name.into(),
            stack: stack.into(),
            ports: vec![PublishedPort { published: port, protocol: "tcp".into(), mode: mode.into() }],
            task_nodes: on.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn ports_held_by_another_stack_conflict_and_our_own_do_not() {
        let stack = stack("ha-postgres.toml");
        let write = stack.services["haproxy"].ports[0].published;
        let base = swarm(vec![labelled(node("a", "manager")), node("b", "worker")]);
        let ports = |s: &Snapshot, probe: &dyn PortProbe| {
            check("ha_db", &stack, s, probe)
                .findings
                .into_iter()
                .filter(|f| f.kind.contains("port"))
                .collect::<Vec<_>>()
        };
        assert!(ports(&base, &FREE).is_empty());
        let mut s = base.clone();
        s.services.push(holder("web_front", "web", "host", write, &["b"]));
        let found = ports(&s, &FREE);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].message.contains("web_front (stack web) publishes it in host mode on host-b"), "{found:#?}");
        assert_eq!(found[0].fixes[0].command, "docker service rm -- web_front");
        // An ingress port holds every node.
        let mut s = base.clone();
        s.services.push(holder("api", "", "ingress", write, &[]));
        assert_eq!(ports(&s, &FREE).len(), 1);
        // The stack's own services (a redeploy) hold nothing against it, and the port is not probed.
        let mut s = base.clone();
        s.services.push(holder("ha_db_haproxy", "ha_db", "host", write, &["a", "b"]));
        assert!(ports(&s, &Fake(Probe::InUse)).iter().all(|f| !f.message.contains(&write.to_string())));
        // A process on this node holding a port.
        let found = ports(&base, &Fake(Probe::InUse));
        assert!(!found.is_empty() && found.iter().all(|f| f.kind == "local-port"), "{found:#?}");
        assert!(found[0].message.contains("a process on this node (host-a) holds it"));
        let busy = check("ha_db", &stack, &base, &Fake(Probe::InUse));
        assert!(!busy.passed.iter().any(|p| p.starts_with("port:")), "{:#?}", busy.passed);
        let r = check("ha_db", &stack, &base, &Fake(Probe::Unknown("permission denied".into())));
        assert!(r.unseen.iter().any(|u| u.contains("not tested (permission denied)")), "{:#?}", r.unseen);
        assert!(r.unseen.iter().any(|u| u.contains("on a node other than this one")), "{:#?}", r.unseen);
    }

    #[test]
    fn an_old_engine_or_api_is_named() {
        let stack = stack("ha-postgres.toml");
        let mut old = node("b", "worker");
        old.engine_version = "19.03.15".into();
        let mut s = swarm(vec![labelled(node("a", "manager")), old]);
        s.server_api = "1.40".into();
        let r = check("ha_db", &stack, &s, &FREE);
        let engine = r.findings.iter().find(|f| f.kind == "engine").expect("engine finding");
        assert!(
            engine.message.contains("host-b runs Docker Engine 19.03.15; the stack needs 20.10"),
            "{}",
            engine.message
        );
        assert!(engine.message.contains("cap_add/cap_drop"));
        assert!(r.findings.iter().any(|f| f.kind == "api" && f.subject == "daemon"));
        assert!(!r.findings.iter().any(|f| f.kind == "api" && f.subject == "docker CLI"));
        // Drained, as the help says: no longer in the way.
        let mut drained = s.clone();
        drained.nodes[1].availability = "drain".into();
        let r = check("ha_db", &stack, &drained, &FREE);
        assert!(!r.findings.iter().any(|f| f.kind == "engine"), "{:#?}", r.findings);
        assert!(
            r.passed.iter().any(|p| p.contains("host-b runs Docker Engine 19.03.15 but is drain/ready")),
            "{:#?}",
            r.passed
        );
    }

    #[test]
    fn hostile_names_from_the_swarm_are_quoted_and_escaped() {
        let stack = stack("ha-postgres.toml");
        let mut n = node("a", "manager");
        n.hostname = "evil'; rm -rf /\u{1b}[2J".into();
        let r = check("ha_db", &stack, &swarm(vec![n]), &FREE);
        let f = r.findings.iter().find(|f| f.kind == "placement").expect("placement");
        let cmd = &f.fixes[0].command;
        // Not a plain name: the node is named by its ID, after `--`.
        assert!(cmd.ends_with(" -- a"), "{cmd}");
        assert!(f.fixes[0].why.contains(r"evil'; rm -rf /\u{001b}[2J"), "{:?}", f.fixes[0].why);
        let json = serde_json::to_string(&r).expect("json");
        assert!(!json.contains('\u{1b}') && !json.contains("\\u001b"), "{json}");
    }

    #[test]
    fn reservations_larger_than_the_nodes_are_named() {
        let stack = stack("ha-postgres.toml");
        let mut small = labelled(node("a", "manager"));
        small.memory_bytes = 512 << 20;
        let r = check("ha_db", &stack, &swarm(vec![small]), &FREE);
        let f = r.findings.iter().find(|f| f.kind == "resources" && f.subject == "pg-primary").expect("finding");
        assert!(
            f.message.contains("reserves 0.5 CPU and 1024 MiB") && f.message.contains("host-a has 4 CPU and 512 MiB"),
            "{}",
            f.message
        );
        // Each fits alone, not together: both are pinned to the one node.
        let mut stack = stack;
        let replica = stack.services.get_mut("pg-replica-1").expect("replica");
        replica.deploy.as_mut().and_then(|d| d.placement.as_mut()).expect("placement").constraints =
            vec!["node.labels.pg.replica == true".into()];
        let mut one = labelled(node("a", "manager"));
        one.labels.insert("pg.replica".into(), "true".into());
        one.memory_bytes = 2 << 30;
        let r = check("ha_db", &stack, &swarm(vec![one.clone()]), &FREE);
        let f = r.findings.iter().find(|f| f.kind == "resources").expect("finding");
        assert!(
            f.message.contains("host-a must run haproxy, pg-primary, pg-replica-1 which together reserve"),
            "{}",
            f.message
        );
        one.memory_bytes = 8 << 30;
        let r = check("ha_db", &stack, &swarm(vec![one]), &FREE);
        assert!(!r.findings.iter().any(|f| f.kind == "resources"), "{:#?}", r.findings);
    }

    #[test]
    fn replicas_one_per_node_need_that_many_nodes() {
        let mut stack = stack("ha-postgres.toml");
        let deploy = stack.services.get_mut("pg-replica-1").and_then(|s| s.deploy.as_mut()).expect("deploy");
        deploy.replicas = Some(3);
        assert_eq!(deploy.placement.as_ref().and_then(|p| p.max_replicas_per_node), Some(1));
        let replica = |id: &str| {
            let mut n = node(id, "worker");
            n.labels.insert("pg.role".into(), "replica".into());
            n
        };
        let nodes = vec![labelled(node("a", "manager")), replica("b"), replica("c"), node("d", "worker")];
        let r = check("ha_db", &stack, &swarm(nodes), &FREE);
        let f = r.findings.iter().find(|f| f.subject == "pg-replica-1").expect("finding");
        assert!(
            f.message.contains("needs 3 distinct nodes matching `node.labels.pg.role == replica`, one replica per node; 2 of 4 active node(s) match (host-b, host-c)"),
            "{}",
            f.message
        );
        // The bare node, not the primary's (which would lose its label).
        assert_eq!(f.fixes.len(), 1, "{f:#?}");
        assert_eq!(f.fixes[0].command, "docker node update --label-add pg.role=replica -- host-d");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("pg.role=primary"), "pg.role=primary");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
