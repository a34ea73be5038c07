//! `fastdata-test-support`: the harness the operator daemon's integration tests, the SDK's
//! tests, the end-to-end tests, the demo and the benchmarks put next to each daemon. Not part
//! of the daemon: nothing in `fastdata-operator` depends on it.
//!
//! - [`mosquitto`]: a Mosquitto broker with the dynamic-security plugin (and optionally a TLS
//!   listener) as a child process, from Debian's paths (`scripts/setup` installs it), and
//!   [`mosquitto::free_port`].

pub mod mosquitto;
