use super::{Check, Rule};
use crate::finding::{Family, Hit, Severity};
use crate::source::Source;

pub const RULE: Rule = Rule {
    code: "HC412",
    name: "patroni-role-blind-check",
    family: Family::HighAvailability,
    severity: Severity::Error,
    summary: "An HAProxy backend of Patroni members checks them without asking Patroni for their role",
    doc: r#"
## What it does
Reads haproxy.cfg files that route to Patroni: a server checked on
Patroni's REST API (`port 8008`), a server named or addressed `patroni`, or
an `option httpchk` on one of Patroni's role endpoints anywhere in the file.
In such a file, reports a `backend` or `listen` section that balances over
two or more Patroni members (PostgreSQL's port 5432, a check on port 8008,
or a `patroni` name) when it checks them with TCP only (no `option httpchk`,
`option tcp-check` without a `tcp-check send`, or servers without `check`)
or with `option pgsql-check`, in the section or inherited from `defaults`.
Also reports a write listener (a name that does not say read, replica,
standby or any) whose `httpchk`, or the HTTP request its `tcp-check send`
writes, asks `/health`, `/liveness` or `/readiness`: every running member
answers those with 200.
Not reported: a section of one member (a route to a node chosen by name,
such as an admin tool's per-node port: it has no roles to mix), and a bare
`option httpchk` or one on `/`, which Patroni answers like `/primary`. A
file with no sign of Patroni is not judged, so a pinned primary/replica
configuration with `pgsql-check` is left to HC407.

## Why it matters
With Patroni, any member can be the primary: the role moves at failover.
A TCP connect or `pgsql-check` succeeds on every running member, replicas
included, so a write listener balances over the primary and read-only
replicas ("cannot execute INSERT in a read-only transaction"), and after a
failover it keeps sending clients to the old primary as long as it accepts
connections. Only Patroni's REST API knows the role.

## Example
```
listen postgres_write
    bind :5000
    option pgsql-check user haproxy
    server pg-1 pg-1:5432 check port 8008
    server pg-2 pg-2:5432 check port 8008
```

## Fix
Ask Patroni: `option httpchk OPTIONS /primary` with `http-check expect
status 200` and `check port 8008` on every member for writes, and
`OPTIONS /replica` (or `/replica?lag=16MB`, `/read-only`) for reads.
"#,
    check: Check::Haproxy(check),
};

/// Patroni endpoints that answer 200 by role.
const ROLE_PATHS: &[&str] = &[
    "/primary",
    "/leader",
    "/master",
    "/read-write",
    "/standby-leader",
    "/standby_leader",
    "/replica",
    "/read-only",
    "/read-only-sync",
    "/read-only-quorum",
    "/sync",
    "/synchronous",
    "/quorum",
    "/async",
    "/asynchronous",
];

/// Patroni endpoints that answer 200 on every running member. Not `/`:
/// Patroni answers it as `/primary` (`path = '/primary' if self.path == '/'`
/// in its REST API), and a bare `option httpchk` asks it, as Patroni's own
/// example haproxy.cfg does.
const ANY_MEMBER_PATHS: &[&str] = &["/health", "/liveness", "/readiness", "/patroni"];

const SECTIONS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "resolvers",
    "userlist",
    "peers",
    "mailers",
    "program",
    "cache",
    "ring",
    "http-errors",
];

/// How a proxy checks its servers, as far as the role goes.
#[derive(Clone, Default)]
enum Method {
    /// No check option: a TCP connect (when servers have `check`).
    #[default]
    Tcp,
    PgsqlCheck(std::ops::Range<usize>),
    /// `option httpchk`: the path asked, and where it is written.
    Http(String, std::ops::Range<usize>),
    /// A scripted check that sends no HTTP request, or another kind
    /// (`mysql-check`, `external-check`...): not judged.
    Other,
}

#[derive(Default)]
struct Proxy {
    header: std::ops::Range<usize>,
    name: String,
    defaults: bool,
    method: Option<Method>,
    /// `http-check send ... uri X` overrides the `option httpchk` path.
    send_uri: Option<(String, std::ops::Range<usize>)>,
    /// `tcp-check send` lines; the path of the first HTTP request one sends.
    scripted: bool,
    script_path: Option<(String, std::ops::Range<usize>)>,
    /// `option tcp-check`: without rules of its own, the section runs the
    /// `tcp-check` rules of `defaults` (HAProxy 2.2 and later).
    tcp_check: bool,
    /// `default-server ... port 8008`.
    default_port_8008: bool,
    /// Active (not `backup`) servers that are Patroni members, counting a
    /// `server-template`'s servers.
    members: usize,
    checked: bool,
}

