//! Where messages go: an SMTP server, or a directory of `.eml` files (the embedded default).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, anyhow};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};
use secrecy::ExposeSecret;
use tenantry_core::config::Config;

use crate::templates::Rendered;

/// A delivery failure: permanent ones (the server refused the message) are not retried.
#[derive(Debug)]
pub(crate) struct SendError {
    pub permanent: bool,
    pub message: String,
}

pub(crate) enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Directory(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Transport::Smtp"),
            Self::Directory(dir) => write!(f, "Transport::Directory({})", dir.display()),
        }
    }
}

impl Transport {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        match &config.smtp_url {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    // lettre's message may echo the URL; do not pass it on.
                    .map_err(|_| {
                        anyhow!(
                            "TENANTRY_SMTP_URL is not a valid smtp:// or smtps:// URL \
                             (tls=opportunistic|required are the accepted options)"
                        )
                    })?
                    .timeout(Some(Duration::from_secs(
                        config.mail.send_timeout_secs.max(1),
                    )))
                    .build();
                Ok(Self::Smtp(transport))
            }
            None => Ok(Self::Directory(config.data_dir.join("mail"))),
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Self::Smtp(_) => "smtp",
            Self::Directory(_) => "directory",
        }
    }

    pub async fn send(
        &self,
        from: &Mailbox,
        to: &str,
        rendered: &Rendered,
        id: uuid::Uuid,
    ) -> Result<(), SendError> {
        let message = build(from, to, rendered, id).map_err(|e| SendError {
            permanent: true,
            message: format!("{e:#}"),
        })?;
        match self {
            Self::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|e| SendError {
                permanent: e.is_permanent(),
                message: e.to_string(),
            }),
            Self::Directory(dir) => write_eml(dir, &message, id).await.map_err(|e| SendError {
                permanent: false,
                message: format!("{e:#}"),
            }),
        }
    }
}

fn build(from: &Mailbox, to: &str, rendered: &Rendered, id: uuid::Uuid) -> anyhow::Result<Message> {
    let to: Mailbox = to.parse().context("recipient address")?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject.as_str())
        .message_id(Some(format!("<{id}@tenantry>")))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))
        .context("building the message")
}

/// Writes `<dir>/<id>.eml` atomically (temporary file, then rename), so a reader never sees
/// half a message.
async fn write_eml(dir: &std::path::Path, message: &Message, id: uuid::Uuid) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{id}.tmp"));
    let path = dir.join(format!("{id}.eml"));
    tokio::fs::write(&tmp, message.formatted())
        .await
        .with_context(|| format!("writing {}", tmp.display()))?;
    tokio::fs::rename(&tmp, &path)
        .await
        .with_context(|| format!("renaming to {}", path.display()))
}
