//! pgha: the PostgreSQL tier's decisions (see [`rules`]; how a node starts,
//! [`start`]; when a running node stops, [`supervise`]) and the Galera
//! bootstrap election of the wordpress stack (see [`galera`]) as pure
//! functions, so that each failure story is a row of a table test, not a
//! branch of an entrypoint that only the hour-long swarm suite runs.

pub mod failover;
pub mod galera;
pub mod lines;
pub mod lsn;
pub mod partners;
pub mod pool;
pub mod rules;
pub mod start;
pub mod supervise;
pub mod waldump;

pub use lsn::Lsn;
