//! Names and paths shared by the stack and the proxy config: one place, so
//! the two can never disagree.

pub const STACK_FILE: &str = "docker-stack.yml";
pub const HAPROXY_CFG: &str = "haproxy.cfg";
pub const PRIMARY_INIT: &str = "pg-primary-init.sh";
pub const REPLICA_ENTRYPOINT: &str = "pg-replica-entrypoint.sh";
pub const PRIMARY_ENTRYPOINT: &str = "pg-primary-entrypoint.sh";
pub const HEALTHCHECK: &str = "pg-healthcheck.sh";
pub const EXPORTER_QUERIES: &str = "postgres-exporter-queries.yaml";

pub const HAPROXY_SERVICE: &str = "haproxy";
/// Where the official haproxy image reads its config.
pub const HAPROXY_CFG_PATH: &str = "/usr/local/etc/haproxy/haproxy.cfg";
/// The haproxy image runs as `haproxy` (UID/GID 99).
pub const HAPROXY_UID: &str = "99";
/// How long swarm waits for a proxy to stop before killing it.
pub const HAPROXY_STOP_GRACE_MS: u64 = 30_000;
/// HAProxy ends a soft stop by itself this much earlier, so it exits on its
/// own (closing sessions) instead of being killed mid-way.
pub const HAPROXY_HARD_STOP_MARGIN_MS: u64 = 5_000;

/// The userlist section the stats secret must define.
pub const STATS_USERLIST: &str = "hacompile_stats";
/// The Docker DNS resolver section name in haproxy.cfg.
pub const RESOLVERS: &str = "docker";
/// Docker's embedded DNS server, reachable from every container.
pub const DOCKER_DNS: &str = "127.0.0.11:53";

/// Where Docker mounts a secret named `name`.
pub fn secret_path(name: &str) -> String {
    format!("/run/secrets/{name}")
}

/// The DNS name with one A record per running task of a service.
pub fn tasks_name(service: &str) -> String {
    format!("tasks.{service}")
}
