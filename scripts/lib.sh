# Helpers shared by scripts/demo and scripts/test. Source after env.sh.

say()  { printf '\033[1;34m[%s]\033[0m %s\n' "${SCRIPT_NAME:-fastdata}" "$*"; }
fail() { printf '\033[1;31m[%s] FAILED:\033[0m %s\n' "${SCRIPT_NAME:-fastdata}" "$*" >&2; exit 1; }

# Runs a command, printing how long it took.
timed() {
  local label="$1"; shift
  local t0=$SECONDS
  "$@" || fail "$label (exit $?)"
  say "$label: $((SECONDS - t0)) s"
}

# Builds the workspace's default members (runtime native + wasm, dev node, daemons, tools,
# tests; not the collator) in the shared release profile. Always the same package and target
# selection, so features unify the same way in every run and no dependency is compiled twice.
build_all() {
  say "building the workspace (runtime wasm, node, tools, tests); cold: ~56 min on 2 cores on a brand-new machine"
  # --timings: per-crate times in $CARGO_TARGET_DIR/cargo-timings/cargo-timing.html
  timed "build workspace" cargo build --release --locked --all-targets --timings
}

# Builds fastdata-collator (polkadot-omni-node-lib with its embedded relay-chain node and
# RocksDB, and frame-benchmarking-cli) for relay-backed networks and `scripts/weights`. Its
# dependencies unify to other features than build_all's, so they compile once more (both
# sets stay in the target dir): about an hour cold.
build_collator() {
  timed "build fastdata-collator" cargo build --release --locked -p fastdata-collator
}

NODE_PID=""
# start_node <base-path> <rpc-port> [extra args…]: starts a dev node, waits for block 2.
start_node() {
  local base="$1" port="$2"; shift 2
  local log="$FASTDATA_HOME/logs/node-$port.log"
  mkdir -p "$FASTDATA_HOME/logs"
  if curl -s -o /dev/null "http://127.0.0.1:$port" 2>/dev/null; then
    fail "port $port is in use (another node running?); stop it or set FASTDATA_RPC_PORT"
  fi
  "$FASTDATA_BIN/fastdata-node" --dev --dev-block-time "${FASTDATA_BLOCK_MS:-1000}" \
    --base-path "$base" --rpc-port "$port" --port "$((port + 21000))" --rpc-cors all --no-prometheus \
    --no-telemetry --name fastdata-dev "$@" >"$log" 2>&1 &
  NODE_PID=$!
  say "fastdata-node pid $NODE_PID, RPC ws://127.0.0.1:$port, log $log"
  local i
  for i in $(seq 1 120); do
    kill -0 "$NODE_PID" 2>/dev/null || { tail -20 "$log" >&2; fail "node exited during start"; }
    local n
    n=$(rpc "$port" chain_getHeader | sed -n 's/.*"number":"\(0x[0-9a-f]*\)".*/\1/p' || true)
    if [ -n "$n" ] && [ $((n)) -ge 2 ]; then say "node is producing blocks (#$((n)))"; return 0; fi
    sleep 1
  done
  tail -20 "$log" >&2
  fail "node did not reach block 2 within 120 s"
}

stop_node() {
  if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -INT "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true
    say "node stopped"
  fi
  NODE_PID=""
}

# rpc <port> <method> [params-json]
rpc() {
  curl -s --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"$2\",\"params\":${3:-[]}}" \
    "http://127.0.0.1:$1" 2>/dev/null
}

# Installs the polkadot.js test dependencies (npm cache outside the clone).
npm_install() {
  local dir="$1"
  say "npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --silent --cache "$FASTDATA_HOME/npm-cache") \
    || fail "npm ci in $dir"
}

# test_binary <name>: path of the workspace's integration-test binary <name> (built if needed,
# with the same package selection as build_all so nothing recompiles).
test_binary() {
  cargo test --release --locked --test "$1" --no-run --message-format=json 2>/dev/null \
    | grep '"kind":\["test"\]' | grep "\"name\":\"$1\"" \
    | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4 | grep .
}

LANE_PIDS=()
LANE_NAMES=()
LANE_LOGS=()
# lane <rpc-port> <command…>: runs the command in the background against its own fresh dev
# node (FASTDATA_WS points at it); output goes to $FASTDATA_HOME/logs/lane-<port>.log.
lane() {
  local port="$1"; shift
  local log="$FASTDATA_HOME/logs/lane-$port.log"
  (
    BASE=$(mktemp -d "$FASTDATA_HOME/live-$port-XXXXXX")
    trap 'stop_node; rm -rf "$BASE"' EXIT
    t0=$SECONDS
    start_node "$BASE" "$port"
    export FASTDATA_WS="ws://127.0.0.1:$port"
    "$@"
    say "lane $* finished in $((SECONDS - t0)) s" >&2
  ) >"$log" 2>&1 &
  LANE_PIDS+=("$!")
  LANE_NAMES+=("$*")
  LANE_LOGS+=("$log")
  say "lane started: $* on port $port (log $log)"
}

# wait_lanes: waits for every lane; prints the tail of each failed lane's log; non-zero if any failed.
wait_lanes() {
  local i rc=0
  for i in "${!LANE_PIDS[@]}"; do
    if wait "${LANE_PIDS[$i]}"; then
      say "lane passed: ${LANE_NAMES[$i]}"
    else
      rc=1
      printf '\033[1;31m[%s] lane failed:\033[0m %s (log %s)\n' "${SCRIPT_NAME:-fastdata}" \
        "${LANE_NAMES[$i]}" "${LANE_LOGS[$i]}" >&2
      tail -40 "${LANE_LOGS[$i]}" >&2 || true
    fi
  done
  LANE_PIDS=(); LANE_NAMES=(); LANE_LOGS=()
  return $rc
}
