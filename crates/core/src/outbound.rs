//! May PSA Bridge call this address? The outbound policy for PSA and identity-provider URLs.
//!
//! A connection's URL is chosen by a partner, but the request goes out from the operator's
//! network with the connection's secrets. So by default only `https` to public addresses is
//! called: loopback, link-local, private (RFC 1918, ULA), shared (CGNAT), unspecified and
//! the IPv4-mapped forms of these are refused, and so are this service's own listen ports,
//! unless the operator lists the address (or network, with or without a port) in
//! `[outbound] allow`; plain `http` only with `[outbound] allow_http`. This module only
//! decides; resolving names and pinning the checked address is done where the requests are
//! made (`psa::outbound`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address or a network (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Does the network hold `ip`? An IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl From<IpAddr> for Network {
    /// The network of one address.
    fn from(ip: IpAddr) -> Network {
        let addr = canonical(ip);
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Network { addr, prefix }
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Network, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(
            addr.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| format!("'{s}' is not an address or network like 10.0.0.0/8"))?,
        );
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}': the prefix must be 0 to {max}"))?,
        };
        Ok(Network { addr, prefix })
    }
}

/// One entry of `[outbound] allow`: a network, and the one port it is allowed on (any
/// port when none is named). `127.0.0.1:8801`, `[::1]:8801`, `10.0.0.0/8`, `192.168.1.5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub network: Network,
    pub port: Option<u16>,
}

impl FromStr for Allowed {
    type Err = String;
    fn from_str(s: &str) -> Result<Allowed, String> {
        let s = s.trim();
        // `[v6]:port`, `v4:port`, or a bare address / network.
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            match rest.split_once("]:") {
                Some((h, p)) => (h, Some(p)),
                None => (rest.trim_end_matches(']'), None),
            }
        } else if s.matches(':').count() == 1 {
            let (h, p) = s.split_once(':').unwrap_or((s, ""));
            (h, Some(p))
        } else {
            (s, None)
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("'{s}': the port must be 1 to 65535"))
            })
            .transpose()?;
        Ok(Allowed {
            network: host.parse()?,
            port,
        })
    }
}

