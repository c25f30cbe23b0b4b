//! Which backend to use, parsed from the configuration names of API.md:
//! `storage_url` (`TENANTRY_STORAGE_URL`: `file://PATH` or `s3://BUCKET`, default
//! `file://<data_dir>/blobs`) and the `s3` section (`TENANTRY_S3__ENDPOINT`, `__REGION`,
//! `__ACCESS_KEY_ID`, `__SECRET_ACCESS_KEY`, `__PATH_STYLE`). Serde (with
//! `deny_unknown_fields`) reads the section into [`S3Config`], defined here; `storage_url` is a
//! top-level key of the assembly's configuration (its default derives from `data_dir`). This
//! module checks what serde cannot and produces a [`StorageConfig`] that can only describe a
//! usable backend.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

/// Region used when none is configured; what most S3-compatible servers expect.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An S3-compatible object store (`TENANTRY_S3__*`). Only read when `storage_url` is `s3://…`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Base URL of the service, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000` (plain `http://` is allowed because it was asked for
    /// explicitly). Unset: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// Signing region; default `us-east-1` (what most S3-compatible servers expect).
    pub region: Option<String>,
    /// Static credentials. Unset: none are sent, unless the AWS environment provides them
    /// (instance metadata, `AWS_*` variables).
    pub access_key_id: Option<String>,
    #[serde(serialize_with = "tenantry_core::config::secret_as_unset")]
    pub secret_access_key: Option<SecretString>,
    /// Path-style URLs (`ENDPOINT/BUCKET/KEY`) instead of virtual-hosted ones
    /// (`BUCKET.ENDPOINT/KEY`); most self-hosted servers need this.
    pub path_style: bool,
}

/// A parsed storage configuration.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// Objects are files under `root` (created when missing).
    Local {
        root: PathBuf,
    },
    S3(S3Target),
}

/// A bucket of an S3-compatible service. `Debug` does not show the secret.
#[derive(Debug, Clone)]
pub struct S3Target {
    pub bucket: String,
    /// `None`: AWS S3 of `region`.
    pub endpoint: Option<Url>,
    pub region: String,
    /// Both or neither; neither: credentials from the AWS environment (`AWS_*`, instance
    /// metadata, web identity).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    pub path_style: bool,
    /// True when the endpoint is `http://` (a local or private server); never guessed for
    /// `https://` endpoints.
    pub allow_http: bool,
}

/// A configuration value that cannot work, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid storage configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: &'static str,
    pub message: String,
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        message: message.into(),
    }
}

impl StorageConfig {
    /// Parses `storage_url` (unset: `<data_dir>/blobs`) with the `s3` section.
    pub fn resolve(
        storage_url: Option<&str>,
        s3: &S3Config,
        data_dir: &Path,
    ) -> Result<Self, ConfigError> {
        let Some(url) = storage_url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Self::Local {
                root: data_dir.join("blobs"),
            });
        };
        if let Some(path) = url.strip_prefix("file://") {
            // Not parsed as a URL on purpose: `file://./data/blobs` (relative) is accepted.
            if path.is_empty() {
                return Err(invalid("storage_url", "file:// needs a directory path"));
            }
            return Ok(Self::Local {
                root: PathBuf::from(path),
            });
        }
        if let Some(bucket) = url.strip_prefix("s3://") {
            let bucket = bucket.strip_suffix('/').unwrap_or(bucket);
            check_bucket(bucket)?;
            return Ok(Self::S3(S3Target::new(bucket, s3)?));
        }
        Err(invalid(
            "storage_url",
            format!("{url:?} must start with file:// or s3://"),
        ))
    }
}

