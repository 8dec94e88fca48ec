//! The email channel: sending an email delivery through a [`Mailer`].
//!
//! An email delivery is an outbox row like a PSA delivery (channel `email`, connection 0, a
//! group of its own: see `psabridge_core::email`), so it is claimed, retried, declared dead and
//! retried by hand the same way. What differs is only the sender: instead of a PSA connector,
//! a [`Mailer`] — SMTP through lettre in production ([`SmtpMailer`]).
//!
//! Failures are classified like a PSA's: a server that cannot be reached or answers 4xx is
//! transient (tried again with the engine's `RetryPolicy`); a 5xx answer is permanent (the
//! delivery is dead, with the server's reply as its error, until someone retries it).
//!
//! Every email of a delivery carries the same Message-ID (from the installation and the
//! delivery id). If an attempt dies after the server took the message but before we heard so,
//! the next attempt sends it again with that Message-ID, and the receiver can drop the copy.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use psabridge_core::email::{message_id, render_email};
use psabridge_core::secret::Secret;
use psabridge_store::outbox::Delivery;

use crate::{Engine, now_ms};

/// One email, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
    /// With angle brackets: `<…@…>`.
    pub message_id: String,
}

/// Why sending failed, classified for the retry decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Trying again later may work (no connection, 4xx, timeout).
    #[error("{0}")]
    Transient(String),
    /// The server refused for good (5xx) or the message cannot be made.
    #[error("{0}")]
    Permanent(String),
}

/// Something that sends email. SMTP in production; tests may substitute their own.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;

    /// The domain of the sender address, for Message-IDs.
    fn sender_domain(&self) -> &str;
}

/// How to talk TLS to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (a relay on the same host or network; tests).
    None,
    /// Plain, then upgraded with STARTTLS (port 587); the upgrade is required.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl SmtpTls {
    pub fn parse(s: &str) -> Option<SmtpTls> {
        match s {
            "none" => Some(SmtpTls::None),
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Tls),
            _ => None,
        }
    }
}

/// The SMTP server email goes through.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender (`alerts@msp.example` or `PSA Bridge <alerts@msp.example>`).
    pub from: String,
    /// How long one SMTP command may take.
    pub timeout: Duration,
}

/// Why an SMTP configuration cannot be used; each names its setting.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("from: '{0}' is not an email address")]
    From(String),
    #[error("host: {0}")]
    Host(String),
    #[error("username and password: give both or neither")]
    Credentials,
}

/// SMTP through lettre.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the credentials: never print it.
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpConfig {
    /// Check the settings without connecting (and without a runtime): the sender parses, the
    /// host is given, the credentials come as a pair.
    pub fn check(&self) -> Result<Mailbox, SmtpConfigError> {
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|_| SmtpConfigError::From(self.from.clone()))?;
        if self.host.trim().is_empty() {
            return Err(SmtpConfigError::Host("must not be empty".into()));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(SmtpConfigError::Credentials);
        }
        Ok(from)
    }
}

impl SmtpMailer {
    /// Build the transport (its connection pool needs a Tokio runtime). Nothing connects yet.
    pub fn new(c: &SmtpConfig) -> Result<SmtpMailer, SmtpConfigError> {
        let from = c.check()?;
        let builder = match c.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)
                .map_err(|e| SmtpConfigError::Host(e.to_string()))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host)
                .map_err(|e| SmtpConfigError::Host(e.to_string()))?,
        };
        let mut builder = builder.port(c.port).timeout(Some(c.timeout));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.expose().to_string()));
        }
        let transport: AsyncSmtpTransport<Tokio1Executor> = builder.build();
        Ok(SmtpMailer {
            transport,
            domain: from.email.domain().to_string(),
            from,
        })
    }
}

