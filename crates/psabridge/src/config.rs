//! Configuration of `psabridge serve` and `psabridge migrate`: a TOML file and environment
//! variables (`PSABRIDGE_…`, nested keys with `__`), the environment winning.
//!
//! Every setting is checked at start-up, and a bad one stops the program with a message that
//! names it: a service that starts half-configured fails later, at the worst moment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use psabridge_core::catalog::Catalog;
use psabridge_store::Synchronous;
use psabridge_store::seal::KeyRing;
use serde::Deserialize;

/// The settings as written by the operator.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Address of the HTTP API. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// `sqlite://path/file.db` or `postgres://user@host/db`. Required.
    pub database_url: Option<String>,
    /// SQLite only: `full` (default; an acknowledged event survives power loss) or `normal`
    /// (survives a crash of the process; faster).
    pub sqlite_synchronous: Option<String>,
    /// Database connections per node. Default 8.
    pub database_connections: Option<u32>,
    /// The key(s) that seal PSA secrets: base64 of 32 bytes, or `id:base64,…` for rotation.
    pub secret_key: Option<String>,
    /// A file holding `secret_key` (preferred to the environment).
    pub secret_key_file: Option<PathBuf>,
    /// The URL at which PSAs reach this service, for ticket webhooks. Without it, closed
    /// tickets are learned by polling.
    pub public_url: Option<String>,
    /// The vendor's event catalog (TOML). Default: the built-in catalog.
    pub catalog_file: Option<PathBuf>,
    #[serde(default)]
    pub engine: RawEngine,
    /// The SMTP server of the email channel and of invitations; without it, email cannot
    /// be switched on and invitations are not sent (`psabridge invite` prints their link).
    pub smtp: Option<RawSmtp>,
    /// Reverse proxies (addresses or networks, `10.0.0.0/8`) whose `X-Forwarded-For` names
    /// the client, for login throttling, sessions and the audit log. Default: none (the
    /// peer is the client). Behind a proxy, list it: otherwise every client shares its address.
    pub trusted_proxies: Option<Vec<String>>,
    /// What PSAs and identity providers may be called (see [`RawOutbound`]).
    #[serde(default)]
    pub outbound: RawOutbound,
    #[serde(default)]
    pub metrics: RawMetrics,
}

/// `[outbound]`: the addresses a partner's PSA or identity-provider URL may reach. By
/// default only https to public addresses; loopback, link-local, private, shared (CGNAT) and
/// unspecified addresses, and this service's own listen port, are refused unless listed.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawOutbound {
    /// Addresses or networks that may be called anyway, with a port or not:
    /// `["127.0.0.1:8801", "10.0.0.0/8"]`.
    pub allow: Option<Vec<String>>,
    /// Plain http may be called (tests, a PSA on a private network). Default false.
    pub allow_http: Option<bool>,
}

impl RawOutbound {
    /// The checked policy; `own_port` is the port this service listens on.
    pub fn check(self, own_port: u16) -> Result<psabridge_core::outbound::OutboundPolicy> {
        let allow = self
            .allow
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.parse()
                    .map_err(|e| anyhow!("outbound.allow: entry {}: {e}", i + 1))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(psabridge_core::outbound::OutboundPolicy {
            allow_http: self.allow_http.unwrap_or(false),
            allow,
            own_ports: vec![own_port],
            ..psabridge_core::outbound::OutboundPolicy::strict()
        })
    }
}

/// `[metrics]`: where the Prometheus exposition is served, apart from the API.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Address of the metrics listener (`GET /metrics`), or `off`. Default `127.0.0.1:9464`
    /// (skipped with a warning when that address is taken).
    pub listen: Option<String>,
}

/// `[smtp]`: where email goes out.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: Option<String>,
    /// Default: 25 without TLS, 587 with STARTTLS, 465 with TLS.
    pub port: Option<u16>,
    /// `none`, `starttls` (default) or `tls`.
    pub tls: Option<String>,
    pub username: Option<String>,
    /// A secret: prefer `PSABRIDGE_SMTP__PASSWORD` to the file.
    pub password: Option<psabridge_core::secret::Secret>,
    /// The sender, `alerts@msp.example` or `PSA Bridge <alerts@msp.example>`.
    pub from: Option<String>,
    /// How long one SMTP command may take. Default 30.
    pub timeout_secs: Option<u64>,
}

