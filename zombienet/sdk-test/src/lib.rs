//! Only the test in `tests/` matters; see `zombienet/README.md`.
