//! rollcall's fleet files: reading a fleet file and the inventories it imports,
//! validating them into a [`rollcall_core::Fleet`] with errors that point at the file,
//! line and field, keeping a run's files as read ([`sources`]), and writing a fleet
//! back as TOML or CSV ([`write`]). All of rollcall's file reading for fleets is here;
//! `rollcall-core` reads no files.

pub mod config;
pub mod error;
pub mod import;
pub mod limits;
pub mod sources;
pub mod spanned;
pub mod write;

pub use config::{LoadOptions, load_file, load_str};
pub use error::{ConfigError, ConfigErrors, Errors, SourceFile};
pub use spanned::field_path_at;