impl RawSmtp {
    /// Check every setting of `[smtp]`, naming a bad one.
    pub fn check(self) -> Result<psabridge_engine::mail::SmtpConfig> {
        use psabridge_engine::mail::{SmtpConfig, SmtpConfigError, SmtpTls};
        let host = self
            .host
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| anyhow!("smtp.host: required (the SMTP server's name)"))?;
        let tls_text = self.tls.unwrap_or_else(|| "starttls".into());
        let tls = SmtpTls::parse(&tls_text)
            .ok_or_else(|| anyhow!("smtp.tls: '{tls_text}' is not one of none, starttls, tls"))?;
        let port = match self.port {
            Some(0) => bail!("smtp.port: must be from 1 to 65535"),
            Some(p) => p,
            None => match tls {
                SmtpTls::None => 25,
                SmtpTls::StartTls => 587,
                SmtpTls::Tls => 465,
            },
        };
        let from = self
            .from
            .ok_or_else(|| anyhow!("smtp.from: required (the sender address)"))?;
        let timeout = match self.timeout_secs {
            Some(0) => bail!("smtp.timeout_secs: must be at least 1"),
            Some(t) => Duration::from_secs(t),
            None => Duration::from_secs(30),
        };
        let config = SmtpConfig {
            host,
            port,
            tls,
            username: self.username,
            password: self.password,
            from,
            timeout,
        };
        match config.check() {
            Ok(_) => Ok(config),
            Err(SmtpConfigError::From(f)) => {
                bail!("smtp.from: '{f}' is not an email address")
            }
            Err(SmtpConfigError::Host(h)) => bail!("smtp.host: {h}"),
            Err(SmtpConfigError::Credentials) => {
                bail!("smtp.username and smtp.password: give both or neither")
            }
        }
    }
}

/// An SMTP server given as a URL (for `demo --smtp-url`): `smtp://host:port` (no TLS),
/// `smtp+starttls://…` or `smtps://…` (TLS), with `user:password@` if it needs a login.
pub fn smtp_from_url(url: &str, from: &str) -> Result<psabridge_engine::mail::SmtpConfig> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| anyhow!("--smtp-url: '{url}' is not a URL ({e})"))?;
    let tls = match parsed.scheme() {
        "smtp" => "none",
        "smtp+starttls" => "starttls",
        "smtps" => "tls",
        other => bail!("--smtp-url: scheme '{other}' is not smtp, smtp+starttls or smtps"),
    };
    let raw = RawSmtp {
        host: parsed.host_str().map(str::to_string),
        port: parsed.port(),
        tls: Some(tls.into()),
        username: (!parsed.username().is_empty()).then(|| parsed.username().to_string()),
        password: parsed.password().map(psabridge_core::secret::Secret::new),
        from: Some(from.to_string()),
        timeout_secs: None,
    };
    raw.check().map_err(|e| anyhow!("--smtp-url: {e}"))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    pub concurrency: Option<usize>,
    pub per_connection_concurrency: Option<usize>,
    pub max_attempts: Option<u32>,
    pub sweep_interval_secs: Option<u64>,
    pub trust_without_push_secs: Option<u64>,
    pub replay_window_hours: Option<u64>,
    pub node_name: Option<String>,
    pub drain_timeout_secs: Option<u64>,
}

/// Checked settings.
pub struct Settings {
    pub listen: SocketAddr,
    pub store: psabridge_store::StoreOptions,
    pub keys: KeyRing,
    pub public_url: Option<String>,
    pub catalog: Catalog,
    pub engine: psabridge_engine::EngineConfig,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `[metrics] listen` as written (`None`: the default address, if free).
    pub metrics_listen: Option<String>,
}

/// The catalog shipped with the binary.
pub const DEFAULT_CATALOG: &str = include_str!("../catalog/default.toml");

/// Read the file (if given) and the environment.
pub fn load(file: Option<&Path>) -> Result<RawSettings> {
    let mut fig = Figment::new();
    if let Some(f) = file {
        if !f.exists() {
            bail!("configuration file {} does not exist", f.display());
        }
        fig = fig.merge(Toml::file(f));
    }
    fig = fig.merge(Env::prefixed("PSABRIDGE_").split("__").ignore(&[
        "test_pg_url",
        "test_threads",
        "test_require_browser",
        "log",
        "log_format",
        "config",
        "demo_database_url",
    ]));
    fig.extract().map_err(|e| anyhow!("configuration: {e}"))
}

/// Parse the catalog text, naming its source in errors.
pub fn catalog(path: Option<&Path>) -> Result<Catalog> {
    match path {
        None => Catalog::parse(DEFAULT_CATALOG).map_err(|e| anyhow!("built-in catalog: {e}")),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("catalog_file: cannot read {}", p.display()))?;
            Catalog::parse(&text).map_err(|e| anyhow!("catalog_file {}: {e}", p.display()))
        }
    }
}

/// Read a key file, refusing one that others can read.
pub fn read_key_file(path: &Path) -> Result<KeyRing> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("secret_key_file: cannot read {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "secret_key_file {} is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    KeyRing::parse(text.trim()).map_err(|e| anyhow!("secret_key_file {}: {e}", path.display()))
}

