//! E-mail to on-call: every alert detection opens becomes a mail (HTML and plain text, from
//! templates embedded in the binary), delivered over SMTP or written as an `.eml` file,
//! exactly once as far as gatelog can tell, through an outbox kept in ClickHouse.
//!
//! ```text
//!  alert_events (action = 'open') ─┐
//!  alerts FINAL ───────────────────┼─► Mailer::round ─► plan (backoff, rate limits, digests)
//!  alert_deliveries ───────────────┘        │
//!        ▲                                  ├─► Renderer (minijinja) ─► Mail ─► Transport (SMTP | .eml | memory)
//!        └──── one row per attempt ─────────┘
//! ```
//!
//! Where it attaches: `gatelog-watch` appends an alert's `open` event to `alert_events`
//! after the alert's row (ids stable across replays). The mailer delivers the `open` events
//! that have no `sent` row in `alert_deliveries`. Its progress is those rows, stored with
//! the data, not a file of its own: a crash of either side, an SMTP outage or a ClickHouse
//! outage loses nothing, and the same alert always has the same Message-ID.
//!
//! Module map:
//! - [`config`]: [`NotifyConfig`], the `[notify]` section (SMTP, TLS, secrets, limits).
//! - [`mail`]: [`Mail`], stable Message-IDs, the RFC 5322 message (lettre).
//! - [`render`]: [`Renderer`], the templates in `templates/`; [`why`]: each rule's "why it
//!   matters".
//! - [`plan`]: what to do now (pure): [`plan::backoff`], rate-limit windows, folds, digests.
//! - [`transport`]: [`Transport`] with [`SmtpTransport`], [`FileTransport`] and the
//!   [`MemoryTransport`] test double.
//! - [`mailer`]: [`Mailer`], the loop `gatelog serve` runs; [`stats`]: its `/metrics` counters.
//! - `testing` (feature `testing`): `testing::SmtpServer`, a real SMTP server (aiosmtpd) on
//!   loopback for this and other crates' tests.

pub mod config;
pub mod mail;
pub mod mailer;
pub mod plan;
pub mod render;
pub mod stats;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;
pub mod why;

pub use config::{ConfigError, NotifyConfig, RateLimitConfig, RetryConfig, SmtpConfig, TlsMode};
pub use mail::{Mail, MailKind};
pub use mailer::{Mailer, NotifyError, RoundReport};
pub use render::Renderer;
pub use stats::NotifyStats;
pub use transport::{Channel, FileTransport, MemoryTransport, SendError, SmtpTransport, Transport};
