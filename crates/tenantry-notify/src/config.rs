//! The `mail` section (`TENANTRY_MAIL__*`). The SMTP server itself is the top-level
//! `smtp_url` (a secret, and a key older than the section), passed to [`Mailer::new`](crate::Mailer::new)
//! beside it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// Sender of every message (`Name <address>` or an address).
    pub from: String,
    /// Directory with `<template>.subject`, `<template>.txt` and `<template>.html` files that
    /// replace the built-in templates of the same name (minijinja syntax).
    pub templates_dir: Option<PathBuf>,
    /// Attempts per message before it is marked failed (retries back off exponentially).
    pub max_attempts: u32,
    /// Seconds an SMTP exchange may take before the attempt counts as failed.
    pub send_timeout_secs: u64,
    /// PEM file of an extra root certificate to trust for the SMTP server's TLS (a relay
    /// with a private CA). The public web roots are always trusted.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            from: "Tenantry <no-reply@tenantry.invalid>".to_owned(),
            templates_dir: None,
            max_attempts: 8,
            send_timeout_secs: 30,
            tls_ca_file: None,
        }
    }
}
