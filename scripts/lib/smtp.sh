# Shell helpers shared by scripts/test.sh: a real SMTP server (PyPI aiosmtpd, in a virtual
# environment under target/) on loopback for the tests. Source it from the repository root.

SMTP_VENV="${SMTP_VENV:-target/test-tools/smtp-venv}"
AIOSMTPD_VERSION="1.4.6"

# Installs aiosmtpd into $SMTP_VENV unless it is already there.
ensure_smtp_sink() {
    if [ -x "$SMTP_VENV/bin/python" ] && "$SMTP_VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
        echo "SMTP test server: aiosmtpd in $SMTP_VENV"
        return 0
    fi
    pip_install_venv "$SMTP_VENV" "aiosmtpd==$AIOSMTPD_VERSION" "the SMTP tests cannot run"
}

# Starts one SMTP server for the whole run and exports TENANTRY_TEST_SMTP_URL and
# TENANTRY_TEST_SMTP_DIR (tenantry-testkit reads them). Stopped by stop_smtp_sink.
start_smtp_sink() {
    if [ -n "${TENANTRY_TEST_SMTP_URL:-}" ]; then
        echo "Using the SMTP server from TENANTRY_TEST_SMTP_URL."
        return 0
    fi
    ensure_smtp_sink || return 1
    SMTP_SINK_DIR="$(mktemp -d -t tenantry-smtp-XXXXXX)"
    "$SMTP_VENV/bin/python" scripts/lib/smtp_sink.py --dir "$SMTP_SINK_DIR/mail" \
        --port-file "$SMTP_SINK_DIR/port" >"$SMTP_SINK_DIR/log" 2>&1 &
    SMTP_SINK_PID=$!
    for _ in $(seq 1 100); do
        [ -s "$SMTP_SINK_DIR/port" ] && break
        kill -0 "$SMTP_SINK_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -s "$SMTP_SINK_DIR/port" ]; then
        warn "the SMTP test server did not start: $(cat "$SMTP_SINK_DIR/log")"
        return 1
    fi
    export TENANTRY_TEST_SMTP_URL="smtp://tenantry:test-secret@127.0.0.1:$(cat "$SMTP_SINK_DIR/port")"
    export TENANTRY_TEST_SMTP_DIR="$SMTP_SINK_DIR/mail"
    echo "SMTP test server on $TENANTRY_TEST_SMTP_URL (messages in $TENANTRY_TEST_SMTP_DIR)"
}

stop_smtp_sink() {
    if [ -n "${SMTP_SINK_PID:-}" ]; then
        kill "$SMTP_SINK_PID" 2>/dev/null || true
        wait "$SMTP_SINK_PID" 2>/dev/null || true
    fi
    [ -n "${SMTP_SINK_DIR:-}" ] && rm -rf "$SMTP_SINK_DIR"
    return 0
}