impl Proxy {
    fn method(&self, defaults: Option<&Proxy>) -> Method {
        // A `tcp-check` script that sends an HTTP request asks that path,
        // like `option httpchk` (`tcp-check send GET\ /health...`).
        let script = match defaults {
            Some(d) if !self.scripted && d.scripted && (self.method.is_none() || self.tcp_check) => Some(d),
            _ => self.scripted.then_some(self),
        };
        if let Some(script) = script {
            return match &script.script_path {
                Some((path, span)) => Method::Http(path.clone(), span.clone()),
                None => Method::Other,
            };
        }
        let method = self.method.clone().or_else(|| defaults.and_then(|d| d.method.clone())).unwrap_or_default();
        let send = self.send_uri.clone().or_else(|| defaults.and_then(|d| d.send_uri.clone()));
        match (method, send) {
            (Method::Http(..), Some((uri, span))) => Method::Http(uri, span),
            (m, _) => m,
        }
    }
}

/// The path of an `option httpchk [<method>] [<uri>] [<version>]`.
fn httpchk_uri(args: &[&str]) -> String {
    match args {
        [] => "/".to_owned(),
        [uri] => (*uri).to_owned(),
        [_, uri, ..] => (*uri).to_owned(),
    }
}

/// The path of a URI, lowercase, without query or a trailing slash.
fn path_of(uri: &str) -> String {
    let path = uri.split(['?', '#']).next().unwrap_or(uri).to_ascii_lowercase();
    if path.len() > 1 { path.trim_end_matches('/').to_owned() } else { path }
}

fn is_role_path(uri: &str) -> bool {
    ROLE_PATHS.contains(&path_of(uri).as_str())
}

/// A listener named for reads (`postgres_read`, `pg-replicas`, `ro`) or
/// for any member (`postgres_any`).
fn read_listener(name: &str) -> bool {
    name.to_ascii_lowercase().split(['_', '-', '.']).any(|part| {
        part == "ro"
            || part == "any"
            || ["read", "replica", "standby", "slave", "secondary", "reader", "follower"]
                .iter()
                .any(|w| part.starts_with(w))
    })
}

/// `port 8008` among a server line's words.
fn checks_rest_api(words: &[&str]) -> bool {
    words.windows(2).any(|w| w[0] == "port" && w[1] == "8008")
}

/// PostgreSQL's port in a server address (`host:5432`, `tasks.pg-1:5432`).
fn postgres_address(address: &str) -> bool {
    address.rsplit_once(':').is_some_and(|(_, port)| port == "5432")
}

struct Line<'t> {
    span: std::ops::Range<usize>,
    words: Vec<&'t str>,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let code = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = code.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let indent = code.len() - code.trim_start().len();
        out.push(Line { span: start + indent..start + code.trim_end().len(), words });
    }
    out
}

