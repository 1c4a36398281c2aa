//! Integration tests: each starts the real daemon on 127.0.0.1:0 with a temp dir and talks HTTP.
//! `otlp` drives the OTLP export sink against a real collector on loopback until the outbox wires
//! it into the daemon.

mod archive;
mod audit;
mod auth;
mod bad_input;
mod bench;
mod claim_fairness;
mod cli;
mod collector;
mod context;
mod contract;
mod crash_matrix;
mod csv_export;
mod dashboard;
mod dashboard_why;
mod disk_cap;
mod disk_full;
mod erase;
mod format_fixture;
mod least_privilege;
mod lifecycle;
mod limits;
mod logging;
mod mcp;
mod metrics;
mod module_graph;
mod nango;
mod notifiers;
mod openapi;
mod otel_export;
mod otlp;
mod otlp_ingest;
mod packaging;
mod process;
mod receiver;
mod retention;
mod search;
mod support;
mod trace_context;
mod views;
mod vocabulary;
mod webhook_crash;
mod webhooks;
