//! haproxy.cfg as typed sections and directives, and the writer that turns
//! them into text. Only what hacompile emits is modelled; every directive
//! renders to exactly one line, so a model can be edited (the test harness
//! swaps swarm DNS names for loopback addresses) and rendered again.

use std::fmt::{self, Write as _};

/// A duration in milliseconds, written in the largest unit HAProxy accepts
/// that divides it (`30m`, `3s`, `250ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub u64);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
            if ms != 0 && ms % size == 0 {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Comment lines at the top of the file.
    pub header: Vec<String>,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    /// A comment line above the section saying what it is for.
    pub comment: Option<String>,
    pub directives: Vec<Directive>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionKind {
    Global,
    Defaults,
    Resolvers(String),
    Listen(String),
    Frontend(String),
    Backend(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tcp,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    Connect,
    Client,
    Server,
    Check,
    HttpRequest,
    /// How long a client waits for a server connection slot.
    Queue,
    /// In a `resolvers` section: time between two resolutions.
    Resolve,
    /// In a `resolvers` section: time between two retries.
    Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    Valid,
    Other,
    Refused,
    Nx,
    Timeout,
    Obsolete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    First,
    LeastConn,
}

/// Options a `server`, `server-template` or `default-server` line carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOptions {
    pub check: bool,
    pub backup: bool,
    pub inter: Option<Time>,
    pub fall: Option<u32>,
    pub rise: Option<u32>,
    /// `on-marked-down shutdown-sessions`: cut client sessions of a server
    /// that goes down, so nobody keeps writing to a node that left.
    pub shutdown_sessions_on_down: bool,
    /// `on-marked-up shutdown-backup-sessions`: when a regular server comes
    /// back, sessions on the backup move back to it.
    pub shutdown_backup_sessions_on_up: bool,
    /// `maxconn`: connections this proxy opens to the server at most; more
    /// clients wait in the queue (`timeout queue`).
    pub maxconn: Option<u32>,
    pub resolvers: Option<String>,
    /// `init-addr` methods, e.g. `["none"]` or `["last", "none"]`.
    pub init_addr: Vec<String>,
    pub resolve_prefer_ipv4: bool,
    /// `port <n>`: health checks go to this port (e.g. Patroni's REST API)
    /// instead of the traffic port.
    pub check_port: Option<u16>,
    /// `fastinter`: the check interval while a server changes state.
    pub fastinter: Option<Time>,
    /// `downinter`: the check interval while a server is down.
    pub downinter: Option<Time>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `log <target> format raw <facility>`
    Log {
        target: String,
        facility: String,
    },
    LogGlobal,
    MaxConn(u32),
    /// `hard-stop-after <time>`: a soft stop (SIGUSR1) ends by then at the latest.
    HardStopAfter(Time),
    Mode(Mode),
    Retries(u32),
    Timeout(TimeoutKind, Time),
    OptionTcpLog,
    OptionHttpLog,
    OptionDontLogNull,
    /// `option pgsql-check user <name>`: a PostgreSQL StartupMessage check.
    OptionPgsqlCheck {
        user: String,
    },
    /// `option httpchk <method> <uri>`: an HTTP check (e.g. of Patroni's
    /// REST API on the servers' `port`), also in TCP mode.
    OptionHttpChk {
        method: String,
        uri: String,
    },
    /// `http-check expect status <code>`
    HttpCheckExpectStatus(u16),
    /// `use_backend <backend> if { nbsrv(<backend>) gt 0 }`: this backend
    /// while it has a usable server.
    UseBackendIfUsable(String),
    DefaultBackend(String),
    DefaultServer(ServerOptions),
    Nameserver {
        name: String,
        address: String,
    },
    ResolveRetries(u32),
    Hold(HoldKind, Time),
    AcceptedPayloadSize(u32),
    /// `bind <address>:<port>`; an empty address listens on all addresses.
    Bind {
        address: String,
        port: u16,
    },
    Balance(Balance),
    ServerTemplate {
        prefix: String,
        count: u32,
        fqdn: String,
        port: u16,
        options: ServerOptions,
    },
    Server {
        name: String,
        address: String,
        port: u16,
        options: ServerOptions,
    },
    /// `acl <name> src <cidr> ...`
    AclSrc {
        name: String,
        networks: Vec<String>,
    },
    /// `acl <name> http_auth(<userlist>)`
    AclHttpAuth {
        name: String,
        userlist: String,
    },
    /// `http-request deny unless <acl>`
    HttpRequestDenyUnless {
        acl: String,
    },
    /// `tcp-request connection reject unless <acl>`: refused at connect.
    TcpRequestConnectionRejectUnless {
        acl: String,
    },
    /// `http-request auth realm <realm> unless <acl>`
    HttpRequestAuthUnless {
        realm: String,
        acl: String,
    },
    /// `http-request use-service prometheus-exporter if { path <path> }`:
    /// HAProxy's built-in exporter (USE_PROMEX) answers there.
    PrometheusExporterAt(String),
    StatsEnable,
    StatsUri(String),
    StatsRefresh(Time),
    StatsHideVersion,
    MonitorUri(String),
}

impl fmt::Display for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = Vec::new();
        if self.check {
            words.push("check".into());
        }
        if self.backup {
            words.push("backup".into());
        }
        if let Some(t) = self.inter {
            words.push(format!("inter {t}"));
        }
        if let Some(t) = self.fastinter {
            words.push(format!("fastinter {t}"));
        }
        if let Some(t) = self.downinter {
            words.push(format!("downinter {t}"));
        }
        if let Some(n) = self.fall {
            words.push(format!("fall {n}"));
        }
        if let Some(n) = self.rise {
            words.push(format!("rise {n}"));
        }
        if let Some(p) = self.check_port {
            words.push(format!("port {p}"));
        }
        if let Some(n) = self.maxconn {
            words.push(format!("maxconn {n}"));
        }
        if self.shutdown_sessions_on_down {
            words.push("on-marked-down shutdown-sessions".into());
        }
        if self.shutdown_backup_sessions_on_up {
            words.push("on-marked-up shutdown-backup-sessions".into());
        }
        if let Some(r) = &self.resolvers {
            words.push(format!("resolvers {r}"));
        }
        if !self.init_addr.is_empty() {
            words.push(format!("init-addr {}", self.init_addr.join(",")));
        }
        if self.resolve_prefer_ipv4 {
            words.push("resolve-prefer ipv4".into());
        }
        f.write_str(&words.join(" "))
    }
}

