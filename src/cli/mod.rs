//! The query commands (`search`, `ops`, `tail`), `export`/`import` and `erase`: a blocking HTTP client for a running daemon and
//! the terminal rendering of what it answers. Runs on the main thread with no async runtime; it
//! never opens the data dir, so it works against a daemon on another machine.

mod archive;
mod args;
mod client;
mod commands;
mod erase;
mod render;
mod tail;

pub use archive::{export, import, ExportArgs, ImportArgs};
pub use args::{OpsArgs, SearchArgs, TailArgs};
pub use commands::{ops, search};
pub use erase::{erase, EraseArgs};
pub use tail::tail;