impl S3Target {
    fn new(bucket: &str, s3: &S3Config) -> Result<Self, ConfigError> {
        let endpoint = match s3.endpoint.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(endpoint) => {
                let url = Url::parse(endpoint)
                    .map_err(|e| invalid("s3.endpoint", format!("{endpoint:?}: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(invalid(
                        "s3.endpoint",
                        format!("{endpoint:?} must be an http:// or https:// URL with a host"),
                    ));
                }
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(invalid(
                        "s3.endpoint",
                        format!("{endpoint:?} must not have a query or fragment"),
                    ));
                }
                Some(url)
            }
        };
        let region = match s3.region.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_REGION.to_owned(),
            Some(region)
                if region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                region.to_owned()
            }
            Some(region) => {
                return Err(invalid(
                    "s3.region",
                    format!("{region:?} is not a region name"),
                ));
            }
        };
        let access_key_id = s3
            .access_key_id
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        if access_key_id.is_some() != s3.secret_access_key.is_some() {
            return Err(invalid(
                "s3.access_key_id",
                "access_key_id and secret_access_key go together: set both or neither",
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            allow_http: endpoint.as_ref().is_some_and(|u| u.scheme() == "http"),
            endpoint,
            region,
            access_key_id,
            secret_access_key: s3.secret_access_key.clone(),
            path_style: s3.path_style,
        })
    }
}

/// S3 bucket naming rules (3–63 of `a-z 0-9 . -`, starting and ending alphanumeric).
fn check_bucket(bucket: &str) -> Result<(), ConfigError> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "storage_url",
            format!(
                "s3://{bucket}: a bucket name is 3 to 63 characters of a-z, 0-9, `.` and `-` \
                 (a key prefix after the bucket is not supported)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn s3(endpoint: Option<&str>) -> S3Config {
        S3Config {
            endpoint: endpoint.map(str::to_owned),
            region: None,
            access_key_id: Some("AKID".into()),
            secret_access_key: Some(SecretString::from("very-secret")),
            path_style: true,
        }
    }

    #[test]
    fn default_is_blobs_under_the_data_dir() {
        let config = StorageConfig::resolve(None, &S3Config::default(), Path::new("/d")).unwrap();
        assert!(matches!(config, StorageConfig::Local { root } if root == Path::new("/d/blobs")));
        let config =
            StorageConfig::resolve(Some("file://./x"), &S3Config::default(), Path::new("/d"))
                .unwrap();
        assert!(matches!(config, StorageConfig::Local { root } if root == Path::new("./x")));
    }

    #[test]
    fn s3_url_with_section() {
        let config = StorageConfig::resolve(
            Some("s3://my-bucket"),
            &s3(Some("http://127.0.0.1:9000")),
            Path::new("/d"),
        )
        .unwrap();
        let StorageConfig::S3(target) = config else {
            panic!("expected S3")
        };
        assert_eq!(target.bucket, "my-bucket");
        assert_eq!(target.region, DEFAULT_REGION);
        assert!(target.allow_http && target.path_style);
        assert_eq!(
            target.secret_access_key.as_ref().unwrap().expose_secret(),
            "very-secret"
        );
        assert!(!format!("{target:?}").contains("very-secret"));
    }

    #[test]
    fn https_endpoint_does_not_allow_http() {
        let StorageConfig::S3(target) = StorageConfig::resolve(
            Some("s3://bucket"),
            &s3(Some("https://s3.example.com")),
            Path::new("/d"),
        )
        .unwrap() else {
            panic!("expected S3")
        };
        assert!(!target.allow_http);
    }

    #[test]
    fn rejects_what_cannot_work() {
        let d = Path::new("/d");
        let cases = [
            (Some("ftp://x"), s3(None), "storage_url"),
            (Some("file://"), s3(None), "storage_url"),
            (Some("s3://B"), s3(None), "storage_url"),
            (Some("s3://bucket/prefix"), s3(None), "storage_url"),
            (
                Some("s3://bucket"),
                s3(Some("localhost:9000")),
                "s3.endpoint",
            ),
            (
                Some("s3://bucket"),
                s3(Some("http://h/?x=1")),
                "s3.endpoint",
            ),
            (
                Some("s3://bucket"),
                S3Config {
                    secret_access_key: None,
                    ..s3(None)
                },
                "s3.access_key_id",
            ),
            (
                Some("s3://bucket"),
                S3Config {
                    region: Some("us east".into()),
                    ..s3(None)
                },
                "s3.region",
            ),
        ];
        for (url, s3, key) in cases {
            let error = StorageConfig::resolve(url, &s3, d).unwrap_err();
            assert_eq!(error.key, key, "{url:?}: {error}");
        }
    }
}