fn with_options(head: String, options: &ServerOptions) -> String {
    let opts = options.to_string();
    if opts.is_empty() { head } else { format!("{head} {opts}") }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Directive::*;
        match self {
            Log { target, facility } => write!(f, "log {target} format raw {facility}"),
            LogGlobal => f.write_str("log global"),
            MaxConn(n) => write!(f, "maxconn {n}"),
            HardStopAfter(t) => write!(f, "hard-stop-after {t}"),
            Mode(self::Mode::Tcp) => f.write_str("mode tcp"),
            Mode(self::Mode::Http) => f.write_str("mode http"),
            Retries(n) => write!(f, "retries {n}"),
            Timeout(kind, t) => {
                let kind = match kind {
                    TimeoutKind::Connect => "connect",
                    TimeoutKind::Client => "client",
                    TimeoutKind::Server => "server",
                    TimeoutKind::Check => "check",
                    TimeoutKind::HttpRequest => "http-request",
                    TimeoutKind::Queue => "queue",
                    TimeoutKind::Resolve => "resolve",
                    TimeoutKind::Retry => "retry",
                };
                write!(f, "timeout {kind} {t}")
            }
            OptionTcpLog => f.write_str("option tcplog"),
            OptionHttpLog => f.write_str("option httplog"),
            OptionDontLogNull => f.write_str("option dontlognull"),
            OptionPgsqlCheck { user } => write!(f, "option pgsql-check user {user}"),
            OptionHttpChk { method, uri } => write!(f, "option httpchk {method} {uri}"),
            HttpCheckExpectStatus(code) => write!(f, "http-check expect status {code}"),
            UseBackendIfUsable(b) => write!(f, "use_backend {b} if {{ nbsrv({b}) gt 0 }}"),
            DefaultBackend(b) => write!(f, "default_backend {b}"),
            DefaultServer(o) => f.write_str(&with_options("default-server".into(), o)),
            Nameserver { name, address } => write!(f, "nameserver {name} {address}"),
            ResolveRetries(n) => write!(f, "resolve_retries {n}"),
            Hold(kind, t) => {
                let kind = match kind {
                    HoldKind::Valid => "valid",
                    HoldKind::Other => "other",
                    HoldKind::Refused => "refused",
                    HoldKind::Nx => "nx",
                    HoldKind::Timeout => "timeout",
                    HoldKind::Obsolete => "obsolete",
                };
                write!(f, "hold {kind} {t}")
            }
            AcceptedPayloadSize(n) => write!(f, "accepted_payload_size {n}"),
            Bind { address, port } => write!(f, "bind {address}:{port}"),
            Balance(b) => f.write_str(match b {
                self::Balance::First => "balance first",
                self::Balance::LeastConn => "balance leastconn",
            }),
            ServerTemplate { prefix, count, fqdn, port, options } => {
                f.write_str(&with_options(format!("server-template {prefix} {count} {fqdn}:{port}"), options))
            }
            Server { name, address, port, options } => {
                f.write_str(&with_options(format!("server {name} {address}:{port}"), options))
            }
            AclSrc { name, networks } => write!(f, "acl {name} src {}", networks.join(" ")),
            AclHttpAuth { name, userlist } => write!(f, "acl {name} http_auth({userlist})"),
            HttpRequestDenyUnless { acl } => write!(f, "http-request deny unless {acl}"),
            TcpRequestConnectionRejectUnless { acl } => write!(f, "tcp-request connection reject unless {acl}"),
            HttpRequestAuthUnless { realm, acl } => {
                write!(f, "http-request auth realm {realm} unless {acl}")
            }
            PrometheusExporterAt(path) => {
                write!(f, "http-request use-service prometheus-exporter if {{ path {path} }}")
            }
            StatsEnable => f.write_str("stats enable"),
            StatsUri(uri) => write!(f, "stats uri {uri}"),
            StatsRefresh(t) => write!(f, "stats refresh {t}"),
            StatsHideVersion => f.write_str("stats hide-version"),
            MonitorUri(uri) => write!(f, "monitor-uri {uri}"),
        }
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SectionKind::Global => f.write_str("global"),
            SectionKind::Defaults => f.write_str("defaults"),
            SectionKind::Resolvers(n) => write!(f, "resolvers {n}"),
            SectionKind::Listen(n) => write!(f, "listen {n}"),
            SectionKind::Frontend(n) => write!(f, "frontend {n}"),
            SectionKind::Backend(n) => write!(f, "backend {n}"),
        }
    }
}

