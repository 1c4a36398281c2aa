//! What clients send and the rules it follows: validation of requests into drafts (`input`),
//! the operation state machine (`lifecycle`), and the URL checks third parties make before they
//! send webhooks, with how a form body becomes a payload (`handshake`), and OTLP export requests
//! made into operations and messages (`otlp`). The writer that applies them is `write`.

pub mod handshake;
pub mod input;
pub mod lifecycle;
pub mod otlp;
