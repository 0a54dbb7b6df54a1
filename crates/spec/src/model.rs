//! The parsed spec. Doc comments here become the JSON Schema descriptions.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value with the byte range it was read from.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Sp<T>(toml::Spanned<T>);

impl<T> Sp<T> {
    /// A value that was not in the file (a default); its span is empty.
    pub fn synthetic(value: T) -> Self {
        Self(toml::Spanned::new(0..0, value))
    }

    pub fn span(&self) -> Range<usize> {
        self.0.span()
    }

    pub fn get(&self) -> &T {
        self.0.get_ref()
    }
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.get_ref()
    }
}

impl<T: PartialEq> PartialEq for Sp<T> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}
impl<T: Eq> Eq for Sp<T> {}
impl<T: Ord> PartialOrd for Sp<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Ord> Ord for Sp<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.get().cmp(other.get())
    }
}

impl<T: Serialize> Serialize for Sp<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

fn sp<T>(v: T) -> Sp<T> {
    Sp::synthetic(v)
}

/// A highly available PostgreSQL cluster on Docker Swarm: a primary pinned by
/// placement constraints, asynchronous streaming replicas, and HAProxy in
/// global mode in front, on an encrypted overlay network.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "hacompile cluster spec")]
pub struct Spec {
    /// The stack name you deploy with (`docker stack deploy -c docker-stack.yml NAME`).
    /// It prefixes the names of the swarm configs the stack creates.
    pub stack: Sp<String>,
    /// The cluster's shape: `pinned` (a primary pinned by placement
    /// constraints, failover by a person) or `patroni` (Patroni members with
    /// an etcd cluster: automatic failover, role- and lag-aware routing).
    #[serde(default = "default_topology")]
    pub topology: Sp<TopologyKind>,
    /// The overlay network the cluster runs on.
    #[serde(default)]
    pub network: Network,
    /// Docker secrets the cluster reads, by name. Credentials are only ever
    /// references to these (`password = { secret = "NAME" }`).
    #[serde(default)]
    pub secrets: BTreeMap<Sp<String>, Sp<SecretDecl>>,
    /// Log rotation for every service.
    #[serde(default)]
    pub logging: Logging,
    pub postgres: Postgres,
    pub haproxy: Haproxy,
    /// The Patroni members (topology `patroni` only).
    #[serde(default)]
    pub patroni: Option<Sp<Patroni>>,
    /// The consensus store Patroni keeps its leader lock in: an etcd cluster
    /// (topology `patroni` only).
    #[serde(default)]
    pub dcs: Option<Sp<Dcs>>,
    /// Continuous WAL archiving and scheduled base backups (pgBackRest).
    #[serde(default)]
    pub backup: Option<Sp<Backup>>,
}

fn default_topology() -> Sp<TopologyKind> {
    sp(TopologyKind::Pinned)
}

/// The cluster's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TopologyKind {
    /// A primary pinned to its node by constraints and asynchronous streaming
    /// replicas; HAProxy routes by service. No automatic failover.
    #[default]
    Pinned,
    /// Patroni beside every server, an etcd cluster holding the leader lock;
    /// HAProxy asks each member's REST API who leads and how far it lags.
    Patroni,
}

