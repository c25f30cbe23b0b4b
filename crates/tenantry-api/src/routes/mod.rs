pub mod auth;
pub mod members;
pub mod ops;
pub mod projects;
pub mod tenants;
pub mod users;
