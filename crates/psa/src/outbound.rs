//! The outbound policy (`core::outbound`) applied to real requests.
//!
//! - [`Outbound::check_url`] checks a URL before it is stored or a connector is built from it:
//!   its scheme, and every address its host resolves to, with its port.
//! - [`Outbound::client`] gives the HTTP client of connectors and identity providers a resolver
//!   that checks every address a name resolves to when a connection is opened, and connects
//!   only to those checked addresses (a name that resolved to a public address when the URL
//!   was saved and to 10.0.0.1 later, DNS rebinding, is refused then); and a redirect policy
//!   that follows only redirects to the same scheme, host and port (custom headers such as
//!   Autotask's secret would follow a redirect to any host).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use psabridge_core::outbound::{OutboundPolicy, Refusal};
use thiserror::Error;

/// Why a URL may not be called.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OutboundError {
    #[error("'{0}' is not a URL")]
    NotUrl(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("the host {0} cannot be resolved")]
    Unresolved(String),
}

/// The operator's outbound policy, shared by every client that calls PSAs or providers.
#[derive(Debug, Clone)]
pub struct Outbound {
    policy: Arc<OutboundPolicy>,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound::new(OutboundPolicy::unrestricted())
    }
}

impl Outbound {
    pub fn new(policy: OutboundPolicy) -> Outbound {
        Outbound {
            policy: Arc::new(policy),
        }
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// The policy, shared (for clients that check request URLs themselves).
    pub fn shared_policy(&self) -> Arc<OutboundPolicy> {
        self.policy.clone()
    }

    /// A new client builder with [`Outbound::client`] applied.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        self.client(reqwest::Client::builder())
    }

    /// Check a URL as a connection setting gives it (a bare host means `https://host`):
    /// the scheme, and each address of its host on its port.
    pub async fn check_url(&self, url: &str) -> Result<(), OutboundError> {
        let text = url.trim();
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("https://{text}")
        };
        let parsed =
            reqwest::Url::parse(&with_scheme).map_err(|_| OutboundError::NotUrl(text.into()))?;
        self.policy.check_scheme(parsed.scheme())?;
        let port = parsed.port_or_known_default();
        let addrs: Vec<IpAddr> = match parsed.host() {
            None => return Err(OutboundError::NotUrl(text.into())),
            Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(url::Host::Domain(name)) => {
                if !self.policy.enforced {
                    return Ok(());
                }
                self.policy.check_name(name)?;
                tokio::net::lookup_host((name, port.unwrap_or(443)))
                    .await
                    .map_err(|_| OutboundError::Unresolved(name.to_string()))?
                    .map(|a| a.ip())
                    .collect()
            }
        };
        if addrs.is_empty() {
            return Err(OutboundError::Unresolved(text.into()));
        }
        for ip in addrs {
            self.policy.check_addr(ip, port)?;
        }
        Ok(())
    }

    /// A client builder whose name resolution and redirects follow the policy.
    pub fn client(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let policy = self.policy.clone();
        builder
            .dns_resolver(Arc::new(CheckedResolver {
                policy: self.policy.clone(),
            }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                let Some(first) = attempt.previous().first() else {
                    return attempt.follow();
                };
                let to = attempt.url();
                let same_origin = to.scheme() == first.scheme()
                    && to.host_str() == first.host_str()
                    && to.port_or_known_default() == first.port_or_known_default();
                if attempt.previous().len() > 5 {
                    attempt.error("too many redirects")
                } else if !same_origin {
                    attempt.error("a redirect to another host is not followed")
                } else if let Err(r) = policy.check_scheme(to.scheme()) {
                    attempt.error(r)
                } else {
                    attempt.follow()
                }
            }))
    }
}

/// Resolves a name and refuses it when any of its addresses is refused, so the connection
/// is made only to addresses that were checked.
struct CheckedResolver {
    policy: Arc<OutboundPolicy>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            policy
                .check_name(&host)
                .map_err(|r| Box::new(HostRefused(host.clone(), r)))?;
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for a in &addrs {
                policy
                    .check_addr(a.ip(), None)
                    .map_err(|r| Box::new(HostRefused(host.clone(), r)))?;
            }
            let iter: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(iter)
        })
    }
}

#[derive(Debug, Error)]
#[error("{0}: {1}")]
struct HostRefused(String, Refusal);

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Outbound {
        Outbound::new(OutboundPolicy {
            allow: vec!["127.0.0.1:9".parse().unwrap()],
            ..OutboundPolicy::strict()
        })
    }

    #[tokio::test]
    async fn urls_are_checked_by_scheme_and_every_address() {
        let o = strict();
        assert!(matches!(
            o.check_url("http://psa.example.com").await,
            Err(OutboundError::Refused(Refusal::Scheme(_)))
        ));
        assert!(matches!(
            o.check_url("https://10.1.2.3/api").await,
            Err(OutboundError::Refused(Refusal::Address {
                kind: "private",
                ..
            }))
        ));
        assert!(
            o.check_url("https://[::ffff:169.254.169.254]/")
                .await
                .is_err()
        );
        assert!(o.check_url("https://localhost:9/").await.is_ok() || cfg!(not(unix)));
        assert!(o.check_url("https://localhost:10/").await.is_err());
        assert!(o.check_url("https://127.0.0.1:9").await.is_ok());
        assert!(o.check_url("127.0.0.1:9").await.is_ok());
        assert!(o.check_url("https://93.184.216.34").await.is_ok());
    }

    #[tokio::test]
    async fn the_client_refuses_names_of_refused_addresses_before_connecting() {
        let o = Outbound::new(OutboundPolicy::strict());
        let client = o.client(reqwest::Client::builder()).build().unwrap();
        let err = client.get("https://localhost:1/").send().await.unwrap_err();
        let text = crate::http::root_cause(&err);
        assert!(text.contains("loopback address"), "{text}");
    }
}