/// Patroni: one member service per `[[patroni.members]]`, each its own
/// volume and constraints, every one able to lead.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Patroni {
    /// The members' image: built from the emitted `patroni.Dockerfile` (the
    /// pinned `postgres.image` plus Patroni from the PostgreSQL project's apt
    /// repository) and pushed to your registry; pinned by `hacompile lock`.
    pub image: Sp<String>,
    /// The cluster's name in the DCS (default: the stack name).
    #[serde(default)]
    pub scope: Option<Sp<String>>,
    /// Seconds the leader lock lives without renewal: the bound on failover
    /// after the leader dies. At least 20 (current Patroni's minimum).
    #[serde(default = "default_ttl")]
    pub ttl: Sp<u32>,
    /// Seconds between Patroni's runs of its loop (at least 1).
    #[serde(default = "default_loop_wait")]
    pub loop_wait: Sp<u32>,
    /// Seconds Patroni retries the DCS and PostgreSQL before it demotes the
    /// leader (at least 3). Patroni needs `loop_wait + 2 * retry_timeout <= ttl`.
    #[serde(default = "default_retry_timeout")]
    pub retry_timeout: Sp<u32>,
    /// A replica lagging more than this never becomes leader (e.g. `1MB`).
    #[serde(default = "default_max_lag_on_failover")]
    pub maximum_lag_on_failover: Sp<String>,
    /// `on` (default): a commit is acknowledged once a synchronous standby
    /// has it, so a failover loses no acknowledged write; without a healthy
    /// standby the leader goes on alone. `strict`: never alone (writes stop
    /// instead). `off`: asynchronous, a failover may lose recent commits.
    #[serde(default = "default_sync_mode")]
    pub synchronous_mode: SyncMode,
    /// A replica lagging more than this leaves the read pool until it catches up.
    #[serde(default = "default_read_lag_limit")]
    pub read_lag_limit: Sp<String>,
    /// Permanent replication slots for members (default on).
    #[serde(default = "yes_sp")]
    pub slots: Sp<bool>,
    /// A former leader rejoins through `pg_rewind` instead of a new copy (default on).
    #[serde(default = "yes_sp")]
    pub pg_rewind: Sp<bool>,
    /// The REST API's credentials for its unsafe endpoints (switchover,
    /// restart, reinitialize); health endpoints stay open to HAProxy.
    pub rest_api: RestApi,
    /// One service per member (at least 2, 3 recommended).
    pub members: Vec<Sp<DbNode>>,
}

fn default_ttl() -> Sp<u32> {
    sp(20)
}
fn default_loop_wait() -> Sp<u32> {
    sp(5)
}
fn default_retry_timeout() -> Sp<u32> {
    sp(5)
}
fn default_max_lag_on_failover() -> Sp<String> {
    sp("1MB".into())
}
fn default_sync_mode() -> SyncMode {
    SyncMode::On
}
fn default_read_lag_limit() -> Sp<String> {
    sp("16MB".into())
}

/// Patroni's synchronous replication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    Off,
    On,
    Strict,
}

/// The REST API's basic authentication.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestApi {
    #[serde(default = "default_rest_user")]
    pub user: Sp<String>,
    /// Its password, from a secret.
    pub password: SecretRef,
}

fn default_rest_user() -> Sp<String> {
    sp("patroni".into())
}

/// The etcd cluster: one service per member, each its own volume and
/// constraints, only on a network shared with the Patroni members.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dcs {
    /// The etcd image (e.g. `quay.io/coreos/etcd:v3.5.17`), pinned by `hacompile lock`.
    pub image: Sp<String>,
    /// Allows a single member: no fault tolerance, for development only.
    #[serde(default)]
    pub development: bool,
    /// An odd number of members, at least 3: a majority must stay up.
    pub members: Vec<Sp<DbNode>>,
}

/// The overlay network all services share.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Network name inside the stack.
    #[serde(default = "default_network_name")]
    pub name: Sp<String>,
    /// Encrypt traffic between nodes (IPsec). Turning this off is explicit and
    /// sends database traffic in clear between nodes.
    #[serde(default = "yes")]
    pub encrypted: bool,
}

impl Default for Network {
    fn default() -> Self {
        Self { name: default_network_name(), encrypted: true }
    }
}

fn default_network_name() -> Sp<String> {
    sp("pg_net".into())
}

fn yes() -> bool {
    true
}

/// A Docker secret. External (created with `docker secret create`) by default.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretDecl {
    /// Created outside the stack with `docker secret create NAME -`.
    #[serde(default = "yes")]
    pub external: bool,
    /// For a non-external secret: the file it is created from, relative to the
    /// stack file. Keep such files out of version control.
    #[serde(default)]
    pub file: Option<Sp<String>>,
}

