//! The write path: validation of what clients send (`input`), the operation state machine
//! (`lifecycle`), and the single group-committing writer (`writer`).

pub mod input;
pub mod lifecycle;
pub mod writer;

pub use writer::{Command, Imported, Outcome, Requeue, SettingsChange, WriteError, Writer};
