#!/usr/bin/env bash
# One-command load benchmark: builds release binaries, then for SQLite and for PostgreSQL starts a
# fresh Tenantry server on loopback, seeds it through the API (50 tenants × 20 users, 100k projects)
# and measures GET /users/me, a project read by id, a list of 20, a create, login and a rotating
# refresh with wrk, printing req/s, p50/p99, server CPU seconds per 1k requests and peak RSS.
#
#   bash benches/run.sh                 # both backends
#   BENCH_BACKENDS=sqlite bash benches/run.sh
#   BENCH_PROJECTS=20000 BENCH_DURATION=10 bash benches/run.sh   # a quicker run
#   BENCH_SCENARIOS=login,refresh bash benches/run.sh              # some scenarios only
#   BENCH_TENANT_PER_SECOND=200 BENCH_SCENARIOS=noisy_neighbour bash benches/run.sh
#                                       # per-tenant limit on (off by default, like the per-IP ones)
#   BENCH_SCENARIOS=files bash benches/run.sh
#                                       # uploads and downloads of 1 MiB and 64 MiB files, dedup
#                                       # re-upload (local storage under the data directory; no seed)
# Binaries are taken from $CARGO_TARGET_DIR when it is set (default ./target).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=../scripts/lib/postgres.sh
. scripts/lib/postgres.sh

if ! command -v wrk >/dev/null 2>&1; then
    echo "Installing wrk (Debian package)."
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
cargo build --release -p tenantry -p tenantry-bench
BIN="${CARGO_TARGET_DIR:-target}/release"

PORT=$((40000 + RANDOM % 20000))
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    SERVER_PID=""
}
cleanup() { stop_server; stop_shared_postgres; }
trap cleanup EXIT

# Every load generator connects from 127.0.0.1: the per-address connection cap (256 by
# default) would refuse the floods' extra connections, so it is off here, like the rate limits.
run_backend() { # <label> [database url]
    local label="$1" url="${2:-}" data
    data="$(mktemp -d "${TMPDIR:-/tmp}/tenantry-bench.XXXXXX")"
    env TENANTRY_DATA_DIR="$data" TENANTRY_BIND="127.0.0.1:$PORT" TENANTRY_LOG=warn \
        TENANTRY_AUTH__ACCESS_TOKEN_TTL_SECS=7200 TENANTRY_DATABASE__MAX_CONNECTIONS=32 \
        TENANTRY_RATE_LIMITS__LOGIN_PER_MINUTE=0 TENANTRY_RATE_LIMITS__REGISTER_PER_HOUR=0 \
        TENANTRY_RATE_LIMITS__TOKEN_PER_MINUTE=0 \
        TENANTRY_RATE_LIMITS__TENANT_PER_SECOND="${BENCH_TENANT_PER_SECOND:-0}" \
        TENANTRY_RATE_LIMITS__API_KEY_PER_SECOND=0 \
        TENANTRY_HTTP__MAX_CONNECTIONS_PER_IP=0 \
        ${url:+TENANTRY_DATABASE_URL="$url"} "$BIN/tenantry" >"$data/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$BIN/tenantry-bench" --url "http://127.0.0.1:$PORT" --pid "$SERVER_PID" --label "$label" \
        --mail-dir "$data/mail" \
        --tenants "${BENCH_TENANTS:-50}" --users "${BENCH_USERS:-20}" --projects "${BENCH_PROJECTS:-100000}" \
        --duration "${BENCH_DURATION:-15}" --connections "${BENCH_CONNECTIONS:-64}" \
        ${BENCH_SCENARIOS:+--scenarios "$BENCH_SCENARIOS"}
    stop_server
    rm -rf "$data"
}

echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for backend in ${BENCH_BACKENDS:-sqlite postgres}; do
    case "$backend" in
        sqlite) run_backend sqlite ;;
        postgres)
            ensure_postgres
            # A durable cluster (fsync on), unlike the test suite's.
            PG_SERVER_OPTS="-c shared_buffers=256MB" start_shared_postgres
            run_backend postgres "${TENANTRY_TEST_DATABASE_URL%/postgres}/postgres"
            stop_shared_postgres
            ;;
        *) echo "unknown backend $backend" >&2; exit 2 ;;
    esac
done