/// A credential: always a reference to a declared Docker secret, never a value.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The name of a secret declared under `[secrets]`.
    pub secret: Sp<String>,
}

/// Why a string is refused where a credential goes. The parser relies on this
/// text to redact the value when it shows the error.
pub const LITERAL_CREDENTIAL: &str = "a literal credential is not allowed in the spec";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a secret reference: { secret = \"NAME\" }")
            }
            fn visit_str<E: Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(LITERAL_CREDENTIAL))
            }
            // Written by hand (not an untagged enum) so the inner span survives.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let mut secret = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "secret" {
                        return Err(A::Error::unknown_field(&key, &["secret"]));
                    }
                    if secret.is_some() {
                        return Err(A::Error::duplicate_field("secret"));
                    }
                    secret = Some(map.next_value::<Sp<String>>()?);
                }
                secret.map(|secret| SecretRef { secret }).ok_or_else(|| A::Error::missing_field("secret"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Log rotation (json-file driver) applied to every service.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Rotate a log file at this size (e.g. `10m`).
    #[serde(default = "default_log_size")]
    pub max_size: Sp<String>,
    /// Rotated files kept per container.
    #[serde(default = "default_log_files")]
    pub max_file: Sp<u32>,
}

impl Default for Logging {
    fn default() -> Self {
        Self { max_size: default_log_size(), max_file: default_log_files() }
    }
}

fn default_log_size() -> Sp<String> {
    sp("10m".into())
}
fn default_log_files() -> Sp<u32> {
    sp(5)
}

/// Which image conventions the PostgreSQL services follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// The maintained official `postgres` image (`POSTGRES_*_FILE`,
    /// `/docker-entrypoint-initdb.d`, UID 999). hacompile emits the
    /// replication setup the image lacks.
    Official,
    /// Bitnami conventions (`POSTGRESQL_*_FILE`, `POSTGRESQL_REPLICATION_MODE`,
    /// data under `/bitnami/postgresql`, UID 1001). Free Bitnami images moved
    /// to `bitnamilegacy/*` in 2025 and get no updates.
    Bitnami,
}

