//! The links the server mails (address verification, invitations), read from its mail
//! directory: with no SMTP server configured it writes one `.eml` file per message under
//! `<data dir>/mail/`. Seeding goes through the same consent flow a person does — verify the
//! address, be invited, accept — and this is how the benchmark gets the tokens.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use mail_parser::MessageParser;

/// Reads the mail directory incrementally: each message is parsed once.
pub struct Mailbox {
    dir: PathBuf,
    seen: HashSet<PathBuf>,
    /// (recipient, link path) → the newest token seen.
    tokens: HashMap<(String, String), String>,
}

/// The link paths whose tokens the seeding needs.
pub const VERIFY: &str = "verify-email";
pub const ACCEPT: &str = "invitations/accept";

impl Mailbox {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            seen: HashSet::new(),
            tokens: HashMap::new(),
        }
    }

    /// The `path` link's token for each of `recipients`, waiting (up to a minute) until the
    /// mail worker has delivered all of them.
    pub async fn tokens(
        &mut self,
        path: &str,
        recipients: &[String],
    ) -> anyhow::Result<HashMap<String, String>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.scan()?;
            let found: HashMap<String, String> = recipients
                .iter()
                .filter_map(|r| {
                    let token = self.tokens.get(&(r.clone(), path.to_owned()))?;
                    Some((r.clone(), token.clone()))
                })
                .collect();
            if found.len() == recipients.len() {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} of {} {path} mails arrived in {} within a minute",
                    found.len(),
                    recipients.len(),
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn scan(&mut self) -> anyhow::Result<()> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(()); // not created before the first message
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "eml") || self.seen.contains(&path) {
                continue;
            }
            let raw =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let message = MessageParser::default()
                .parse(&raw)
                .with_context(|| format!("parsing {}", path.display()))?;
            let recipient = message
                .to()
                .and_then(|to| to.first())
                .and_then(|a| a.address())
                .map(str::to_owned);
            let text = message.body_text(0);
            if let (Some(recipient), Some(text)) = (recipient, text) {
                for link in [VERIFY, ACCEPT] {
                    if let Some(token) = token_after(&text, &format!("/{link}?token=")) {
                        self.tokens
                            .insert((recipient.clone(), link.to_owned()), token);
                    }
                }
            }
            self.seen.insert(path);
        }
        Ok(())
    }
}

fn token_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}
