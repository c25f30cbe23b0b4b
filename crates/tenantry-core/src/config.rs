//! What every configuration section shares.
//!
//! Each context defines its own section next to its service (`tenantry_identity::config`,
//! `tenantry_tenancy::config`, …): the type, its defaults and the checks serde cannot make.
//! The assembly (`tenantry_api::config::Config`) composes the sections into the one file
//! format, and the binary layers defaults → `tenantry.toml` → `TENANTRY_*` over it. A section
//! follows these conventions, so the composed whole behaves as one strict type:
//!
//! - `#[serde(deny_unknown_fields, default)]`: a misspelt key fails start-up naming it, and a
//!   missing one takes the section's `Default`;
//! - secrets are [`SecretString`]s (redacted `Debug`) and serialize through [`secret_as_unset`];
//! - `Serialize` as well, so the composed defaults can be listed as dotted keys (the README's
//!   configuration table is checked against them).

use secrecy::SecretString;
use serde::Serializer;

/// Serializes a secret as if it were unset: `Serialize` on configuration exists to list keys
/// and defaults, and must never carry a secret's value anywhere.
pub fn secret_as_unset<S: Serializer>(
    _secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_none()
}
