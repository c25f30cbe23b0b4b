//! Notifications. For now: e-mail, as a reusable service.
//!
//! Services enqueue a message **inside their own transaction** ([`Mailer::enqueue`]): the
//! template is rendered at once, and the message (which may carry a one-time link) is stored
//! sealed with the data key in `mail_outbox`. A periodic task ([`Mailer::periodic_tasks`]) delivers due messages
//! through SMTP or, when no SMTP server is configured, into `<data_dir>/mail/` as `.eml`
//! files. A slow or failing SMTP server therefore never fails or slows the user's request;
//! failed attempts are retried with exponential back-off.

pub mod config;
mod mailer;
pub mod migrations;
mod templates;
mod transport;

pub use config::MailConfig;
pub use mailer::{KEEP_SENT_MAIL, Mailer, OutboxStats};
pub use templates::Templates;
