//! rollcall's sans-IO core: the fleet model, config loading and validation, the
//! planner and its independent auditor. No tokio, no network; the only I/O is
//! reading the fleet file and the inventories it imports.

pub mod audit;
pub mod budget;
pub mod config;
pub mod engine;
pub mod error;
pub mod generate;
pub mod import;
pub mod limits;
pub mod model;
pub mod plan;
pub mod report;
pub mod select;
pub mod simworld;
pub mod sources;

pub use config::{LoadOptions, load_file, load_str};
pub use error::{ConfigError, ConfigErrors};
pub use model::*;
