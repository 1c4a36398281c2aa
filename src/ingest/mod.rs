//! What clients send and the rules it follows: validation of requests into drafts (`input`) and
//! the operation state machine (`lifecycle`). The writer that applies them is `write`.

pub mod input;
pub mod lifecycle;
