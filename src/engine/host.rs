//! Which address reaches a daemon: the one the user named (`--host`,
//! `DOCKER_HOST`), else the socket of the daemon found alive on the root,
//! from its own command line or daemon.json (moby `cmd/dockerd/daemon.go`
//! `loadListeners`, `daemon/config` `hosts`; docker/cli `opts/hosts.go`).
//!
//! Discovery never connects: with systemd socket activation a connection
//! to `docker.sock` starts the very daemon whose absence we rely on.

use crate::store::daemon::Listeners;
use std::path::{Path, PathBuf};

/// An Engine API address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket, by its path as seen from here.
    Unix(PathBuf),
    /// `host:port` over plain TCP.
    Tcp(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// dockerd's default TCP port without TLS (docker/cli `opts/hosts.go`).
const DEFAULT_TCP_PORT: u16 = 2375;

impl Host {
    /// Parses `unix:///path`, `tcp://host[:port]` (or `http://`) or a plain
    /// absolute socket path, as `--host` and `DOCKER_HOST` take them.
    pub fn parse(s: &str) -> Result<Host, String> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Ok(Host::Unix(PathBuf::from("/var/run/docker.sock")));
            }
            return Ok(Host::Unix(PathBuf::from(p)));
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(s)));
        }
        let addr = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| {
                format!(
                    "{s:?}: not an Engine API address dockgc can use \
                     (unix:///path or tcp://host:port; TLS and ssh are not supported)"
                )
            })?;
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() {
            return Err(format!("{s:?}: no host after tcp://"));
        }
        if addr.contains('/') {
            return Err(format!("{s:?}: a path after host:port is not supported"));
        }
        let has_port = match addr.rsplit_once(':') {
            // `[::1]` alone has colons but no port.
            Some((h, p)) => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && h != "[",
            None => false,
        };
        Ok(Host::Tcp(if has_port && !addr.ends_with(']') {
            addr.to_string()
        } else {
            format!("{addr}:{DEFAULT_TCP_PORT}")
        }))
    }

    /// What bollard connects to.
    pub fn url(&self) -> String {
        match self {
            Host::Unix(p) => format!("unix://{}", p.display()),
            Host::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

/// The address to use for a daemon that listens on `l`: its first unix
/// socket, else the socket systemd hands it (`fd://`), else its first TCP
/// listener (a wildcard address reached on loopback).
pub fn of_listeners(l: &Listeners) -> Result<Host, String> {
    let seen = |p: &Path| match p.strip_prefix("/") {
        Ok(rel) if !l.seen_from.as_os_str().is_empty() => l.seen_from.join(rel),
        _ => p.to_path_buf(),
    };
    if l.hosts.is_empty() {
        return Ok(Host::Unix(seen(&l.default_socket)));
    }
    let mut tcp = None;
    for h in &l.hosts {
        if h.starts_with("fd://") {
            // docker.socket's ListenStream; Debian and upstream units both
            // use /run/docker.sock (= /var/run/docker.sock).
            return Ok(Host::Unix(seen(Path::new("/run/docker.sock"))));
        }
        match Host::parse(h) {
            Ok(Host::Unix(p)) => return Ok(Host::Unix(seen(&p))),
            Ok(Host::Tcp(a)) if tcp.is_none() => tcp = Some(Host::Tcp(loopback(&a))),
            _ => {}
        }
    }
    tcp.ok_or_else(|| {
        format!(
            "the daemon listens on {} and none of it is a unix socket or plain TCP; name one with --host",
            l.hosts.join(", ")
        )
    })
}

/// `0.0.0.0:p` and `[::]:p` listen everywhere; connect on loopback.
fn loopback(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some(("0.0.0.0" | "", p)) => format!("127.0.0.1:{p}"),
        Some(("[::]", p)) => format!("[::1]:{p}"),
        _ => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(hosts: &[&str]) -> Listeners {
        Listeners {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            default_socket: PathBuf::from("/var/run/docker.sock"),
            seen_from: PathBuf::new(),
        }
    }

    #[test]
    fn parses_what_docker_host_takes() {
        assert_eq!(
            Host::parse("unix:///run/x.sock").unwrap(),
            Host::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Host::parse("/run/x.sock").unwrap(),
            Host::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1").unwrap(),
            Host::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            Host::parse("tcp://10.0.0.1:2376/").unwrap(),
            Host::Tcp("10.0.0.1:2376".into())
        );
        assert_eq!(
            Host::parse("tcp://[::1]").unwrap(),
            Host::Tcp("[::1]:2375".into())
        );
        assert!(Host::parse("ssh://me@host").unwrap_err().contains("ssh"));
        assert!(Host::parse("tcp://").is_err());
    }

    #[test]
    fn the_daemons_own_socket_wins() {
        assert_eq!(
            of_listeners(&listeners(&[])).unwrap(),
            Host::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            of_listeners(&listeners(&["tcp://0.0.0.0:2375", "unix:///tmp/d.sock"])).unwrap(),
            Host::Unix("/tmp/d.sock".into())
        );
        assert_eq!(
            of_listeners(&listeners(&["fd://"])).unwrap(),
            Host::Unix("/run/docker.sock".into())
        );
        assert_eq!(
            of_listeners(&listeners(&["tcp://0.0.0.0:2375"])).unwrap(),
            Host::Tcp("127.0.0.1:2375".into())
        );
        let mut l = listeners(&["unix:///tmp/d.sock"]);
        l.seen_from = PathBuf::from("/proc/42/root");
        assert_eq!(
            of_listeners(&l).unwrap(),
            Host::Unix("/proc/42/root/tmp/d.sock".into())
        );
    }
}