/// The PostgreSQL primary and its streaming replicas.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    /// Image reference with a tag (e.g. `postgres:16`); the digest comes from
    /// `hacompile.lock` unless the reference carries one.
    pub image: Sp<String>,
    #[serde(default = "default_flavor")]
    pub flavor: Flavor,
    /// The database created on first start.
    pub database: Sp<String>,
    /// The superuser name, from a secret.
    pub user: SecretRef,
    /// The superuser password, from a secret.
    pub password: SecretRef,
    pub replication: Replication,
    /// A Prometheus `postgres_exporter` beside every database service,
    /// connecting as a monitoring role that has only `pg_monitor`.
    #[serde(default)]
    pub exporter: Option<Sp<Exporter>>,
    /// The primary's placement (topology `pinned`).
    #[serde(default)]
    pub primary: Option<Sp<DbNode>>,
    /// One service per replica, each with its own volume and constraints
    /// (topology `pinned`).
    #[serde(default)]
    pub replicas: Vec<Sp<DbNode>>,
    /// WAL the primary keeps for any standby regardless of slots (a restart,
    /// a slow link). Official flavor.
    #[serde(default = "default_wal_keep")]
    pub wal_keep_size: Sp<String>,
    /// One physical replication slot per replica (official flavor, default
    /// on): the primary keeps the WAL a replica has not received, up to
    /// `max_slot_wal_keep_size`, so a replica down for a while catches up
    /// instead of needing a new copy. The Bitnami image has no setting for
    /// slots: there it is off, and turning it on is refused.
    #[serde(default)]
    pub replication_slots: Option<Sp<bool>>,
    /// The most WAL a slot may hold back on the primary; past it the slot is
    /// invalidated (the replica is then copied again) instead of filling the
    /// primary's disk.
    #[serde(default = "default_slot_keep")]
    pub max_slot_wal_keep_size: Sp<String>,
    /// Bandwidth a replica's base backup may take from the primary
    /// (`pg_basebackup --max-rate`, e.g. `100M` per second; 32k to 1024M).
    /// Default: unlimited.
    #[serde(default)]
    pub basebackup_max_rate: Option<Sp<String>>,
    /// How long a replica must have failed to stream from a primary that is
    /// up before its next start copies the primary again (the WAL it needs
    /// is gone). The healthcheck marks it unhealthy long before.
    #[serde(default = "d30s")]
    pub recopy_after: Sp<String>,
    /// `max_connections` of every server. HAProxy's per-server `maxconn` is
    /// derived from it (minus superuser-reserved connections, one health
    /// check per proxy and a spare), so a spike queues in HAProxy instead of
    /// failing the check and cutting every session.
    #[serde(default = "default_max_connections")]
    pub max_connections: Sp<u32>,
    /// Replicas tell the primary which rows their queries still read, so
    /// vacuum does not remove them and long reads are not cancelled by
    /// recovery conflicts (default on; costs some bloat on the primary).
    #[serde(default = "yes_sp")]
    pub hot_standby_feedback: Sp<bool>,
    /// Size of the tmpfs mounted at /dev/shm (parallel queries' shared
    /// memory; swarm's default is 64 MB and `shm_size` is not supported in
    /// stacks). Default: a quarter of the memory limit.
    #[serde(default)]
    pub shm_size: Option<Sp<String>>,
    /// Any other server setting, e.g. `work_mem = "64MB"`. Known names only,
    /// values checked; `shared_buffers` and `effective_cache_size` default to
    /// a quarter and three quarters of the memory limit. Settings hacompile
    /// owns (ports, replication, `max_connections`, ...) have their own keys.
    #[serde(default)]
    pub parameters: BTreeMap<Sp<String>, Sp<ParamValue>>,
    /// How long swarm waits after the stop signal before killing PostgreSQL.
    /// Shorter than a checkpoint means a crash recovery on every restart.
    #[serde(default = "default_pg_grace")]
    pub stop_grace_period: Sp<String>,
    /// Limits and reservations per database task (defaults: 2 CPUs, 2g; reserve 0.5 CPU, 1g).
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub healthcheck: Healthcheck,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub update: UpdatePolicy,
}

fn default_flavor() -> Flavor {
    Flavor::Official
}
fn default_wal_keep() -> Sp<String> {
    sp("1g".into())
}
fn default_slot_keep() -> Sp<String> {
    sp("16g".into())
}
fn default_max_connections() -> Sp<u32> {
    sp(100)
}
fn yes_sp() -> Sp<bool> {
    sp(true)
}

/// A server setting's value as TOML writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Bool(b) => f.write_str(if *b { "on" } else { "off" }),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Text(t) => f.write_str(t),
        }
    }
}
fn default_pg_grace() -> Sp<String> {
    sp("120s".into())
}

/// Asynchronous streaming replication.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replication {
    /// The role replicas connect as.
    #[serde(default = "default_repl_user")]
    pub user: Sp<String>,
    /// Its password, from a secret.
    pub password: SecretRef,
}

fn default_repl_user() -> Sp<String> {
    sp("replicator".into())
}

/// `postgres_exporter`: one service per database service (the primary and
/// each replica, or each Patroni member), on the database network, nothing
/// published, with deploy labels for Prometheus' Docker Swarm discovery.
/// The role is created once, when the cluster is first initialised (the
/// primary's init script, or Patroni's post-bootstrap), with `LOGIN` and
/// `pg_monitor` only; its password comes from a secret.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exporter {
    /// The exporter image with a tag (e.g.
    /// `quay.io/prometheuscommunity/postgres-exporter:v0.16.0`), pinned by
    /// `hacompile lock`.
    pub image: Sp<String>,
    /// The monitoring role the exporter connects as.
    #[serde(default = "default_monitor_user")]
    pub user: Sp<String>,
    /// Its password, from a secret.
    pub password: SecretRef,
    /// The port the exporter serves `/metrics` on, inside the network.
    #[serde(default = "default_exporter_port")]
    pub port: Sp<u16>,
    /// Limits and reservations per exporter (defaults: 0.25 CPU, 128m; reserve 0.05 CPU, 32m).
    #[serde(default)]
    pub resources: Resources,
}

