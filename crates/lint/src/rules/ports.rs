//! A service's published ports, short and long syntax, read once for the
//! rules that judge them (HC309, HC508, HC509, HC512, HC517).

use super::interpolation::{split_colons, with_defaults_or};
use crate::context::StackCx;
use crate::yaml::NodeId;

/// One entry of `ports:`.
pub struct Port {
    pub node: NodeId,
    /// The short syntax as written; `None` for the long syntax.
    pub short: Option<String>,
    /// The host address, a variable judged by its default (`${IP:-0.0.0.0}`
    /// is `0.0.0.0`; one without a default is some address, `VAR`). `None`
    /// when none is written.
    pub host_ip: Option<String>,
    /// The host address as written (`${BIND}`, not what it stands for),
    /// for messages.
    pub written_ip: Option<String>,
    /// A host port is written (`8080:80`, `IP:8080:80`, `published:`); `80`
    /// and `IP::80` take an ephemeral one.
    pub host_port: bool,
    /// The container port (the first of a range).
    pub target: Option<u32>,
}

impl Port {
    /// Open on every interface of the host where compose honours the
    /// address: none written, or the unspecified one (`0.0.0.0`, `::`).
    /// (Under swarm every published port is; HC309 says so.)
    pub fn every_interface(&self) -> bool {
        self.host_ip
            .as_deref()
            .is_none_or(|ip| ip.is_empty() || ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_unspecified()))
    }

    /// Bound to the host's loopback (`127.0.0.0/8`, `::1`, `localhost`).
    pub fn loopback(&self) -> bool {
        self.host_ip.as_deref().is_some_and(|ip| {
            ip.eq_ignore_ascii_case("localhost") || ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
        })
    }
}

/// The entries of a service's `ports:`.
pub fn ports(cx: &StackCx<'_>, service: NodeId) -> Vec<Port> {
    let Some(seq) = cx.at(service, &["ports"]).and_then(|p| cx.doc.seq(p)) else { return Vec::new() };
    seq.iter()
        .map(|&node| match cx.doc.scalar(node) {
            Some(short) => parse_short(node, short),
            None => Port {
                node,
                short: None,
                host_ip: cx.str_at(node, &["host_ip"]).and_then(|ip| with_defaults_or(ip, "VAR")).map(|ip| bare(&ip)),
                written_ip: cx.str_at(node, &["host_ip"]).map(str::to_owned),
                host_port: cx.at(node, &["published"]).is_some(),
                target: cx.str_at(node, &["target"]).and_then(container_port),
            },
        })
        .collect()
}

/// `[IP:][HOST:]CONTAINER[/PROTO]`, as docker reads it (go-connections'
/// `splitParts`): the last part is the container's, the one before it the
/// host's, everything before those the address (`::1:5434:5432` is `::1`),
/// brackets removed (`[::]`). A variable is judged by its default (one
/// without stands for a port or an address, never for a colon).
fn parse_short(node: NodeId, short: &str) -> Port {
    let resolved = with_defaults_or(short, "VAR").map(|r| r.into_owned()).unwrap_or_default();
    let (host_ip, rest) = match resolved.strip_prefix('[').and_then(|r| r.split_once("]:")) {
        Some((ip, rest)) => (Some(ip.to_owned()), rest.to_owned()),
        None => {
            let parts = split_colons(&resolved);
            let n = parts.len();
            if n >= 3 {
                (Some(bare(&parts[..n - 2].join(":"))), parts[n - 2..].join(":"))
            } else {
                (None, resolved.clone())
            }
        }
    };
    // The same split of the text as written.
    let written_ip = host_ip.as_ref().map(|resolved| match short.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest).to_owned(),
        None => {
            let parts = split_colons(short);
            if parts.len() >= 3 { parts[..parts.len() - 2].join(":") } else { resolved.clone() }
        }
    });
    let parts = split_colons(&rest);
    Port {
        node,
        short: Some(short.to_owned()),
        host_ip,
        written_ip,
        host_port: parts.len() >= 2 && !parts[0].is_empty(),
        target: parts.last().and_then(|c| container_port(c)),
    }
}

/// `5432`, `5432/tcp`, `5432-5434`: the first port.
fn container_port(c: &str) -> Option<u32> {
    c.split('/').next()?.split('-').next()?.trim().parse().ok()
}

/// An address without its brackets (`[::1]` is `::1`).
fn bare(ip: &str) -> String {
    ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip).to_owned()
}

#[cfg(test)]
mod tests {
    use crate::context::StackCx;
    use crate::source::Source;

    /// (host_ip, host_port, target, every interface, loopback) of a port.
    type Read = (Option<String>, bool, Option<u32>, bool, bool);

    fn read(ports: &str) -> Vec<Read> {
        let src = Source::new("t.yml", format!("services:\n  s:\n    image: x:1\n    ports:\n{ports}"));
        let doc = crate::yaml::Doc::parse(&src).expect("valid YAML");
        let cx = StackCx::new(&src, &doc, doc.root.expect("a root"), None, None);
        let svc = cx.services()[0].node;
        super::ports(&cx, svc)
            .into_iter()
            .map(|p| (p.host_ip.clone(), p.host_port, p.target, p.every_interface(), p.loopback()))
            .collect()
    }

    #[test]
    fn short_and_long_syntax() {
        let s = |ip: Option<&str>| ip.map(str::to_owned);
        assert_eq!(
            read(concat!(
                "      - \"5432:5432\"\n",
                "      - \"127.0.0.1:5433:5432\"\n",
                "      - \"0.0.0.0::8500\"\n",
                "      - \"[::]:5434:5432/tcp\"\n",
                "      - \"[::1]:5435:5432\"\n",
                "      - \"5432\"\n",
                "      - \"${IP:-127.0.0.2}:${P:-6000}:6000-6002\"\n",
                "      - \"${IP}:7000:7000\"\n",
                "      - {target: 5432, published: 5436, host_ip: 127.0.0.1}\n",
                "      - {target: 5432, published: 5437}\n",
                "      - {target: 5432, host_ip: \"::\"}\n",
                "      - \"[::0]:5438:5432\"\n",
                "      - \"::1:5439:5432\"\n",
                "      - \"0:0:0:0:0:0:0:0:5440:5432\"\n",
            )),
            [
                (None, true, Some(5432), true, false),
                (s(Some("127.0.0.1")), true, Some(5432), false, true),
                (s(Some("0.0.0.0")), false, Some(8500), true, false),
                (s(Some("::")), true, Some(5432), true, false),
                (s(Some("::1")), true, Some(5432), false, true),
                (None, false, Some(5432), true, false),
                (s(Some("127.0.0.2")), true, Some(6000), false, true),
                (s(Some("VAR")), true, Some(7000), false, false),
                (s(Some("127.0.0.1")), true, Some(5432), false, true),
                (None, true, Some(5432), true, false),
                (s(Some("::")), false, Some(5432), true, false),
                (s(Some("::0")), true, Some(5432), true, false),
                (s(Some("::1")), true, Some(5432), false, true),
                (s(Some("0:0:0:0:0:0:0:0")), true, Some(5432), true, false),
            ]
        );
    }
}