/// Transient or permanent, from lettre's error: a 5xx reply is permanent; a 4xx reply, a
/// connection or TLS problem, or a timeout may pass.
fn classify(e: &lettre::transport::smtp::Error) -> MailError {
    let text = e.to_string();
    if e.is_permanent() {
        MailError::Permanent(text)
    } else {
        MailError::Transient(text)
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone())
            .message_id(Some(mail.message_id.clone()));
        for r in &mail.recipients {
            let to: Mailbox = r
                .parse()
                .map_err(|_| MailError::Permanent(format!("'{r}' is not an email address")))?;
            builder = builder.to(to);
        }
        let message = builder
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| MailError::Permanent(format!("the email cannot be made: {e}")))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    fn sender_domain(&self) -> &str {
        &self.domain
    }
}

/// A mailer that writes each email as an `.eml` file into a directory instead of sending it:
/// for the demo (its data directory's `mail/`), where no SMTP server exists but a person must
/// still be able to read the invitation sent to them. Files are readable by their owner only:
/// an invitation holds a single-use link.
pub struct DirMailer {
    dir: std::path::PathBuf,
    from: Mailbox,
    domain: String,
    written: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for DirMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirMailer")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl DirMailer {
    /// Write into `dir` (created if missing), as `from`.
    pub fn new(
        dir: impl Into<std::path::PathBuf>,
        from: &str,
    ) -> Result<DirMailer, SmtpConfigError> {
        let from: Mailbox = from
            .parse()
            .map_err(|_| SmtpConfigError::From(from.to_string()))?;
        Ok(DirMailer {
            dir: dir.into(),
            domain: from.email.domain().to_string(),
            from,
            written: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Where the files go.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for DirMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone())
            .message_id(Some(mail.message_id.clone()));
        for r in &mail.recipients {
            let to: Mailbox = r
                .parse()
                .map_err(|_| MailError::Permanent(format!("'{r}' is not an email address")))?;
            builder = builder.to(to);
        }
        let message = builder
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| MailError::Permanent(format!("the email cannot be made: {e}")))?;
        let n = self
            .written
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(
            "{}-{n}.eml",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        );
        let path = self.dir.join(name);
        let bytes = message.formatted();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(&path)?.write_all(&bytes)
        })
        .await
        .map_err(|e| MailError::Transient(e.to_string()))?
        .map_err(|e| MailError::Transient(format!("writing the email: {e}")))
    }

    fn sender_domain(&self) -> &str {
        &self.domain
    }
}

/// Deliver one claimed email delivery and record what happened.
pub(crate) async fn deliver_email(engine: &Engine, owner: &str, d: Delivery) {
    let started = now_ms();
    let Some(mailer) = engine.mailer.clone() else {
        let why = "no SMTP server is configured ([smtp] in the configuration)";
        crate::deliver::fail(engine, owner, &d, started, 0, None, why, None, false).await;
        return;
    };
    if psabridge_core::replay::outside_replay_window(
        d.event.received_at,
        d.replayed_at,
        now_ms(),
        engine.config.replay_window,
        false,
    ) {
        crate::deliver::expire(engine, owner, &d, started).await;
        return;
    }
    let recipients: Vec<String> = d.route["recipients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let mail = match prepare(engine, &d, recipients, mailer.as_ref()).await {
        Ok(m) => m,
        Err(why) => {
            crate::deliver::fail(engine, owner, &d, started, 0, None, &why, Some(None), false)
                .await;
            return;
        }
    };
    let result = if mail.recipients.is_empty() {
        Err(MailError::Permanent(
            "the delivery has no recipients".into(),
        ))
    } else {
        mailer.send(&mail).await
    };
    match result {
        Ok(()) => {
            let summary = format!(
                "emailed {} as {}",
                mail.recipients.join(", "),
                mail.message_id
            );
            crate::deliver::finish_sent(engine, owner, &d, started, "emailed", summary, None).await;
        }
        Err(MailError::Transient(e)) => {
            let msg = format!("SMTP: {e} (transient)");
            crate::deliver::fail(engine, owner, &d, started, 0, None, &msg, Some(None), false)
                .await;
        }
        Err(MailError::Permanent(e)) => {
            let msg = format!("SMTP: {e} (permanent)");
            crate::deliver::fail(engine, owner, &d, started, 0, None, &msg, None, false).await;
        }
    }
}