/// The monitoring role's default name.
pub const DEFAULT_MONITOR_USER: &str = "hacompile_monitor";
/// postgres_exporter's own default port.
pub const DEFAULT_EXPORTER_PORT: u16 = 9187;

fn default_monitor_user() -> Sp<String> {
    sp(DEFAULT_MONITOR_USER.into())
}
fn default_exporter_port() -> Sp<u16> {
    sp(DEFAULT_EXPORTER_PORT)
}

/// One database service: where it may run and the volume it owns.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbNode {
    /// Swarm placement constraints, e.g. `node.labels.pg.role == primary`.
    /// Required: a database must not wander to a node without its data.
    pub constraints: Vec<Sp<String>>,
    /// The named volume for its data (default: `<service>-data`). Never shared.
    #[serde(default)]
    pub volume: Option<Sp<String>>,
}

/// CPU and memory limits and reservations of one task.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU limit (e.g. `2` or `0.5`).
    pub cpus: Option<Sp<f64>>,
    /// Memory limit (e.g. `2g`, `512m`).
    pub memory: Option<Sp<String>>,
    /// CPUs reserved for scheduling.
    pub reserve_cpus: Option<Sp<f64>>,
    /// Memory reserved for scheduling.
    pub reserve_memory: Option<Sp<String>>,
}

/// The container healthcheck (`pg_isready`). Swarm puts a task in service
/// DNS only once it is healthy.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    #[serde(default = "d10s")]
    pub interval: Sp<String>,
    #[serde(default = "d5s")]
    pub timeout: Sp<String>,
    #[serde(default = "five")]
    pub retries: Sp<u32>,
    /// Grace for first start; a replica's base backup runs in it.
    #[serde(default = "d300s")]
    pub start_period: Sp<String>,
}

impl Default for Healthcheck {
    fn default() -> Self {
        Self { interval: d10s(), timeout: d5s(), retries: five(), start_period: d300s() }
    }
}

fn d5s() -> Sp<String> {
    sp("5s".into())
}
fn d10s() -> Sp<String> {
    sp("10s".into())
}
fn d300s() -> Sp<String> {
    sp("300s".into())
}
fn five() -> Sp<u32> {
    sp(5)
}

/// When swarm restarts a task: whenever it exits (`condition: any`), after
/// `delay`, and never giving up. Swarm has no backoff and no later retry: a
/// task that used up a `max_attempts` bound is abandoned for good, which for
/// the only primary (or a node's only proxy) is an outage until a person
/// acts. The `delay` is what keeps a crash loop from hammering the node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// Pause before each restart (at least 1s).
    #[serde(default = "d10s")]
    pub delay: Sp<String>,
    /// 0 (the default) = never give up. A bound is refused for the cluster's
    /// services: swarm would abandon the task after that many quick failures.
    #[serde(default = "zero")]
    pub max_attempts: Sp<u32>,
    /// Only meaningful with a bound: how long a run must last not to count.
    #[serde(default = "d120s")]
    pub window: Sp<String>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self { delay: d10s(), max_attempts: zero(), window: d120s() }
    }
}

fn zero() -> Sp<u32> {
    sp(0)
}

fn d120s() -> Sp<String> {
    sp("120s".into())
}

/// How updates roll out. Always one task at a time and `stop-first`: a
/// database must never run two postmasters on one volume, and host-mode ports
/// cannot be bound twice.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicy {
    /// Pause between tasks.
    #[serde(default = "d10s")]
    pub delay: Sp<String>,
    /// How long a new task is watched before the update counts as good.
    #[serde(default = "d60s")]
    pub monitor: Sp<String>,
    /// What a failed update does.
    #[serde(default = "default_failure_action")]
    pub failure_action: FailureAction,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        Self { delay: d10s(), monitor: d60s(), failure_action: default_failure_action() }
    }
}

