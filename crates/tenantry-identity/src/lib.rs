//! Identity: user accounts, passwords, sessions, access and refresh tokens, signing keys.

mod error;
mod keys;
pub mod migrations;
mod model;
mod password;
mod service;
mod sessions;
mod tokens;

pub use error::IdentityError;
pub use keys::{KeyRing, RELOAD_INTERVAL, Rotation, UNKNOWN_KID_RELOAD_GAP};
pub use model::{SessionView, User, UserStatus, UserView};
pub use password::PasswordHasher;
pub use service::{Authenticated, ClientInfo, Identity, NewUser, ProfileChange, TokenPair};
pub use tokens::{LEEWAY_SECS, REFRESH_PREFIX, TokenSettings};
