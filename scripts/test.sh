#!/usr/bin/env bash
# Runs the whole Tenantry test suite: formatting, clippy, then every test of the workspace.
#
#   scripts/test.sh [extra arguments for the test runner]
#   e.g. scripts/test.sh -E 'test(tenant)'        (cargo-nextest filter expression)
#
# Environment (all optional, passed through to the tests):
#   TENANTRY_TEST_SKIP_LINT=1     skip `cargo fmt --check` and `cargo clippy`
#   TENANTRY_TEST_STRICT=1        a missing component (e.g. PostgreSQL) fails tests instead of
#                                 skipping them; .ci/run sets this
#   TENANTRY_TEST_DATABASE_URL    superuser URL of an existing PostgreSQL server to create the
#                                 per-test databases on (they are not dropped afterwards)
#   TENANTRY_TEST_SHARED_PG=0     do not start the shared throw-away cluster (see below)
#   TENANTRY_TEST_SMTP_URL / TENANTRY_TEST_SMTP_DIR
#                                 an SMTP server for the mail tests and the directory where it
#                                 stores messages (default: one started here, scripts/lib/smtp_sink.py)
#   TENANTRY_TEST_S3_URL          http://ACCESS_KEY:SECRET@HOST:PORT of an S3-compatible server for
#                                 the storage tests (default: s3s-fs started here, scripts/lib/s3.sh)
#
# What it installs, only when missing: the PostgreSQL server binaries (apt-get), the rustfmt /
# clippy components (rustup), aiosmtpd and schemathesis (PyPI, into virtual environments under
# target/test-tools/) and the s3s-fs S3 server (crates.io, `cargo install` into
# target/test-tools/s3s: a few minutes the first time). cargo-nextest is used when installed,
# `cargo test` otherwise.
#
# After the tests (unless specific tests were selected), schemathesis fuzzes the real server
# binary over /openapi.json on SQLite and on PostgreSQL (scripts/lib/schemathesis.sh): any 5xx
# or any response the document does not describe fails the run. SCHEMATHESIS_MAX_EXAMPLES
# (default 10) and SCHEMATHESIS_SEED tune its quick profile.
#
# Unless TENANTRY_TEST_DATABASE_URL is set, one throw-away PostgreSQL cluster is started for the
# whole run and exported as TENANTRY_TEST_DATABASE_URL, so that test processes (nextest runs one
# per test) do not each start their own; it is stopped and deleted when this script exits. If it
# cannot be started, tenantry-testkit falls back to one cluster per test process.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

# shellcheck source=lib/postgres.sh
. "scripts/lib/postgres.sh"
# shellcheck source=lib/smtp.sh
. "scripts/lib/smtp.sh"
# shellcheck source=lib/s3.sh
. "scripts/lib/s3.sh"
# shellcheck source=lib/schemathesis.sh
. "scripts/lib/schemathesis.sh"

ensure_rust_component() { # <cargo subcommand> <rustup component>
    if ! cargo "$1" --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            echo "Installing the $2 component."
            rustup component add "$2"
        else
            echo "ERROR: 'cargo $1' is not available and rustup is not installed." >&2
            exit 1
        fi
    fi
}

step "Checking prerequisites"
ensure_postgres
if [ "${TENANTRY_TEST_SKIP_LINT:-0}" != 1 ]; then
    ensure_rust_component fmt rustfmt
    ensure_rust_component clippy clippy
fi
if cargo nextest --version >/dev/null 2>&1; then
    RUNNER=nextest
    echo "Test runner: $(cargo nextest --version 2>/dev/null | head -n 1)"
else
    RUNNER=cargo-test
    echo "Test runner: cargo test (cargo-nextest is not installed)"
fi
echo "TENANTRY_TEST_STRICT=${TENANTRY_TEST_STRICT:-<unset>}"

if [ "${TENANTRY_TEST_SKIP_LINT:-0}" = 1 ]; then
    step "Skipping cargo fmt and cargo clippy (TENANTRY_TEST_SKIP_LINT=1)"
else
    step "cargo fmt --all -- --check"
    cargo fmt --all -- --check

    step "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings
fi

step "Starting PostgreSQL for the tests"
start_shared_postgres

step "Starting the SMTP server for the tests"
start_smtp_sink || warn "no shared SMTP server; mail tests start their own or skip"
trap 'stop_smtp_sink; stop_shared_postgres' EXIT

step "Starting the S3 server for the tests"
start_s3_server || warn "no shared S3 server; storage tests start their own or skip"
trap 'stop_s3_server; stop_smtp_sink; stop_shared_postgres' EXIT

status=0
if [ "$RUNNER" = nextest ]; then
    step "cargo nextest run --workspace --no-fail-fast $*"
    cargo nextest run --workspace --no-fail-fast "$@" || status=$?
    # nextest does not run doc tests; run them too, unless the caller selected specific tests.
    if [ "$#" -eq 0 ]; then
        step "cargo test --workspace --doc"
        cargo test --workspace --doc || status=$?
    fi
else
    step "cargo test --workspace --no-fail-fast $*"
    cargo test --workspace --no-fail-fast "$@" || status=$?
fi

# The whole API against its own document, on both backends (a few minutes); skipped when the
# caller selected specific tests.
if [ "$#" -eq 0 ]; then
    step "schemathesis: /openapi.json conformance and no 5xx, on SQLite and PostgreSQL"
    run_schemathesis || status=$((status == 0 ? 1 : status))
else
    step "Skipping schemathesis (specific tests selected)"
fi

if [ "$status" -eq 0 ]; then
    step "All checks passed"
else
    step "FAILED (exit status $status)"
fi
exit "$status"
