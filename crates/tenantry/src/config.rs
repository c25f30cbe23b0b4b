//! Layered configuration: defaults → `tenantry.toml` (or `--config`) → `TENANTRY_*`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use tenantry_core::config::Config;

/// Environment variables that belong to the test harness, not the server.
const IGNORED_ENV_PREFIXES: &[&str] = &["test_"];

pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(DefaultsShim::default()));
    match explicit {
        Some(path) => {
            anyhow::ensure!(
                path.exists(),
                "configuration file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file(path));
        }
        None => {
            let default = PathBuf::from("tenantry.toml");
            if default.exists() {
                figment = figment.merge(Toml::file(default));
            }
        }
    }
    figment = figment.merge(
        Env::prefixed("TENANTRY_")
            .filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                !IGNORED_ENV_PREFIXES.iter().any(|p| key.starts_with(p))
            })
            .split("__"),
    );
    figment
        .extract::<Config>()
        .map_err(|error| {
            let mut message = String::from("invalid configuration");
            for e in error {
                message.push_str(&format!("\n  - {e}"));
            }
            anyhow::anyhow!(message)
        })
        .context("loading configuration (defaults, tenantry.toml, TENANTRY_* environment)")
}

/// Figment needs a serialisable default; the typed defaults live on `Config` itself
/// (`#[serde(default)]`), so an empty map is enough.
#[derive(Default, serde::Serialize)]
struct DefaultsShim {}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;

    #[test]
    fn defaults_env_and_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            let config = load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.bind.to_string(), "127.0.0.1:4999");

            jail.create_file(
                "tenantry.toml",
                "log = \"debug\"\n[auth]\naccess_token_ttl_secs = 60\n",
            )?;
            jail.set_env("TENANTRY_BIND", "127.0.0.1:5000");
            jail.set_env("TENANTRY_AUTH__REFRESH_TOKEN_TTL_SECS", "120");
            jail.set_env("TENANTRY_TEST_STRICT", "1");
            let config = load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.bind.port(), 5000);
            assert_eq!(config.log, "debug");
            assert_eq!(config.auth.access_token_ttl_secs, 60);
            assert_eq!(config.auth.refresh_token_ttl_secs, 120);

            jail.set_env("TENANTRY_BINDD", "x");
            let error = load(None).unwrap_err();
            assert!(format!("{error:#}").contains("bindd"), "{error:#}");
            Ok(())
        });
    }

    #[test]
    fn secrets_are_hidden_in_debug() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TENANTRY_DATABASE_URL", "postgres://u:hunter2@h/db");
            let config = load(None).map_err(|e| e.to_string())?;
            assert!(!format!("{config:?}").contains("hunter2"));
            Ok(())
        });
    }
}
