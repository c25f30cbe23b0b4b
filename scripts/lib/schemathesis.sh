# Shell helpers shared by scripts/test.sh: schemathesis (PyPI, in a virtual environment under
# target/test-tools/) against the real server binary on SQLite and on PostgreSQL — no 5xx,
# and every response conforms to /openapi.json (status codes, content types, headers,
# schemas). Source it from the repository root after scripts/lib/postgres.sh; or run it
# directly: `bash scripts/lib/schemathesis.sh` (builds the binary, uses
# TENANTRY_TEST_DATABASE_URL for PostgreSQL when set).
#
# The quick profile: SCHEMATHESIS_MAX_EXAMPLES cases per operation and phase (default 10),
# a fixed SCHEMATHESIS_SEED, no shrinking. The server runs with its rate limits off (the
# fuzzer sends thousands of requests from one address to one tenant); see schemathesis_run.py.
# JUnit reports land in target/test-tools/schemathesis-reports/.

SCHEMATHESIS_VENV="${SCHEMATHESIS_VENV:-target/test-tools/schemathesis-venv}"
SCHEMATHESIS_VERSION="4.32.5"

# Installs schemathesis into $SCHEMATHESIS_VENV unless that version is already there.
ensure_schemathesis() {
    if [ -x "$SCHEMATHESIS_VENV/bin/st" ] &&
        [ "$("$SCHEMATHESIS_VENV/bin/st" --version 2>/dev/null)" = "st, version $SCHEMATHESIS_VERSION" ]; then
        echo "schemathesis $SCHEMATHESIS_VERSION in $SCHEMATHESIS_VENV"
        return 0
    fi
    pip_install_venv "$SCHEMATHESIS_VENV" "schemathesis==$SCHEMATHESIS_VERSION" "schemathesis cannot run"
}

# Runs schemathesis on SQLite, then on PostgreSQL (TENANTRY_TEST_DATABASE_URL). Returns
# non-zero on any failure; a missing schemathesis or PostgreSQL is a failure under
# TENANTRY_TEST_STRICT=1 and a skip (with a message) otherwise.
run_schemathesis() {
    local strict="${TENANTRY_TEST_STRICT:-0}" status=0 bin started
    if ! ensure_schemathesis; then
        if [ "$strict" = 1 ]; then
            echo "FAILED: schemathesis is not available (TENANTRY_TEST_STRICT=1)" >&2
            return 1
        fi
        echo "SKIPPED: schemathesis is not available"
        return 0
    fi
    bin="${CARGO_TARGET_DIR:-target}/debug/tenantry"
    echo "Building the server binary (cargo build -p tenantry)."
    cargo build --quiet -p tenantry || return 1
    local reports="target/test-tools/schemathesis-reports"
    rm -rf "$reports"
    started=$SECONDS
    echo "--- schemathesis on SQLite"
    "$SCHEMATHESIS_VENV/bin/python" scripts/lib/schemathesis_run.py --binary "$bin" \
        --backend sqlite --report-dir "$reports" \
        --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-10}" ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"} ||
        status=1
    echo "schemathesis on SQLite took $((SECONDS - started)) s"
    if [ -n "${TENANTRY_TEST_DATABASE_URL:-}" ] && command -v psql >/dev/null 2>&1; then
        started=$SECONDS
        echo "--- schemathesis on PostgreSQL"
        "$SCHEMATHESIS_VENV/bin/python" scripts/lib/schemathesis_run.py --binary "$bin" \
            --backend postgres --database-url "$TENANTRY_TEST_DATABASE_URL" --report-dir "$reports" \
            --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-10}" ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"} ||
            status=1
        echo "schemathesis on PostgreSQL took $((SECONDS - started)) s"
    elif [ "$strict" = 1 ]; then
        echo "FAILED: schemathesis on PostgreSQL needs TENANTRY_TEST_DATABASE_URL and psql (TENANTRY_TEST_STRICT=1)" >&2
        status=1
    else
        echo "SKIPPED: schemathesis on PostgreSQL (no TENANTRY_TEST_DATABASE_URL or no psql)"
    fi
    return "$status"
}

# Run directly: the schemathesis step alone.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    cd "$(dirname "${BASH_SOURCE[0]}")/../.."
    # shellcheck source=postgres.sh
    . scripts/lib/postgres.sh
    run_schemathesis
    exit $?
fi
