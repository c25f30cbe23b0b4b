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

pub mod account;
pub mod admin;
pub mod auth;
pub mod members;
pub mod mfa;
pub mod ops;
pub mod projects;
pub mod recovery;
pub mod settings;
pub mod tenants;
pub mod users;
