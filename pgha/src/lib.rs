//! pgha: the PostgreSQL tier's decisions (see [`rules`]; how a node starts,
//! [`start`]; when a running node stops, [`supervise`]) and the Galera
//! rules of the wordpress stack (the bootstrap election, [`galera`]; whom a
//! starting node joins and what it keeps aside, [`galera_join`]) as pure
//! functions, so that each failure story is a row of a table test, not a
//! branch of an entrypoint that only the hour-long swarm suite runs.

pub mod failover;
pub mod galera;
pub mod galera_join;
pub mod lines;
pub mod lsn;
pub mod partners;
pub mod pool;
pub mod recover;
pub mod rules;
pub mod start;
pub mod supervise;
pub mod waldump;

pub use lsn::Lsn;