/// Why an address or URL may not be called. Its text is shown to the partner (it names
/// only what they gave, and the setting that would allow it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `http` (or another scheme) where only `https` is allowed.
    Scheme(String),
    /// A loopback, private, link-local… address not in the allow-list.
    Address { kind: &'static str, ip: IpAddr },
    /// This service's own listen port on a local address.
    OwnPort { ip: IpAddr, port: u16 },
    /// A public address or a name to resolve, when only this machine may be called.
    NotLocal(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Scheme(s) if s == "http" => write!(
                f,
                "plain http is not allowed; use https (or the operator sets [outbound] allow_http = true)"
            ),
            Refusal::Scheme(s) => write!(f, "scheme '{s}' is not allowed; use https"),
            Refusal::Address { kind, ip } => write!(
                f,
                "{kind} address {ip} is not allowed; add it to [outbound] allow"
            ),
            Refusal::NotLocal(what) => write!(
                f,
                "{what} is not on this machine; this node calls only local addresses"
            ),
            Refusal::OwnPort { ip, port } => write!(
                f,
                "{ip} port {port} is this service's own; it does not call itself (add exactly {ip}:{port} to [outbound] allow to override)"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// The operator's outbound settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Call nothing but what the rules below allow (`false`: call anything, for embedding
    /// and tests; the binary always builds a checked policy).
    pub enforced: bool,
    /// Plain `http` is allowed (demo, tests, a PSA on a private network).
    pub allow_http: bool,
    /// Non-public addresses that may be called anyway.
    pub allow: Vec<Allowed>,
    /// The ports this service listens on: refused on local addresses.
    pub own_ports: Vec<u16>,
    /// Public addresses are refused too, and names other than `localhost` are refused before
    /// they are resolved: nothing leaves the machine (`psabridge demo --outbound-local-only`,
    /// for tests that let a fuzzer choose PSA and identity-provider URLs).
    pub local_only: bool,
}

impl OutboundPolicy {
    /// The default of the binary: https to public addresses only.
    pub fn strict() -> OutboundPolicy {
        OutboundPolicy {
            enforced: true,
            ..OutboundPolicy::default()
        }
    }

    /// Anything may be called (libraries embedded in tests).
    pub fn unrestricted() -> OutboundPolicy {
        OutboundPolicy::default()
    }

    /// May a URL of this scheme be called?
    pub fn check_scheme(&self, scheme: &str) -> Result<(), Refusal> {
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "https" => Ok(()),
            "http" if self.allow_http || !self.enforced => Ok(()),
            _ => Err(Refusal::Scheme(scheme)),
        }
    }

    /// May the name `host` be resolved at all? Only `localhost` when the policy is local only,
    /// so not even a DNS query leaves the machine.
    pub fn check_name(&self, host: &str) -> Result<(), Refusal> {
        if self.enforced && self.local_only && !host.eq_ignore_ascii_case("localhost") {
            return Err(Refusal::NotLocal(host.to_string()));
        }
        Ok(())
    }

    /// May `ip` be called on `port`? `None` asks whether it may be called on some port
    /// (a name being resolved, before its port is known).
    pub fn check_addr(&self, ip: IpAddr, port: Option<u16>) -> Result<(), Refusal> {
        if !self.enforced {
            return Ok(());
        }
        let ip = canonical(ip);
        let Some(kind) = special(ip) else {
            if self.local_only {
                return Err(Refusal::NotLocal(ip.to_string()));
            }
            return Ok(());
        };
        let covering = self.allow.iter().filter(|a| a.network.contains(ip));
        let own = port.filter(|p| self.own_ports.contains(p));
        let allowed = match (port, own) {
            // Our own port only by an entry that names exactly it.
            (_, Some(p)) => covering.clone().any(|a| a.port == Some(p)),
            (Some(p), None) => covering.clone().any(|a| a.port.is_none_or(|ap| ap == p)),
            (None, None) => covering.clone().next().is_some(),
        };
        match (allowed, own) {
            (true, _) => Ok(()),
            (false, Some(port)) if covering.clone().next().is_some() => {
                Err(Refusal::OwnPort { ip, port })
            }
            (false, _) => Err(Refusal::Address { kind, ip }),
        }
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// What kind of non-public address `ip` is, if it is one.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (CGNAT)")
    } else if o[0] == 0 {
        Some("unspecified")
    } else if ip.is_broadcast()
        || ip.is_multicast()
        || o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
    {
        Some("reserved")
    } else {
        None
    }
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("private (unique local)")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("reserved")
    } else if s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0 {
        // IPv4-compatible (deprecated) `::a.b.c.d`: never a PSA.
        Some("reserved")
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64 `64:ff9b::a.b.c.d`: judged by the IPv4 address it reaches.
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        special_v4(v4)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(allow: &[&str]) -> OutboundPolicy {
        OutboundPolicy {
            allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
            own_ports: vec![8080],
            ..OutboundPolicy::strict()
        }
    }

    #[test]
    fn a_local_only_policy_calls_nothing_off_the_machine() {
        let p = OutboundPolicy {
            local_only: true,
            ..policy(&["127.0.0.1"])
        };
        assert!(p.check_addr(ip("127.0.0.1"), Some(9000)).is_ok());
        assert!(matches!(
            p.check_addr(ip("93.184.216.34"), Some(443)),
            Err(Refusal::NotLocal(_))
        ));
        assert!(p.check_name("localhost").is_ok());
        assert!(matches!(
            p.check_name("webservices.autotask.net"),
            Err(Refusal::NotLocal(_))
        ));
        // Not local only: names resolve, public addresses are called.
        assert!(policy(&[]).check_name("webservices.autotask.net").is_ok());
        assert!(
            policy(&[])
                .check_addr(ip("93.184.216.34"), Some(443))
                .is_ok()
        );
    }

    #[test]
    fn non_public_addresses_are_refused_by_default() {
        let p = policy(&[]);
        for (a, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.9.9.9", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("fd00::1", "private (unique local)"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.254", "shared (CGNAT)"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
        ] {
            assert_eq!(
                p.check_addr(ip(a), Some(443)),
                Err(Refusal::Address {
                    kind,
                    ip: canonical(ip(a))
                }),
                "{a}"
            );
            assert!(p.check_addr(ip(a), None).is_err(), "{a}");
        }
        for a in ["93.184.216.34", "100.128.0.1", "2606:4700::1111", "8.8.8.8"] {
            assert_eq!(p.check_addr(ip(a), Some(443)), Ok(()), "{a}");
        }
    }

    #[test]
    fn the_allow_list_opens_networks_and_single_ports() {
        let p = policy(&["127.0.0.1:8801", "10.0.0.0/8", "[::1]:9000"]);
        assert_eq!(p.check_addr(ip("127.0.0.1"), Some(8801)), Ok(()));
        assert!(p.check_addr(ip("127.0.0.1"), Some(8802)).is_err());
        assert_eq!(p.check_addr(ip("127.0.0.1"), None), Ok(()));
        assert_eq!(p.check_addr(ip("10.200.1.1"), Some(443)), Ok(()));
        assert_eq!(p.check_addr(ip("::ffff:10.200.1.1"), Some(443)), Ok(()));
        assert!(p.check_addr(ip("11.0.0.1"), Some(443)).is_ok());
        assert!(p.check_addr(ip("192.168.0.1"), Some(443)).is_err());
        assert_eq!(p.check_addr(ip("::1"), Some(9000)), Ok(()));
        assert!(p.check_addr(ip("::1"), Some(9001)).is_err());
    }

    #[test]
    fn our_own_port_needs_an_entry_that_names_it() {
        let p = policy(&["10.0.0.0/8"]);
        assert_eq!(
            p.check_addr(ip("10.0.0.5"), Some(8080)),
            Err(Refusal::OwnPort {
                ip: ip("10.0.0.5"),
                port: 8080
            })
        );
        let p = policy(&["10.0.0.5:8080"]);
        assert_eq!(p.check_addr(ip("10.0.0.5"), Some(8080)), Ok(()));
    }

    #[test]
    fn http_only_when_allowed() {
        let mut p = policy(&[]);
        assert!(p.check_scheme("https").is_ok());
        assert!(p.check_scheme("HTTPS").is_ok());
        assert_eq!(p.check_scheme("http"), Err(Refusal::Scheme("http".into())));
        assert!(p.check_scheme("ftp").is_err());
        p.allow_http = true;
        assert!(p.check_scheme("http").is_ok());
        assert!(p.check_scheme("file").is_err());
    }

    #[test]
    fn an_unenforced_policy_allows_everything_but_odd_schemes() {
        let p = OutboundPolicy::unrestricted();
        assert!(p.check_addr(ip("127.0.0.1"), Some(8080)).is_ok());
        assert!(p.check_scheme("http").is_ok());
        assert!(p.check_scheme("gopher").is_err());
    }

    #[test]
    fn entries_parse_or_say_why_not() {
        for good in [
            "127.0.0.1:8801",
            "10.0.0.0/8",
            "192.168.1.5",
            "::1",
            "[::1]:8801",
            "fd00::/8",
            "[fd00::]/8",
        ] {
            assert!(good.parse::<Allowed>().is_ok(), "{good}");
        }
        for bad in ["psa.local", "10.0.0.0/33", "127.0.0.1:0", "127.0.0.1:x", ""] {
            assert!(bad.parse::<Allowed>().is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_name_the_setting_that_allows() {
        let r = policy(&[])
            .check_addr(ip("10.1.2.3"), Some(443))
            .unwrap_err();
        assert_eq!(
            r.to_string(),
            "private address 10.1.2.3 is not allowed; add it to [outbound] allow"
        );
    }
}
