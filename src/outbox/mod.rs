//! The durable outbox (DESIGN.md sections 4-6): work that must leave the process, claimed, retried
//! and dead-lettered by a dispatcher on its own threads.
//!
//! This branch holds only the OTLP sink; the generic outbox and the webhook sink are issue #4.
//! Must not: be called from the async runtime's threads; sinks block on network I/O.

pub mod otlp;
