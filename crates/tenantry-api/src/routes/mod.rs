pub mod documents;
pub mod downloads;
pub mod files;
pub mod ops;