impl Config {
    /// The file's text. The same model always gives the same bytes.
    ///
    /// Every line goes through the one sanitizer: a comment quoting input (the
    /// spec's path) or a directive stays one line whatever it holds, so no
    /// input can add a directive. Validation keeps directive arguments to
    /// what HAProxy reads as plain words; this is the guarantee behind it.
    pub fn render(&self) -> String {
        use hacompile_boundary::text::line;
        let mut out = String::new();
        for text in &self.header {
            let _ = writeln!(out, "# {}", line(text));
        }
        for section in &self.sections {
            out.push('\n');
            if let Some(c) = &section.comment {
                let _ = writeln!(out, "# {}", line(c));
            }
            let _ = writeln!(out, "{}", line(&section.kind.to_string()));
            for d in &section.directives {
                let _ = writeln!(out, "    {}", line(&d.to_string()));
            }
        }
        out
    }

    /// The section with this kind, for callers that adjust a compiled config.
    pub fn section_mut(&mut self, kind: &SectionKind) -> Option<&mut Section> {
        self.sections.iter_mut().find(|s| &s.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_use_the_largest_unit() {
        assert_eq!(Time(1_800_000).to_string(), "30m");
        assert_eq!(Time(90_000).to_string(), "90s");
        assert_eq!(Time(3_000).to_string(), "3s");
        assert_eq!(Time(250).to_string(), "250ms");
        assert_eq!(Time(0).to_string(), "0ms");
        assert_eq!(Time(7_200_000).to_string(), "2h");
    }

    #[test]
    fn server_lines() {
        let o = ServerOptions {
            check: true,
            resolvers: Some("docker".into()),
            init_addr: vec!["none".into()],
            resolve_prefer_ipv4: true,
            ..Default::default()
        };
        let d = Directive::ServerTemplate {
            prefix: "pg-primary-".into(),
            count: 1,
            fqdn: "tasks.pg-primary".into(),
            port: 5432,
            options: o,
        };
        assert_eq!(
            d.to_string(),
            "server-template pg-primary- 1 tasks.pg-primary:5432 check resolvers docker init-addr none resolve-prefer ipv4"
        );
    }

    #[test]
    fn no_input_adds_a_line() {
        let config = Config {
            header: vec!["from a\u{2028}b\nglobal".into()],
            sections: vec![Section {
                kind: SectionKind::Listen("stats".into()),
                comment: Some("x\ny".into()),
                directives: vec![Directive::StatsUri("/s\n    stats admin if TRUE".into())],
            }],
        };
        let text = config.render();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.contains("stats uri /s\\u{000a}    stats admin if TRUE"), "{text}");
    }
}
