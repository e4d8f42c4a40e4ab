//! The network rule: a load test sends traffic only to loopback addresses, or to addresses
//! inside network namespaces the harness created itself (the `compare` command). Any other
//! target is refused before a single packet is sent, unless its operator says, with
//! `--target-is-mine`, that the server at `--url` is theirs (a staging server): then that
//! one address, and no other, may be targeted.

use std::net::{IpAddr, SocketAddr};

/// Addresses that may be targeted.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    /// Extra addresses that live in namespaces this harness created.
    pub namespace_addrs: Vec<IpAddr>,
    /// The one non-local server the operator acknowledged as theirs (`--target-is-mine`).
    pub acknowledged: Option<IpAddr>,
}

impl Allowed {
    pub fn check_ip(&self, ip: IpAddr) -> anyhow::Result<()> {
        if ip.is_loopback() || self.namespace_addrs.contains(&ip) || self.acknowledged == Some(ip) {
            Ok(())
        } else {
            anyhow::bail!(
                "refusing to target {ip}: the load test only sends to loopback addresses, to \
                 addresses in network namespaces it created itself, or to the --url of a server \
                 you run, acknowledged with --target-is-mine"
            )
        }
    }

    pub fn check_addr(&self, a: SocketAddr) -> anyhow::Result<()> {
        self.check_ip(a.ip())
    }

    /// Check every ICE candidate address of an SDP (`a=candidate:` lines): the client would
    /// send media there.
    pub fn check_sdp(&self, sdp: &str) -> anyhow::Result<()> {
        for line in sdp.lines().filter(|l| l.starts_with("a=candidate:")) {
            let ip = line
                .split_whitespace()
                .nth(4)
                .and_then(|s| s.parse::<IpAddr>().ok());
            match ip {
                Some(ip) => self.check_ip(ip)?,
                None => anyhow::bail!("refusing an SDP with an unparseable candidate: {line}"),
            }
        }
        Ok(())
    }

    /// Host part of an `http://host:port` URL, resolved only if it is a literal or
    /// `localhost`.
    pub fn check_url(&self, url: &str) -> anyhow::Result<SocketAddr> {
        let addr = Self::url_addr(url)?;
        self.check_addr(addr)?;
        Ok(addr)
    }

    /// The address of an `http://IP:port` URL, unchecked.
    pub fn url_addr(url: &str) -> anyhow::Result<SocketAddr> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .unwrap_or(url);
        let hostport = rest.split('/').next().unwrap_or(rest);
        let hostport = hostport.replace("localhost", "127.0.0.1");
        let addr: SocketAddr = hostport.parse().map_err(|_| {
            anyhow::anyhow!("the target must be an IP address and port (got {hostport})")
        })?;
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_own_namespaces() {
        let a = Allowed::default();
        assert!(a.check_url("http://127.0.0.1:7880").is_ok());
        assert!(a.check_url("http://localhost:7880/").is_ok());
        assert!(a.check_url("http://[::1]:7880").is_ok());
        assert!(a.check_url("http://10.0.0.1:7880").is_err());
        assert!(a.check_url("http://192.168.1.10:80").is_err());
        assert!(a.check_url("http://example.com:80").is_err());
        let ns = Allowed {
            namespace_addrs: vec!["10.99.0.1".parse().unwrap()],
            ..Allowed::default()
        };
        assert!(ns.check_url("http://10.99.0.1:8088").is_ok());
        assert!(ns.check_url("http://10.99.0.2:8088").is_err());
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host\r\n";
        assert!(a.check_sdp(sdp).is_ok());
        let bad = "a=candidate:1 1 udp 2130706431 8.8.8.8 7882 typ host\r\n";
        assert!(a.check_sdp(bad).is_err());
        assert!(a.check_sdp("a=candidate:garbage").is_err());
    }

    #[test]
    fn an_acknowledged_server_is_that_one_address_only() {
        let mine = Allowed {
            acknowledged: Some("192.0.2.10".parse().unwrap()),
            ..Allowed::default()
        };
        assert!(mine.check_url("http://192.0.2.10:7880").is_ok());
        assert!(mine.check_url("http://192.0.2.11:7880").is_err());
        let sdp = "a=candidate:1 1 udp 2130706431 192.0.2.10 7882 typ host\r\n";
        assert!(mine.check_sdp(sdp).is_ok());
        let other = "a=candidate:1 1 udp 2130706431 192.0.2.99 7882 typ host\r\n";
        assert!(mine.check_sdp(other).is_err());
    }
}