fn d60s() -> Sp<String> {
    sp("60s".into())
}
fn default_failure_action() -> FailureAction {
    FailureAction::Rollback
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    Rollback,
    Pause,
}

/// HAProxy in global mode (one per node), routing by service, not by a check
/// that cannot tell a primary from a replica.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Haproxy {
    /// Image reference with a tag (e.g. `haproxy:2.8`).
    pub image: Sp<String>,
    /// Health check kind. `pgsql` (default) speaks the PostgreSQL startup
    /// protocol and fails on an error (server starting, no pg_hba match);
    /// `tcp` only proves the port is open.
    #[serde(default = "default_check")]
    pub check: CheckKind,
    /// The user name `pgsql` checks present (it need not exist; no password is sent).
    #[serde(default = "default_check_user")]
    pub check_user: Sp<String>,
    /// Write listener: the primary only.
    #[serde(default = "default_write_port")]
    pub write_port: Sp<u16>,
    /// Read listener: the replicas, with the primary as backup.
    #[serde(default = "default_read_port")]
    pub read_port: Sp<u16>,
    /// Optional placement constraints for the proxies (default: every node).
    #[serde(default)]
    pub constraints: Vec<Sp<String>>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub checks: CheckTiming,
    /// Maximum concurrent client connections per proxy.
    #[serde(default = "default_maxconn")]
    pub maxconn: Sp<u32>,
    /// How many proxies run (global mode: one per matching node). Each gets
    /// an equal share of every server's connections (`postgres.max_connections`).
    /// Default: the number of database services.
    #[serde(default)]
    pub proxies: Option<Sp<u32>>,
    /// Client networks allowed on the write and read listeners (CIDR);
    /// others are refused at connect. Default: loopback and private ranges.
    #[serde(default = "default_allow_from")]
    pub allow_from: Vec<Sp<String>>,
    /// The stats page; omit the table to turn it off.
    #[serde(default)]
    pub stats: Option<Stats>,
    /// Limits and reservations per proxy (defaults: 1 CPU, 256m; reserve 0.1 CPU, 64m).
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub update: UpdatePolicy,
}

fn default_check() -> CheckKind {
    CheckKind::Pgsql
}
fn default_check_user() -> Sp<String> {
    sp("haproxy_check".into())
}
fn default_write_port() -> Sp<u16> {
    sp(5000)
}
fn default_read_port() -> Sp<u16> {
    sp(5001)
}
fn default_maxconn() -> Sp<u32> {
    sp(2000)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// Layer 4: the TCP port accepts a connection.
    Tcp,
    /// Layer 7: `option pgsql-check`, a PostgreSQL StartupMessage.
    Pgsql,
}

/// HAProxy timeouts. Long client/server timeouts keep pooled idle connections.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "d5s")]
    pub connect: Sp<String>,
    #[serde(default = "d30m")]
    pub client: Sp<String>,
    #[serde(default = "d30m")]
    pub server: Sp<String>,
    /// Time a health check may take.
    #[serde(default = "d5s")]
    pub check: Sp<String>,
    /// How long a client waits in HAProxy's queue for a server connection
    /// when every server is at its `maxconn` (then it gets an error).
    #[serde(default = "d30s")]
    pub queue: Sp<String>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: d5s(), client: d30m(), server: d30m(), check: d5s(), queue: d30s() }
    }
}

fn d30s() -> Sp<String> {
    sp("30s".into())
}

fn d30m() -> Sp<String> {
    sp("30m".into())
}

/// Health check cadence: a server is down after `fall` failed checks `interval`
/// apart and up again after `rise` good ones. Sessions of a server that goes
/// down are cut.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckTiming {
    #[serde(default = "d3s")]
    pub interval: Sp<String>,
    #[serde(default = "three")]
    pub fall: Sp<u32>,
    #[serde(default = "two")]
    pub rise: Sp<u32>,
}

