//! Layered configuration: defaults → `tenantry.toml` (or `--config`) → `TENANTRY_*`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use tenantry_api::config::Config;

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
            assert_eq!(config.tenancy.deleted_retention_days, 30);

            jail.set_env("TENANTRY_BINDD", "x");
            let error = load(None).unwrap_err();
            assert!(format!("{error:#}").contains("bindd"), "{error:#}");
            Ok(())
        });
    }

    #[test]
    fn external_oidc_providers_from_toml_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "tenantry.toml",
                r#"
[[auth.oidc]]
issuer = "https://tenant.auth0.com/"
audience = ["https://api.example.com", "other"]
email_claim = "https://example.com/email"
link_by_verified_email = true

[[auth.oidc]]
issuer = "https://login.example.org/realms/acme"
audience = "tenantry"
algorithms = ["RS256", "ES256"]
"#,
            )?;
            let config = load(None).map_err(|e| e.to_string())?;
            let [auth0, other] = config.auth.oidc.as_slice() else {
                panic!("two providers expected: {:?}", config.auth.oidc);
            };
            assert_eq!(auth0.audience, ["https://api.example.com", "other"]);
            assert_eq!(auth0.email_claim, "https://example.com/email");
            assert_eq!(auth0.algorithms, ["RS256"]);
            assert!(auth0.link_by_verified_email);
            assert_eq!(other.audience, ["tenantry"]);
            assert_eq!(other.leeway_secs, 30);
            assert!(config.auth.validate(&config.effective_issuer()).is_ok());

            // The whole list in one variable (inline TOML-like syntax) replaces the file's.
            jail.set_env(
                "TENANTRY_AUTH__OIDC",
                r#"[{issuer="https://env.example/", audience="api", algorithms=["HS256"]}]"#,
            );
            let config = load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.auth.oidc.len(), 1);
            assert_eq!(config.auth.oidc[0].issuer, "https://env.example/");
            let error = config
                .auth
                .validate(&config.effective_issuer())
                .unwrap_err();
            assert!(error.contains("HS256"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn tenancy_retention_window() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("tenantry.toml", "[tenancy]\ndeleted_retention_days = 90\n")?;
            assert_eq!(
                load(None)
                    .map_err(|e| e.to_string())?
                    .tenancy
                    .deleted_retention_days,
                90
            );
            jail.set_env("TENANTRY_TENANCY__DELETED_RETENTION_DAYS", "7");
            assert_eq!(
                load(None)
                    .map_err(|e| e.to_string())?
                    .tenancy
                    .deleted_retention_days,
                7
            );
            jail.set_env("TENANTRY_TENANCY__RETENTION_DAYS", "7");
            let error = load(None).unwrap_err();
            assert!(format!("{error:#}").contains("retention_days"), "{error:#}");
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
