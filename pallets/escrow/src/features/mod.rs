//! The pallet's logic, one file per concern: the calls in `lib.rs` check the origin and
//! delegate to the `do_*` functions here; `invariants.rs` holds the `try_state` checks and
//! `queries.rs` the runtime-API reads.

pub mod agenda;
pub mod claims;
pub mod disputes;
pub mod heads;
#[cfg(any(feature = "try-runtime", test))]
pub mod invariants;
pub mod keys;
pub mod purchase;
pub mod queries;
pub mod reaping;
pub mod settlement;