impl Default for CheckTiming {
    fn default() -> Self {
        Self { interval: d3s(), fall: three(), rise: two() }
    }
}

fn d3s() -> Sp<String> {
    sp("3s".into())
}
fn three() -> Sp<u32> {
    sp(3)
}
fn two() -> Sp<u32> {
    sp(2)
}

/// The HAProxy stats page, behind HTTP basic auth whose users live in a
/// Docker secret (a `userlist hacompile_stats` section with `$6$` crypt
/// hashes), so no password is ever in a config.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    #[serde(default = "default_stats_port")]
    pub port: Sp<u16>,
    #[serde(default = "default_stats_path")]
    pub path: Sp<String>,
    /// The secret holding the userlist.
    pub users: SecretRef,
    /// Source networks allowed to reach the page (CIDR). Default: loopback and
    /// private ranges.
    #[serde(default = "default_allow_from")]
    pub allow_from: Vec<Sp<String>>,
    /// HAProxy's built-in Prometheus exporter at `/metrics` on this listener,
    /// behind the same allow list and authentication (default on; Prometheus
    /// scrapes with `basic_auth`).
    #[serde(default = "yes_sp")]
    pub metrics: Sp<bool>,
}

/// Where the Prometheus exporter answers on the stats listener.
pub const METRICS_PATH: &str = "/metrics";

fn default_stats_port() -> Sp<u16> {
    sp(8080)
}
fn default_stats_path() -> Sp<String> {
    sp("/stats".into())
}
fn default_allow_from() -> Vec<Sp<String>> {
    ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].into_iter().map(|s| sp(s.to_owned())).collect()
}

/// Continuous WAL archiving from whichever server is the primary and base
/// backups on a schedule, with pgBackRest, into one repository.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// The backup tool: `pgbackrest` (the only one; packaged by Debian and
    /// the PostgreSQL project's apt repository the official image trusts).
    #[serde(default)]
    pub tool: BackupTool,
    /// Topology `pinned`: the database services' image, built from the
    /// emitted `postgres.Dockerfile` (the pinned `postgres.image` plus
    /// pgBackRest) and pinned by `hacompile lock`. Topology `patroni`: not
    /// used, `patroni.Dockerfile` installs pgBackRest into `patroni.image`.
    #[serde(default)]
    pub image: Option<Sp<String>>,
    /// The pgBackRest stanza (default: the stack name).
    #[serde(default)]
    pub stanza: Option<Sp<String>>,
    /// Where backups and archived WAL go.
    pub repository: Sp<Repository>,
    /// Full backups kept (older ones and the WAL only they need expire).
    #[serde(default = "two")]
    pub retention_full: Sp<u32>,
    /// Differential backups kept.
    #[serde(default = "seven")]
    pub retention_diff: Sp<u32>,
    /// When base backups run (UTC).
    #[serde(default)]
    pub schedule: Schedule,
    /// Encrypt the repository (aes-256-cbc) with `cipher_pass`. Turning it
    /// off is explicit, and lint warns.
    #[serde(default = "yes_sp")]
    pub encrypt: Sp<bool>,
    /// The repository's passphrase, from a secret (required with `encrypt`).
    #[serde(default)]
    pub cipher_pass: Option<SecretRef>,
    /// Compression of backups and archived WAL.
    #[serde(default)]
    pub compress_type: CompressType,
    /// Compression level (zst 1-19, gz and bz2 1-9, lz4 1-12; default 3).
    #[serde(default = "three")]
    pub compress_level: Sp<u32>,
    /// Processes a backup or restore uses to copy and compress files
    /// (pgBackRest's `process-max`, 1 to 32; default 1). Each one is a core
    /// the database server does not get while a backup runs.
    #[serde(default)]
    pub process_max: Option<Sp<u32>>,
}

fn seven() -> Sp<u32> {
    sp(7)
}

/// The backup tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupTool {
    #[default]
    Pgbackrest,
}