/// The email of a delivery: text from the catalog's templates, a Message-ID of its own.
async fn prepare(
    engine: &Engine,
    d: &Delivery,
    recipients: Vec<String>,
    mailer: &dyn Mailer,
) -> Result<OutgoingMail, String> {
    let install = engine
        .install_id()
        .await
        .map_err(|e| format!("storage: {e}"))?;
    let client_name =
        crate::deliver::client_name(engine, &d.partner_id, &d.event.event.client).await;
    let catalog = engine.catalog.fresh().await;
    let text = render_email(
        &d.event.event,
        catalog.rendering.get(&d.event.event.event_type),
        client_name.as_deref(),
    );
    Ok(OutgoingMail {
        recipients,
        subject: text.subject,
        body: text.body,
        message_id: message_id(&install, d.id, mailer.sender_domain()),
    })
}

/// Build the mailer of an SMTP configuration, if there is one.
pub fn mailer_of(config: Option<&SmtpConfig>) -> Option<Arc<dyn Mailer>> {
    let c = config?;
    match SmtpMailer::new(c) {
        Ok(m) => Some(Arc::new(m)),
        Err(e) => {
            tracing::error!(error = %e, "smtp: email cannot be sent");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn config(from: &str) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: 2525,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: from.into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn settings_are_checked_and_named() {
        assert!(matches!(
            SmtpMailer::new(&config("not an address")),
            Err(SmtpConfigError::From(_))
        ));
        let mut c = config("alerts@msp.example");
        c.username = Some("u".into());
        assert!(matches!(
            SmtpMailer::new(&c),
            Err(SmtpConfigError::Credentials)
        ));
        c.password = Some(Secret::new("hunter2"));
        let m = SmtpMailer::new(&c).unwrap();
        assert_eq!(m.sender_domain(), "msp.example");
        assert!(!format!("{m:?}").contains("hunter2"));
        assert_eq!(SmtpTls::parse("starttls"), Some(SmtpTls::StartTls));
        assert_eq!(SmtpTls::parse("ssl"), None);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_transient_failure() {
        // A port nobody listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = config("alerts@msp.example");
        c.port = port;
        let m = SmtpMailer::new(&c).unwrap();
        let err = m
            .send(&OutgoingMail {
                recipients: vec!["a@x.com".into()],
                subject: "s".into(),
                body: "b".into(),
                message_id: "<1@msp.example>".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::Transient(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_dir_mailer_writes_each_email_as_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = DirMailer::new(dir.path().join("mail"), "PSA Bridge <p@demo.example>").unwrap();
        assert_eq!(m.sender_domain(), "demo.example");
        for _ in 0..2 {
            m.send(&OutgoingMail {
                recipients: vec!["dave@x.test".into()],
                subject: "You are invited".into(),
                body: "the link".into(),
                message_id: "<1@demo.example>".into(),
            })
            .await
            .unwrap();
        }
        let files: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            text.contains("To: dave@x.test") && text.contains("the link"),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    proptest! {
        /// Every address the settings API accepts, lettre accepts too: a saved setting never
        /// fails at sending time for its form.
        #[test]
        fn addresses_we_accept_lettre_accepts(
            local in "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-zA-Z0-9_-]{1,8}){0,2}",
            host in "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?",
            tld in "[a-z]{2,6}",
        ) {
            let text = format!("{local}@{host}.{tld}");
            if let Ok(a) = psabridge_core::email::parse_address(&text) {
                prop_assert!(a.as_str().parse::<lettre::Address>().is_ok(), "{}", text);
            }
        }
    }
}
