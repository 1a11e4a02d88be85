//! Where mails go: the [`Transport`] trait and its implementations.
//!
//! - [`SmtpTransport`]: lettre over SMTP (STARTTLS, implicit TLS, or plain to loopback),
//!   rustls with the platform's roots and an optional extra CA; a connection per message.
//! - [`FileTransport`]: with no SMTP server configured, each mail is an `.eml` file named by
//!   its Message-ID (so a resend overwrites the same file), written to a temporary name,
//!   fsynced and renamed.
//! - [`MemoryTransport`]: keeps what it is given and fails when told to; the test double the
//!   mailer's unit tests use, held to the same contract as the real SMTP server
//!   (`tests/smtp.rs` runs one contract against both).
//!
//! A [`SendError`] says which server or directory failed and why, e.g.
//! `smtp server 127.0.0.1:2525: Connection error: Connection refused (os error 111)`.

use crate::config::{ConfigError, SmtpConfig, TlsMode};
use crate::mail::{BuildError, Mail, file_stem};
use lettre::AsyncTransport as _;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// The channel label of a transport (`alert_deliveries.channel`, `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Smtp,
    File,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Smtp, Channel::File];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Smtp => "smtp",
            Channel::File => "file",
        }
    }
}

/// Why a mail was not handed over.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("smtp server {target}: {message}")]
    Smtp { target: String, message: String },
    #[error("cannot write {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("{0}")]
    Refused(String),
}

/// The future a transport returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<String, SendError>> + Send + 'a>>;

/// Hands a mail over. On success, says where it went (`host:port`, a file's path).
pub trait Transport: Send + Sync + std::fmt::Debug {
    fn channel(&self) -> Channel;
    /// Where mails go (for messages and the demo): `host:port`, or the outbox directory.
    fn destination(&self) -> String;
    fn send<'a>(&'a self, mail: &'a Mail) -> SendFuture<'a>;
}

/// SMTP through lettre.
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    target: String,
}

impl std::fmt::Debug for SmtpTransport {
    // lettre's transport holds the credentials: print only where it goes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport").field("target", &self.target).finish_non_exhaustive()
    }
}

impl SmtpTransport {
    /// Builds the transport (reads the password and the extra CA now, so a missing one is a
    /// start-up error naming its key). Connects only when a mail is sent.
    pub fn new(config: &SmtpConfig) -> Result<SmtpTransport, ConfigError> {
        let host = config.host.trim().to_owned();
        let params = || -> Result<TlsParameters, ConfigError> {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path).map_err(|e| ConfigError {
                    key: "notify.smtp.ca_file".into(),
                    message: format!("cannot read {}: {e}", path.display()),
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| ConfigError {
                    key: "notify.smtp.ca_file".into(),
                    message: format!("{} is not a PEM certificate: {e}", path.display()),
                })?;
                b = b.add_root_certificate(cert);
            }
            b.build().map_err(|e| ConfigError { key: "notify.smtp.tls".into(), message: e.to_string() })
        };
        let tls = match config.tls {
            TlsMode::Starttls => Tls::Required(params()?),
            TlsMode::Tls => Tls::Wrapper(params()?),
            TlsMode::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(config.port())
            .timeout(Some(config.timeout))
            .tls(tls);
        if let Some(password) = config.password()? {
            builder = builder.credentials(Credentials::new(config.username.clone(), password));
        }
        Ok(SmtpTransport { inner: builder.build(), target: config.target() })
    }
}

/// `e` and its sources, joined by `: `.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl Transport for SmtpTransport {
    fn channel(&self) -> Channel {
        Channel::Smtp
    }

    fn destination(&self) -> String {
        self.target.clone()
    }

    fn send<'a>(&'a self, mail: &'a Mail) -> SendFuture<'a> {
        Box::pin(async move {
            let message = mail.to_message()?;
            match self.inner.send(message).await {
                Ok(_) => Ok(self.target.clone()),
                Err(e) => Err(SendError::Smtp { target: self.target.clone(), message: chain(&e) }),
            }
        })
    }
}

/// `.eml` files in one directory.
#[derive(Debug, Clone)]
pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    pub fn new(dir: impl Into<PathBuf>) -> FileTransport {
        FileTransport { dir: dir.into() }
    }

    /// Where `mail` is (or would be) written.
    pub fn path_of(&self, mail: &Mail) -> PathBuf {
        self.dir.join(format!("{}.eml", file_stem(&mail.message_id)))
    }

    fn write(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("eml.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

impl Transport for FileTransport {
    fn channel(&self) -> Channel {
        Channel::File
    }

    fn destination(&self) -> String {
        self.dir.display().to_string()
    }

    fn send<'a>(&'a self, mail: &'a Mail) -> SendFuture<'a> {
        Box::pin(async move {
            let bytes = mail.to_bytes()?;
            let path = self.path_of(mail);
            let (dir, target) = (self.dir.clone(), path.clone());
            let written = tokio::task::spawn_blocking(move || Self::write(&dir, &target, &bytes))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            match written {
                Ok(()) => Ok(path.display().to_string()),
                Err(source) => Err(SendError::File { path, source }),
            }
        })
    }
}

/// Keeps mails in memory; fails while [`MemoryTransport::set_failing`] says so. For tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryTransport {
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    sent: Vec<Mail>,
    failing: Option<String>,
    attempts: u64,
}

impl MemoryTransport {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Some(reason)`: every send fails with it until set back to `None`.
    pub fn set_failing(&self, reason: Option<&str>) {
        self.lock().failing = reason.map(str::to_owned);
    }

    /// Mails handed over so far, in order.
    pub fn sent(&self) -> Vec<Mail> {
        self.lock().sent.clone()
    }

    /// Calls of `send`, failed ones included.
    pub fn attempts(&self) -> u64 {
        self.lock().attempts
    }
}

impl Transport for MemoryTransport {
    fn channel(&self) -> Channel {
        Channel::Smtp
    }

    fn destination(&self) -> String {
        "memory".into()
    }

    fn send<'a>(&'a self, mail: &'a Mail) -> SendFuture<'a> {
        Box::pin(async move {
            mail.to_message()?;
            let mut state = self.lock();
            state.attempts += 1;
            if let Some(reason) = &state.failing {
                return Err(SendError::Smtp { target: "memory".into(), message: reason.clone() });
            }
            state.sent.push(mail.clone());
            Ok("memory".into())
        })
    }
}
