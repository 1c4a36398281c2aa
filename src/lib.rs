//! opslog: activity logs for an integration platform. See README.md and docs/architecture.md.

pub mod alerts;
pub mod app;
pub mod archive;
pub mod auth;
pub mod config;
pub mod destination;
pub mod dispatch;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod index;
pub mod ingest;
pub mod login_limit;
pub mod metrics;
pub mod model;
pub mod otel;
pub mod outbox;
pub mod permissions;
pub mod query_params;
pub mod retention;
pub mod scope;
pub mod secrets;
pub mod session;
pub mod settings;
pub mod snippet;
pub mod store;
pub mod ui;
pub mod views;
pub mod write;
