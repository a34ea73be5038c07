# Shared environment for every FAST DATA script: one compiler (Debian's rustc 1.96 through
# the wasm sysroot overlay) and one persistent target dir outside the clone.
export FASTDATA_HOME="${FASTDATA_HOME:-/var/tmp/fastdata}"
export FASTDATA_WASM_SYSROOT="${FASTDATA_WASM_SYSROOT:-$FASTDATA_HOME/wasm-sysroot}"
export FASTDATA_TARGET="${FASTDATA_TARGET:-$FASTDATA_HOME/target}"
# The VerneMQ release scripts/setup builds (bin/vernemq; each broker runs a copy of it).
export FASTDATA_VERNEMQ="${FASTDATA_VERNEMQ:-$FASTDATA_HOME/vernemq/2.1.2}"
export CARGO_TARGET_DIR="$FASTDATA_TARGET"
export CARGO_BUILD_RUSTC="$FASTDATA_WASM_SYSROOT/bin/rustc"
export CARGO_TARGET_WASM32V1_NONE_LINKER=wasm-ld-22
# Debian's cargo and clippy first, so `cargo clippy` matches the compiler.
export PATH="/usr/bin:$PATH"
export CARGO=/usr/bin/cargo
FASTDATA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FASTDATA_ROOT
# Lints run inside the one build: clippy-driver compiles the workspace's own crates (not
# dependencies, not the wasm runtime), so tests, binaries and clippy share every artifact.
export RUSTC_WORKSPACE_WRAPPER="$FASTDATA_HOME/bin/clippy-wrap"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
export FASTDATA_BIN="$FASTDATA_TARGET/release"
export WASM_BUILD_WORKSPACE_HINT="$FASTDATA_ROOT"
# frame-benchmarking-cli (in the node for `benchmark pallet`) carries a second wasm runtime
# that only `benchmark storage` uses; we never run that, so its wasm is not built.
export SKIP_FRAME_STORAGE_ACCESS_TEST_RUNTIME_WASM_BUILD=1
# litep2p's WebRTC (str0m) asks for a vendored OpenSSL, a 4-minute C build on 2 cores; link
# Debian's libssl (scripts/setup installs libssl-dev) instead.
export OPENSSL_NO_VENDOR=1