/// pgBackRest's compression types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompressType {
    #[default]
    Zst,
    Lz4,
    Gz,
    Bz2,
    None,
}

impl CompressType {
    pub fn as_str(self) -> &'static str {
        match self {
            CompressType::Zst => "zst",
            CompressType::Lz4 => "lz4",
            CompressType::Gz => "gz",
            CompressType::Bz2 => "bz2",
            CompressType::None => "none",
        }
    }
}

/// A repository kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    /// A directory on a named volume mounted in every database service.
    Posix,
    /// S3-compatible object storage.
    S3,
}

/// The repository. `type = "posix"`: `volume` and `path`. `type = "s3"`:
/// `bucket`, `endpoint`, `region`, `key`, `key_secret` (and optionally
/// `path`, `uri_style`, `verify_tls`, `ca`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    #[serde(rename = "type")]
    pub kind: Sp<RepoType>,
    /// posix: the directory in the containers (default `/var/lib/pgbackrest`);
    /// s3: the prefix in the bucket (default `/pgbackrest`).
    #[serde(default)]
    pub path: Option<Sp<String>>,
    /// posix: the named volume holding the repository (default
    /// `pgbackrest-repo`), mounted in every database service. A volume of
    /// the `local` driver lives on one node: on several nodes it must be
    /// shared storage (see `nfs`), else use S3.
    #[serde(default)]
    pub volume: Option<Sp<String>>,
    /// posix: an NFS export to back the volume on every node
    /// (`address`, `export`, optional `options`).
    #[serde(default)]
    pub nfs: Option<Sp<Nfs>>,
    /// s3: the bucket.
    #[serde(default)]
    pub bucket: Option<Sp<String>>,
    /// s3: the endpoint host (e.g. `s3.eu-west-1.amazonaws.com`), optionally with `:port`.
    #[serde(default)]
    pub endpoint: Option<Sp<String>>,
    /// s3: the region.
    #[serde(default)]
    pub region: Option<Sp<String>>,
    /// s3: the access key id, from a secret.
    #[serde(default)]
    pub key: Option<SecretRef>,
    /// s3: the secret access key, from a secret.
    #[serde(default)]
    pub key_secret: Option<SecretRef>,
    /// s3: `host` (virtual-hosted, default) or `path` style URIs.
    #[serde(default)]
    pub uri_style: Option<Sp<UriStyle>>,
    /// s3: verify the endpoint's TLS certificate (default on).
    #[serde(default)]
    pub verify_tls: Option<Sp<bool>>,
    /// s3: the CA certificate(s), PEM, that the endpoint's certificate must
    /// chain to, from a secret: for a server with a private CA (default: the
    /// image's system CAs). Not with `verify_tls = false`.
    #[serde(default)]
    pub ca: Option<SecretRef>,
}

/// S3 URI style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UriStyle {
    Host,
    Path,
}

/// An NFS export backing a posix repository's volume on every node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nfs {
    /// The NFS server's address.
    pub address: Sp<String>,
    /// The exported directory (e.g. `/export/pgbackrest`).
    pub export: Sp<String>,
    /// Mount options beyond `addr` (default `nfsvers=4,rw`).
    #[serde(default)]
    pub options: Option<Sp<String>>,
}

/// When base backups run, in UTC: `"<days> HH:MM"` where days is `daily` or
/// a comma list of `mon`..`sun` (e.g. `full = "sun 01:00"`,
/// `diff = "mon,tue,wed,thu,fri,sat 01:00"`). A differential backup due at
/// the same minute as a full one is skipped.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default = "default_full_schedule")]
    pub full: Sp<String>,
    /// `none` for no differential backups.
    #[serde(default = "default_diff_schedule")]
    pub diff: Sp<String>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self { full: default_full_schedule(), diff: default_diff_schedule() }
    }
}

fn default_full_schedule() -> Sp<String> {
    sp("sun 01:00".into())
}
fn default_diff_schedule() -> Sp<String> {
    sp("daily 01:00".into())
}
