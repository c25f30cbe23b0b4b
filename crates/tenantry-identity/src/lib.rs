//! Identity: user accounts, passwords, sessions, access and refresh tokens, signing keys,
//! e-mail verification and password recovery, TOTP, login throttling, security events, and
//! tokens of external OpenID Connect issuers.

mod admin;
pub mod config;
pub mod directory;
mod error;
pub mod http;
mod keys;
mod login;
mod mfa;
pub mod migrations;
mod model;
pub mod oidc;
mod password;
mod prune;
mod reauth;
mod recovery;
mod security;
mod service;
mod sessions;
mod throttle;
mod tokens;

pub use admin::{AdminUser, UserFilter};
pub use config::{AuthConfig, OidcProviderConfig};
pub use error::IdentityError;
pub use keys::{KeyRing, RELOAD_INTERVAL, Rotation, UNKNOWN_KID_RELOAD_GAP};
pub use mfa::{RECOVERY_CODES, TotpEnrollment};
pub use model::{SessionView, User, UserStatus, UserView};
pub use password::PasswordHasher;
pub use prune::{Pruned, periodic_tasks};
pub use security::{SecurityEvent, SecurityEventKind};
pub use service::{
    Authenticated, ClientInfo, Credential, Identity, NewUser, ProfileChange, TokenPair,
};
pub use tokens::{LEEWAY_SECS, REFRESH_PREFIX, TokenSettings};
/// One-time link tokens (256 random bits, mailed, stored as SHA-256) for other contexts' links.
pub use tokens::{digest as link_token_digest, new_link_token};
