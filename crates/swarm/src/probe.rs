//! Is a port free on this machine? Asked by binding it, the only answer
//! that also sees processes docker knows nothing about.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Free,
    InUse,
    /// Could not tell (a port below 1024 without the right to bind it).
    Unknown(String),
}

pub trait PortProbe {
    fn probe(&self, port: u16, protocol: &str) -> Probe;
}

/// Binds 0.0.0.0:PORT for a moment (what a host-mode port needs).
pub struct LocalBind;

impl PortProbe for LocalBind {
    fn probe(&self, port: u16, protocol: &str) -> Probe {
        let result = match protocol {
            "udp" => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).map(drop),
            "tcp" => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map(drop),
            other => return Probe::Unknown(format!("cannot test a {other} port")),
        };
        match result {
            Ok(()) => Probe::Free,
            Err(e) if e.kind() == ErrorKind::AddrInUse => Probe::InUse,
            Err(e) => Probe::Unknown(e.to_string()),
        }
    }
}

/// Used when the daemon is not on this machine: nothing is tested.
pub struct NoProbe;

impl PortProbe for NoProbe {
    fn probe(&self, _port: u16, _protocol: &str) -> Probe {
        Probe::Unknown("the docker daemon is not on this machine".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_in_use_and_a_released_one_free() {
        let held = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("binds");
        let port = held.local_addr().expect("addr").port();
        assert_eq!(LocalBind.probe(port, "tcp"), Probe::InUse);
        drop(held);
        assert_eq!(LocalBind.probe(port, "tcp"), Probe::Free);
    }
}
