//! The pallet's logic, one file per topic; the calls in `lib.rs` delegate here.

mod assignment;
pub(crate) mod heads;
mod hosting;
#[cfg(any(feature = "try-runtime", test))]
mod invariants;
mod lifecycle;
mod liveness;
mod queries;
mod registration;
mod slashing;
