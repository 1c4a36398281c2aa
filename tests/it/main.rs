//! Integration tests: each starts the real daemon on 127.0.0.1:0 with a temp dir and talks HTTP.

mod auth;
mod bad_input;
mod lifecycle;
mod process;
mod receiver;
mod support;
mod webhook_crash;
mod webhooks;
