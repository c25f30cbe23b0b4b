//! Where messages go: an SMTP server, or a directory of `.eml` files (the embedded default).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, anyhow};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::client::{Certificate, Tls, TlsParameters},
};
use secrecy::{ExposeSecret, SecretString};

use crate::{MailConfig, templates::Rendered};

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
    pub fn from_config(
        config: &MailConfig,
        smtp_url: Option<&SecretString>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => {
                let url = url.expose_secret();
                let timeout = Duration::from_secs(config.send_timeout_secs.max(1));
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    // lettre's message may echo the URL; do not pass it on.
                    .map_err(|_| {
                        anyhow!(
                            "TENANTRY_SMTP_URL is not a valid smtp:// or smtps:// URL \
                             (tls=opportunistic|required are the accepted options)"
                        )
                    })?
                    .timeout(Some(timeout));
                if let Some(ca_file) = &config.tls_ca_file {
                    builder = builder.tls(tls_with_root(url, ca_file)?);
                }
                Ok(Self::Smtp(builder.build()))
            }
            None => Ok(Self::Directory(data_dir.join("mail"))),
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

/// The TLS mode of `url` (as lettre reads it) with `ca_file` as an extra trusted root.
fn tls_with_root(url: &str, ca_file: &std::path::Path) -> anyhow::Result<Tls> {
    let parsed = url::Url::parse(url).map_err(|_| anyhow!("TENANTRY_SMTP_URL is not a URL"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| anyhow!("TENANTRY_SMTP_URL has no host"))?
        .to_owned();
    let pem = std::fs::read(ca_file)
        .with_context(|| format!("reading mail.tls_ca_file {}", ca_file.display()))?;
    let certificate = Certificate::from_pem(&pem).map_err(|e| {
        anyhow!(
            "mail.tls_ca_file {} is not a PEM certificate: {e}",
            ca_file.display()
        )
    })?;
    let parameters = TlsParameters::builder(host)
        .add_root_certificate(certificate)
        .build_rustls()
        .map_err(|e| anyhow!("SMTP TLS parameters: {e}"))?;
    let mode = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (parsed.scheme(), mode.as_deref()) {
        ("smtps", _) => Ok(Tls::Wrapper(parameters)),
        ("smtp", Some("required")) => Ok(Tls::Required(parameters)),
        ("smtp", Some("opportunistic")) => Ok(Tls::Opportunistic(parameters)),
        _ => Err(anyhow!(
            "mail.tls_ca_file is set but TENANTRY_SMTP_URL does not use TLS \
             (use smtps:// or ?tls=required)"
        )),
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
