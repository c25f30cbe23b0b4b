# Shell helpers shared by scripts/test.sh: a real S3-compatible server on loopback for the
# storage tests. Source it from the repository root (after lib/postgres.sh, for `warn`).
#
# The server is s3s-fs (crates.io, `cargo install s3s-fs --features binary`), installed once
# into $S3S_ROOT. It stores objects as files and checks SigV4 signatures, presigned URLs
# included (expiry and tampering), which the download tests rely on. (moto_server, the other
# well-known test server, accepts presigned URLs without checking their signature.)

S3S_ROOT="${S3S_ROOT:-target/test-tools/s3s}"
S3S_FS_VERSION="0.14.1" # the next releases need Rust 1.96
S3_TEST_ACCESS_KEY="tenantry-test"
S3_TEST_SECRET_KEY="tenantry-test-secret"

# Installs s3s-fs into $S3S_ROOT unless it is already there (a release build of a few
# minutes, once per checkout).
ensure_s3_server() {
    if [ -x "$S3S_ROOT/bin/s3s-fs" ] && "$S3S_ROOT/bin/s3s-fs" --version 2>/dev/null |
        grep -q "$S3S_FS_VERSION"; then
        echo "S3 test server: s3s-fs $S3S_FS_VERSION in $S3S_ROOT"
        return 0
    fi
    echo "Installing s3s-fs $S3S_FS_VERSION into $S3S_ROOT (crates.io; a few minutes, once)."
    # Without CARGO_TARGET_DIR, cargo builds in a temporary directory and removes it.
    env -u CARGO_TARGET_DIR cargo install --quiet --locked --force \
        --root "$S3S_ROOT" --features binary --version "$S3S_FS_VERSION" s3s-fs
}

# Starts one server for the whole run and exports TENANTRY_TEST_S3_URL
# (`http://ACCESS_KEY:SECRET@127.0.0.1:PORT`, read by tenantry-testkit; every test creates
# its own bucket). Stopped by stop_s3_server.
start_s3_server() {
    if [ -n "${TENANTRY_TEST_S3_URL:-}" ]; then
        echo "Using the S3 server from TENANTRY_TEST_S3_URL."
        return 0
    fi
    ensure_s3_server || return 1
    S3_SERVER_DIR="$(mktemp -d -t tenantry-s3-XXXXXX)"
    local port attempt
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 40000))
        "$S3S_ROOT/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
            --access-key "$S3_TEST_ACCESS_KEY" --secret-key "$S3_TEST_SECRET_KEY" \
            "$S3_SERVER_DIR" >"$S3_SERVER_DIR.log" 2>&1 &
        S3_SERVER_PID=$!
        for _ in $(seq 1 100); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                export TENANTRY_TEST_S3_URL="http://$S3_TEST_ACCESS_KEY:$S3_TEST_SECRET_KEY@127.0.0.1:$port"
                echo "S3 test server (s3s-fs) on http://127.0.0.1:$port (data in $S3_SERVER_DIR)"
                return 0
            fi
            kill -0 "$S3_SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        # Port taken (the server exited) or no answer: try another port.
        kill "$S3_SERVER_PID" 2>/dev/null || true
        wait "$S3_SERVER_PID" 2>/dev/null || true
        S3_SERVER_PID=""
    done
    warn "the S3 test server did not start: $(cat "$S3_SERVER_DIR.log")"
    return 1
}

stop_s3_server() {
    if [ -n "${S3_SERVER_PID:-}" ]; then
        kill "$S3_SERVER_PID" 2>/dev/null || true
        wait "$S3_SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "${S3_SERVER_DIR:-}" ]; then
        rm -rf "$S3_SERVER_DIR" "$S3_SERVER_DIR.log"
    fi
    return 0
}
