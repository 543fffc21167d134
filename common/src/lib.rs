//! What the vote, worker and result services share.
//!
//! The vote record and its queue encoding live here so that the producer
//! (vote) and the consumer (worker) cannot drift apart; the schema lives here
//! so that the writer (worker) and the reader (result) agree on it.

pub mod backoff;
pub mod choice;
pub mod config;
pub mod db;
pub mod html;
pub mod http;
pub mod metrics;
pub mod queue;
pub mod redis_conn;
pub mod schema;
pub mod sentinel;
pub mod service;
pub mod telemetry;

pub use choice::{Choice, VoterId};
