//! rollcall's sans-IO core: the fleet model, the planner and its independent
//! auditor, the engine state machine and the simulated world. No tokio, no
//! network, no files: reading and validating fleet files is `rollcall-fleet`'s.

pub mod audit;
pub mod budget;
pub mod engine;
pub mod generate;
pub mod guard;
pub mod model;
pub mod plan;
pub mod report;
pub mod select;
pub mod simworld;

pub use model::*;
