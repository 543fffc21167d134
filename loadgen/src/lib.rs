//! The failover tests' load generator and auditor: votes through the
//! deployed stack, records every answer, then checks that PostgreSQL holds
//! each voter's latest acknowledged vote and measures how long a fault kept
//! votes from being acknowledged.

pub mod audit;
pub mod record;
pub mod run;
pub mod schedule;
