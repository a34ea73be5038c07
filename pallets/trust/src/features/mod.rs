//! The pallet's logic, one file per concern: the calls in `lib.rs` check the origin and
//! delegate to the `do_*` functions here; `invariants.rs` holds the `try_state` checks and
//! `queries.rs` the runtime-API reads.

#[cfg(any(feature = "try-runtime", test))]
mod invariants;
mod queries;
mod rating;
mod score;
