//! pgha: the PostgreSQL tier's decisions as pure functions (see [`rules`]),
//! so that each failure story is a row of a table test, not a branch of an
//! entrypoint that only the hour-long swarm suite runs.

pub mod lsn;
pub mod partners;
pub mod roles;
pub mod rules;
pub mod waldump;

pub use lsn::Lsn;