impl RawSettings {
    /// Check every setting. `need_keys` is false for `migrate`, which opens no secret.
    pub fn check(self, need_keys: bool) -> Result<Settings> {
        let listen_text = self.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            anyhow!("listen: '{listen_text}' is not an address like 127.0.0.1:8080")
        })?;
        let metrics_listen = self.metrics.listen.map(|l| l.trim().to_string());
        if let Some(l) = &metrics_listen
            && !l.eq_ignore_ascii_case("off")
            && l.parse::<SocketAddr>().is_err()
        {
            bail!("metrics.listen: '{l}' is not an address like 127.0.0.1:9464 (or off)");
        }
        let url = self.database_url.ok_or_else(|| {
            anyhow!("database_url: required (sqlite://path/file.db or postgres://user@host/db)")
        })?;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            bail!(
                "database_url: must start with sqlite: or postgres:// (got '{}')",
                psabridge_store::redact_url(&url)
            );
        }
        let mut store = psabridge_store::StoreOptions::new(url);
        if let Some(s) = self.sqlite_synchronous {
            store.synchronous = s
                .parse::<Synchronous>()
                .map_err(|e| anyhow!("sqlite_synchronous: {e}"))?;
        }
        if let Some(n) = self.database_connections {
            if n == 0 {
                bail!("database_connections: must be at least 1");
            }
            store.max_connections = n;
        }
        let keys = match (self.secret_key, self.secret_key_file) {
            (Some(_), Some(_)) => bail!("secret_key and secret_key_file: give one, not both"),
            (Some(k), None) => KeyRing::parse(&k).map_err(|e| anyhow!("secret_key: {e}"))?,
            (None, Some(f)) => read_key_file(&f)?,
            (None, None) if need_keys => bail!(
                "secret_key_file (or PSABRIDGE_SECRET_KEY): required to seal PSA credentials; `psabridge keygen` makes a key"
            ),
            (None, None) => KeyRing::parse(&KeyRing::generate_key()).map_err(|e| anyhow!(e))?,
        };
        if let Some(u) = &self.public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            bail!("public_url: must be an http(s) URL (got '{u}')");
        }
        let catalog = catalog(self.catalog_file.as_deref())?;
        let mut engine = psabridge_engine::EngineConfig::default();
        if let Some(c) = self.engine.concurrency {
            if c == 0 {
                bail!("engine.concurrency: must be at least 1");
            }
            engine.concurrency = c;
        }
        if let Some(c) = self.engine.per_connection_concurrency {
            if c == 0 {
                bail!("engine.per_connection_concurrency: must be at least 1");
            }
            engine.per_connection_concurrency = Some(c);
        }
        if let Some(m) = self.engine.max_attempts {
            if m == 0 {
                bail!("engine.max_attempts: must be at least 1");
            }
            engine.retry.max_attempts = m;
        }
        if let Some(s) = self.engine.sweep_interval_secs {
            if s == 0 {
                bail!("engine.sweep_interval_secs: must be at least 1");
            }
            engine.sweep_interval = Duration::from_secs(s);
            engine.sweep_age = Duration::from_secs(s);
        }
        if let Some(t) = self.engine.trust_without_push_secs {
            engine.trust_without_webhook = Duration::from_secs(t);
        }
        if let Some(h) = self.engine.replay_window_hours {
            if h == 0 {
                bail!("engine.replay_window_hours: must be at least 1");
            }
            engine.replay_window = Duration::from_secs(h * 3600);
        }
        if let Some(n) = self.engine.node_name {
            engine.node_name = n;
        }
        if let Some(t) = self.engine.drain_timeout_secs {
            engine.drain_timeout = Duration::from_secs(t);
        }
        engine.smtp = self.smtp.map(RawSmtp::check).transpose()?;
        engine.outbound = self.outbound.check(listen.port())?;
        let trusted_proxies = self
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let t = t.trim();
                t.parse::<ipnet::IpNet>()
                    .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow!(
                            "trusted_proxies: entry {} is not an address or network like 10.0.0.0/8",
                            i + 1
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Settings {
            listen,
            store,
            keys,
            public_url: self.public_url.map(|u| u.trim_end_matches('/').to_string()),
            catalog,
            engine,
            trusted_proxies,
            metrics_listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(db: Option<&str>) -> RawSettings {
        RawSettings {
            database_url: db.map(Into::into),
            secret_key: Some(KeyRing::generate_key()),
            ..Default::default()
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let err = |r: RawSettings| {
            r.check(true)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(raw(None)).starts_with("database_url:"));
        assert!(err(raw(Some("mysql://x"))).starts_with("database_url:"));
        let mut r = raw(Some("sqlite://x.db"));
        r.listen = Some("nowhere".into());
        assert!(err(r).starts_with("listen:"));
        let mut r = raw(Some("sqlite://x.db"));
        r.secret_key = Some("short".into());
        assert!(err(r).starts_with("secret_key:"));
        let mut r = raw(Some("sqlite://x.db"));
        r.secret_key = None;
        assert!(err(r).starts_with("secret_key_file"));
        let mut r = raw(Some("sqlite://x.db"));
        r.sqlite_synchronous = Some("sometimes".into());
        assert!(err(r).starts_with("sqlite_synchronous:"));
        let mut r = raw(Some("sqlite://x.db"));
        r.public_url = Some("bridge.example.com".into());
        assert!(err(r).starts_with("public_url:"));
        assert!(raw(Some("sqlite://x.db")).check(true).is_ok());
    }

    #[test]
    fn outbound_is_strict_unless_the_operator_allows() {
        let with = |o: RawOutbound| {
            RawSettings {
                database_url: Some("sqlite://x.db".into()),
                listen: Some("0.0.0.0:8080".into()),
                outbound: o,
                ..Default::default()
            }
            .check(false)
        };
        let strict = with(RawOutbound::default()).unwrap().engine.outbound;
        assert!(strict.enforced && !strict.allow_http);
        assert_eq!(strict.own_ports, vec![8080]);
        let open = with(RawOutbound {
            allow: Some(vec!["127.0.0.1:8801".into(), "10.0.0.0/8".into()]),
            allow_http: Some(true),
        })
        .unwrap()
        .engine
        .outbound;
        assert!(open.allow_http && open.allow.len() == 2);
        let err = with(RawOutbound {
            allow: Some(vec!["10.0.0.0/8".into(), "psa.local".into()]),
            allow_http: None,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.starts_with("outbound.allow: entry 2"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let with = |list: &[&str]| {
            let mut r = RawSettings {
                database_url: Some("sqlite://x.db".into()),
                ..Default::default()
            };
            r.trusted_proxies = Some(list.iter().map(|s| s.to_string()).collect());
            r.check(false)
        };
        let ok = with(&["10.0.0.0/8", "127.0.0.1", "::1"]).unwrap();
        assert_eq!(ok.trusted_proxies.len(), 3);
        let err = with(&["10.0.0.0/8", "proxy.local"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("trusted_proxies: entry 2"), "{err}");
    }

    #[test]
    fn bad_smtp_settings_are_named() {
        let smtp = |f: &dyn Fn(&mut RawSmtp)| {
            let mut s = RawSmtp {
                host: Some("mail.example.com".into()),
                from: Some("alerts@msp.example".into()),
                ..Default::default()
            };
            f(&mut s);
            let mut r = raw(Some("sqlite://x.db"));
            r.smtp = Some(s);
            r.check(true).map(|s| s.engine.smtp)
        };
        let err =
            |f: &dyn Fn(&mut RawSmtp)| smtp(f).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(&|s| s.host = None).starts_with("smtp.host:"));
        assert!(err(&|s| s.from = None).starts_with("smtp.from:"));
        assert!(err(&|s| s.from = Some("bob@".into())).starts_with("smtp.from:"));
        assert!(err(&|s| s.tls = Some("ssl".into())).starts_with("smtp.tls:"));
        assert!(err(&|s| s.port = Some(0)).starts_with("smtp.port:"));
        assert!(
            err(&|s| s.username = Some("u".into())).starts_with("smtp.username and smtp.password")
        );
        let ok = smtp(&|_| {}).unwrap().unwrap();
        assert_eq!(
            (ok.port, ok.tls),
            (587, psabridge_engine::mail::SmtpTls::StartTls)
        );
        assert!(
            raw(Some("sqlite://x.db"))
                .check(true)
                .unwrap()
                .engine
                .smtp
                .is_none()
        );

        let u = smtp_from_url("smtp://127.0.0.1:2525", "a@b.example").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("127.0.0.1", 2525, psabridge_engine::mail::SmtpTls::None)
        );
        let u = smtp_from_url("smtps://me:pw@mail.example.com", "a@b.example").unwrap();
        assert_eq!((u.port, u.username.as_deref()), (465, Some("me")));
        assert!(
            smtp_from_url("http://x", "a@b.example")
                .unwrap_err()
                .to_string()
                .starts_with("--smtp-url:")
        );
    }

    #[test]
    fn the_default_catalog_parses() {
        let c = catalog(None).unwrap();
        assert!(c.len() >= 30);
        for key in [
            "saas.too_many_downloads",
            "dark_web.breach_report",
            "email.bounced",
            "remediation.epss",
        ] {
            assert!(c.get(key).is_some(), "{key}");
        }
    }
}
