//! The pallet's logic, one file per topic; the calls in `lib.rs` delegate here.

#[cfg(any(feature = "try-runtime", test))]
mod invariants;
mod offer;
mod queries;
mod stream;
mod upload_token;
