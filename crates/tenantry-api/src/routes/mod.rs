/// Request bodies that carry secrets print only their shape.
macro_rules! redacted_debug {
    ($($ty:ident),*) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($ty), " { .. }"))
            }
        }
    )*};
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

pub mod account;
pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod invitations;
pub mod members;
pub mod mfa;
pub mod ops;
pub mod project_members;
pub mod projects;
pub mod recovery;
pub mod roles;
pub mod settings;
pub mod tenants;
pub mod users;