/// Does the file route to Patroni at all?
fn routes_to_patroni(lines: &[Line<'_>]) -> bool {
    lines.iter().any(|l| {
        let w = &l.words;
        match w[0] {
            "server" | "server-template" | "default-server" => {
                checks_rest_api(w) || w[1..w.len().min(4)].iter().any(|x| x.to_ascii_lowercase().contains("patroni"))
            }
            "option" => w.get(1) == Some(&"httpchk") && is_role_path(&httpchk_uri(&w[2..])),
            "http-check" => w.get(1) == Some(&"send") && uri_arg(w).is_some_and(|u| is_role_path(&u)),
            _ => false,
        }
    })
}

/// The path of the HTTP request a `tcp-check send` sends
/// (`GET\ /health\ HTTP/1.0\r\n`, `"OPTIONS /primary HTTP/1.1\r\n"`).
fn http_request_path(args: &[&str]) -> Option<String> {
    let data = args.join(" ").replace("\\ ", " ").replace('"', "");
    let mut words = data.split_whitespace();
    let method = words.next()?;
    let path = words.next()?;
    (["GET", "HEAD", "OPTIONS", "POST"].contains(&method) && path.starts_with('/'))
        .then(|| path.trim_end_matches("\\r\\n").to_owned())
}

/// The `uri X` of an `http-check send` line.
fn uri_arg(words: &[&str]) -> Option<String> {
    words.windows(2).find(|w| w[0] == "uri").map(|w| w[1].to_owned())
}

fn check(src: &Source, out: &mut Vec<Hit>) {
    let lines = lines(&src.text);
    if !routes_to_patroni(&lines) {
        return;
    }
    let mut defaults: Option<Proxy> = None;
    let mut current: Option<Proxy> = None;
    let flush = |p: Option<Proxy>, defaults: &mut Option<Proxy>, out: &mut Vec<Hit>| {
        let Some(p) = p else { return };
        if p.defaults {
            *defaults = Some(p);
            return;
        }
        judge(&p, defaults.as_ref(), out);
    };
    for line in &lines {
        let w = &line.words;
        if SECTIONS.contains(&w[0]) {
            flush(current.take(), &mut defaults, out);
            if matches!(w[0], "backend" | "listen" | "defaults") {
                current = Some(Proxy {
                    header: line.span.clone(),
                    name: w.get(1).unwrap_or(&w[0]).to_string(),
                    defaults: w[0] == "defaults",
                    ..Default::default()
                });
            }
            continue;
        }
        let Some(p) = current.as_mut() else { continue };
        match (w[0], w.get(1).copied()) {
            ("option", Some("httpchk")) => p.method = Some(Method::Http(httpchk_uri(&w[2..]), line.span.clone())),
            ("option", Some("pgsql-check")) => p.method = Some(Method::PgsqlCheck(line.span.clone())),
            // Without a `tcp-check send`, a TCP connect.
            ("option", Some("tcp-check")) => {
                p.method = Some(Method::Tcp);
                p.tcp_check = true;
            }
            ("option", Some("mysql-check" | "redis-check" | "ldap-check" | "smtpchk" | "ssl-hello-chk")) => {
                p.method = Some(Method::Other)
            }
            ("option", Some("external-check")) => p.method = Some(Method::Other),
            ("tcp-check", Some(send @ ("send" | "send-binary" | "send-lf" | "send-binary-lf"))) => {
                p.scripted = true;
                if p.script_path.is_none()
                    && !send.starts_with("send-binary")
                    && let Some(path) = http_request_path(&w[2..])
                {
                    p.script_path = Some((path, line.span.clone()));
                }
            }
            ("http-check", Some("send")) => {
                if let Some(uri) = uri_arg(w) {
                    p.send_uri = Some((uri, line.span.clone()));
                }
            }
            ("default-server", _) => p.default_port_8008 |= checks_rest_api(w),
            ("server" | "server-template", _) => {
                if w.contains(&"backup") || w.contains(&"disabled") {
                    continue;
                }
                let template = w[0] == "server-template";
                let (name, address) = if template {
                    (w.get(1).copied().unwrap_or(""), w.get(3).copied().unwrap_or(""))
                } else {
                    (w.get(1).copied().unwrap_or(""), w.get(2).copied().unwrap_or(""))
                };
                let named = format!("{name} {address}").to_ascii_lowercase().contains("patroni");
                if !(postgres_address(address) || checks_rest_api(w) || named) {
                    continue;
                }
                let count = if template {
                    let n = w.get(2).copied().unwrap_or("1");
                    match n.split_once('-') {
                        Some((a, b)) => b.parse::<usize>().unwrap_or(1).saturating_sub(a.parse().unwrap_or(1)) + 1,
                        None => n.parse().unwrap_or(1),
                    }
                } else {
                    1
                };
                p.members += count;
                p.checked |= w.contains(&"check");
            }
            _ => {}
        }
    }
    flush(current.take(), &mut defaults, out);
}

fn judge(p: &Proxy, defaults: Option<&Proxy>, out: &mut Vec<Hit>) {
    // One member is a route to a node chosen by name (an admin tool's
    // per-node port), not a choice among roles: only two or more can mix.
    if p.members < 2 {
        return;
    }
    let name = &p.name;
    let help = "check with `option httpchk OPTIONS /primary` (writes) or `OPTIONS /replica` (reads), `http-check expect status 200`, and `check port 8008` on every member";
    match p.method(defaults) {
        Method::Other => {}
        Method::Tcp if !p.checked => out.push(
            Hit::new(p.header.clone(), format!("`{name}` routes to Patroni members without checking them: every member takes connections, whatever its role"))
                .help(help),
        ),
        Method::Tcp => out.push(
            Hit::new(p.header.clone(), format!("`{name}` checks Patroni members with a TCP connect, which every running member passes, whatever its role"))
                .help(help),
        ),
        Method::PgsqlCheck(span) => {
            let at = if p.method.is_some() { span } else { p.header.clone() };
            out.push(
                Hit::new(at, format!("`{name}` checks Patroni members with `pgsql-check`, which every running member passes, whatever its role"))
                    .help(help),
            )
        }
        Method::Http(uri, span) => {
            if !read_listener(name) && ANY_MEMBER_PATHS.contains(&path_of(&uri).as_str()) {
                let at = if p.method.is_some() || p.send_uri.is_some() { span } else { p.header.clone() };
                out.push(
                    Hit::new(at, format!("`{name}` checks {} Patroni members with `{uri}`, which every running member answers with 200: writes reach replicas", p.members))
                        .help(help),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        check(&Source::new("haproxy.cfg", text), &mut out);
        out.into_iter().map(|h| h.message).collect()
    }

    /// The pinned topology's compiled haproxy.cfg (pgsql-check or TCP checks
    /// on a primary service and replica services) shows no sign of Patroni:
    /// not judged.
    #[test]
    fn pinned_configurations_are_not_judged() {
        for text in [
            include_str!("../../../../tests/snapshots/examples__ha-postgres__haproxy.cfg.snap"),
            include_str!("../../../../tests/snapshots/examples__three-replicas__haproxy.cfg.snap"),
            include_str!("../../../../tests/snapshots/examples__bitnami__haproxy.cfg.snap"),
        ] {
            assert!(text.contains("tasks.pg-primary:5432 check"), "a pinned configuration checks PostgreSQL's port");
            assert_eq!(hits(text), Vec::<String>::new());
        }
    }

    /// The Patroni topology's layout: a write listener on /primary, reads on
    /// /replica with a lag bound, the primary as a fallback backend.
    #[test]
    fn the_compiled_patroni_layout_passes() {
        let text = "defaults\n    mode tcp\n    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions\n\
listen postgres_write\n    bind :5000\n    option httpchk OPTIONS /primary\n    http-check expect status 200\n\
    server-template pg-1- 1 tasks.pg-1:5432 check port 8008 resolvers docker init-addr none\n\
    server-template pg-2- 1 tasks.pg-2:5432 check port 8008 resolvers docker init-addr none\n\
frontend postgres_read\n    bind :5001\n    use_backend postgres_read_replicas if { nbsrv(postgres_read_replicas) gt 0 }\n    default_backend postgres_read_primary\n\
backend postgres_read_replicas\n    option httpchk OPTIONS /replica?lag=16777216\n    http-check expect status 200\n\
    server-template pg-1- 1 tasks.pg-1:5432 check port 8008\n    server-template pg-2- 1 tasks.pg-2:5432 check port 8008\n\
backend postgres_read_primary\n    option httpchk OPTIONS /primary\n\
    server-template pg-1- 1 tasks.pg-1:5432 check port 8008\n    server-template pg-2- 1 tasks.pg-2:5432 check port 8008\n";
        assert_eq!(hits(text), Vec::<String>::new());
    }

    /// Patroni told by server names alone; a check inherited from defaults
    /// is judged; a single-member write listener on /health is not (one
    /// server cannot mix roles), two are.
    #[test]
    fn signs_and_inheritance() {
        let tcp = "listen db\n    server patroni-1 10.0.0.1:5432 check\n    server patroni-2 10.0.0.2:5432 check\n";
        assert_eq!(hits(tcp).len(), 1, "{:?}", hits(tcp));
        let inherited = "defaults\n    option pgsql-check user x\nlisten db\n    server a a:5432 check port 8008\n    server b b:5432 check port 8008\n";
        assert_eq!(hits(inherited).len(), 1);
        let one = "listen w\n    option httpchk GET /health\n    server a a:5432 check port 8008\n";
        assert!(hits(one).is_empty());
        let two = "listen w\n    option httpchk GET /health\n    server-template a 1-2 a:5432 check port 8008\n";
        assert_eq!(hits(two).len(), 1);
        let unchecked =
            "listen w\n    option httpchk OPTIONS /primary\nlisten v\n    server a a:5432\n    server b b:5432\n";
        assert!(hits(unchecked)[0].contains("without checking"));
    }

    /// Patroni answers `/` as it answers `/primary` (its REST API maps the
    /// one to the other), and a bare `option httpchk` asks `OPTIONS /`:
    /// Patroni's own example haproxy.cfg does this, and it routes by role.
    #[test]
    fn the_root_path_is_the_primary_check() {
        for check in ["option httpchk", "option httpchk /", "option httpchk GET /", "option httpchk OPTIONS / HTTP/1.1"]
        {
            let text = format!(
                "listen postgres\n    bind :5000\n    {check}\n    http-check expect status 200\n\
    server pg1 pg1:5432 check port 8008\n    server pg2 pg2:5432 check port 8008\n"
            );
            assert_eq!(hits(&text), Vec::<String>::new(), "{check}");
        }
    }

    /// A section of one member routes to a node chosen by its name (an admin
    /// tool's per-node port, a debugging listener), whatever its check: it
    /// has no roles to mix. Two members are judged.
    /// A listener named for any member (`postgres_any`, seen in a public
    /// configuration commented "any node, read-only with primary
    /// fallback") means to take every running member: not a write listener.
    #[test]
    fn a_listener_named_any_is_not_a_write_listener() {
        let any = "listen postgres_any\n    bind :5002\n    option httpchk GET /health\n\
    server pg1 pg1:5432 check port 8008\n    server pg2 pg2:5432 check port 8008\n";
        assert_eq!(hits(any), Vec::<String>::new());
        let company = any.replace("postgres_any", "company_db");
        assert_eq!(hits(&company).len(), 1, "a word that merely contains `any` is not the word");
    }

    /// `option tcp-check` without a script is a TCP connect; a script that
    /// sends an HTTP request is judged by its path like `option httpchk`;
    /// one that sends something else is not judged. (The shapes of public
    /// configurations.)
    #[test]
    fn tcp_check_scripts_are_judged_by_the_request_they_send() {
        let servers = "  server patroni1 patroni1:5432 check\n  server patroni2 patroni2:5432 check\n";
        let judged = |body: &str| hits(&format!("backend patroni_primary\n{body}{servers}"));
        assert!(judged("  option tcp-check\n")[0].contains("TCP connect"));
        assert!(judged("  option tcp-check\n  tcp-check connect port 8008\n")[0].contains("TCP connect"));
        let health = judged(
            "  option tcp-check\n  tcp-check connect port 8008\n  tcp-check send GET\\ /health\\ HTTP/1.0\\r\\n\\r\\n\n  tcp-check expect string 200\n",
        );
        assert!(health[0].contains("`/health`"), "{health:?}");
        let quoted = judged("  option tcp-check\n  tcp-check send \"GET /liveness HTTP/1.0\\r\\n\\r\\n\"\n");
        assert!(quoted[0].contains("`/liveness`"), "{quoted:?}");
        for fine in [
            "  option tcp-check\n  tcp-check connect port 8008\n  tcp-check send GET\\ /primary\\ HTTP/1.0\\r\\n\\r\\n\n  tcp-check expect string 200\n",
            "  option tcp-check\n  tcp-check send-binary 0000000804d2162f\n",
            "  option tcp-check\n  tcp-check send PING\\r\\n\n",
        ] {
            assert_eq!(judged(fine), Vec::<String>::new(), "{fine}");
        }
        // The script of `defaults`, run by a section that says `option
        // tcp-check` and has no rules of its own.
        let inherited = "defaults\n  option tcp-check\n  tcp-check connect port 8008\n  tcp-check send GET\\ /primary\\ HTTP/1.0\\r\\n\\r\\n\n  tcp-check expect string 200\n";
        assert_eq!(
            hits(&format!("{inherited}backend patroni_primary\n  option tcp-check\n{servers}")),
            Vec::<String>::new()
        );
        let read = hits(&format!(
            "backend patroni_replicas\n  option tcp-check\n  tcp-check send GET\\ /health\\ HTTP/1.0\\r\\n\n{servers}"
        ));
        assert_eq!(read, Vec::<String>::new(), "a read listener may take any member");
    }

    #[test]
    fn one_member_is_a_route_to_a_node() {
        let per_node = "listen postgres1\n    bind :5001\n    mode tcp\n    server server patroni1:5001 check port 5001\n\
listen postgres2\n    bind :5002\n    option pgsql-check user x\n    server pg2 pg2:5432 check port 8008\n\
backend patroni1\n    mode tcp\n    server server patroni1:8001 check\n\
listen unchecked\n    server patroni-3 patroni3:5432\n";
        assert_eq!(hits(per_node), Vec::<String>::new());
        let two =
            "listen postgres\n    server patroni-1 patroni1:5432 check\n    server patroni-2 patroni2:5432 check\n";
        assert_eq!(hits(two).len(), 1);
    }
}
