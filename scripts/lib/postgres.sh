# Shell helpers shared by scripts/test.sh and benches/run.sh: locating the PostgreSQL server
# binaries and running a throw-away cluster on loopback (as user `postgres` when run as root).
# Source it from the repository root.

warn() { printf 'WARNING: %s\n' "$*" >&2; }

is_root() { [ "$(id -u)" = 0 ]; }

# Runs a command as root (directly, or through sudo when available).
as_root() {
    if is_root; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else return 1
    fi
}

# Creates the virtual environment <venv> afresh and installs <package==version> into it from
# PyPI; <purpose> names what is lost when that fails. Debian's python3 needs the python3-venv
# package for `python3 -m venv`: installed with apt-get when missing.
pip_install_venv() { # <venv> <package==version> <purpose>
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        echo "Installing python3 and python3-venv (apt-get)."
        { as_root apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                python3 python3-venv >/dev/null; } ||
            { warn "python3 with venv is missing and could not be installed: $3"; return 1; }
    fi
    echo "Installing $2 into $1 (PyPI)."
    rm -rf "$1"
    python3 -m venv "$1" &&
        "$1/bin/pip" install --quiet --disable-pip-version-check "$2"
}

# Prints the directory holding initdb and pg_ctl: PATH first, then the highest
# /usr/lib/postgresql/<version>/bin.
pg_bindir() {
    local initdb dir
    if initdb="$(command -v initdb 2>/dev/null)" && [ -x "$(dirname "$initdb")/pg_ctl" ]; then
        dirname "$initdb"
        return 0
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

ensure_postgres() {
    if [ -n "${TENANTRY_TEST_DATABASE_URL:-}" ]; then
        echo "Using the PostgreSQL server from TENANTRY_TEST_DATABASE_URL."
        return 0
    fi
    if pg_bindir >/dev/null; then
        echo "PostgreSQL server binaries: $(pg_bindir)"
        return 0
    fi
    echo "PostgreSQL server binaries (initdb, pg_ctl) not found; installing the postgresql package."
    if ! command -v apt-get >/dev/null 2>&1; then
        warn "apt-get is not available; install the PostgreSQL server manually (PostgreSQL tests will be skipped, or fail when TENANTRY_TEST_STRICT=1)."
        return 0
    fi
    if ! { as_root apt-get update &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; }; then
        warn "installing postgresql failed (PostgreSQL tests will be skipped, or fail when TENANTRY_TEST_STRICT=1)."
    fi
}

SHARED_PG_DIR=""
SHARED_PG_BINDIR=""
SHARED_PG_RUNAS=()

stop_shared_postgres() {
    if [ -n "$SHARED_PG_DIR" ]; then
        "${SHARED_PG_RUNAS[@]}" "$SHARED_PG_BINDIR/pg_ctl" -D "$SHARED_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$SHARED_PG_DIR"
        SHARED_PG_DIR=""
    fi
}

# Starts one throw-away cluster for the whole run and exports TENANTRY_TEST_DATABASE_URL.
start_shared_postgres() {
    if [ -n "${TENANTRY_TEST_DATABASE_URL:-}" ]; then
        echo "Using the server from TENANTRY_TEST_DATABASE_URL."
        return 0
    fi
    if [ "${TENANTRY_TEST_SHARED_PG:-1}" = 0 ]; then
        echo "Not starting a shared cluster (TENANTRY_TEST_SHARED_PG=0); each test process starts its own."
        return 0
    fi
    SHARED_PG_BINDIR="$(pg_bindir)" || { echo "No PostgreSQL server binaries; not starting a shared cluster."; return 0; }
    if is_root; then
        if ! id -u postgres >/dev/null 2>&1 || ! command -v runuser >/dev/null 2>&1; then
            warn "running as root without a 'postgres' user or runuser; not starting a shared cluster."
            return 0
        fi
        SHARED_PG_RUNAS=(runuser -u postgres --)
    else
        SHARED_PG_RUNAS=(env)
    fi
    SHARED_PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tenantry-pg-shared.XXXXXX")"
    trap stop_shared_postgres EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if is_root; then chown -R postgres "$SHARED_PG_DIR"; fi

    local data="$SHARED_PG_DIR/data" log="$SHARED_PG_DIR/log" locale port attempt initdb_ok=""
    for locale in C.UTF-8 C; do
        if (cd "$SHARED_PG_DIR" && "${SHARED_PG_RUNAS[@]}" "$SHARED_PG_BINDIR/initdb" -D "$data" \
            -U postgres -A trust -E UTF8 --locale="$locale" --no-sync >"$SHARED_PG_DIR/initdb.log" 2>&1); then
            initdb_ok=1
            break
        fi
    done
    if [ -z "$initdb_ok" ]; then
        warn "initdb failed; falling back to one cluster per test process:"
        cat "$SHARED_PG_DIR/initdb.log" >&2
        stop_shared_postgres
        return 0
    fi
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 40000))
        if (cd "$SHARED_PG_DIR" && "${SHARED_PG_RUNAS[@]}" "$SHARED_PG_BINDIR/pg_ctl" -D "$data" -w -t 60 -l "$log" \
            -o "-p $port -k '$SHARED_PG_DIR' -c listen_addresses=127.0.0.1 ${PG_SERVER_OPTS:--c fsync=off -c synchronous_commit=off -c full_page_writes=off} -c max_connections=400" \
            start >/dev/null 2>&1); then
            export TENANTRY_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
            echo "Shared PostgreSQL cluster: $TENANTRY_TEST_DATABASE_URL (in $SHARED_PG_DIR, removed on exit)"
            return 0
        fi
    done
    warn "pg_ctl start failed; falling back to one cluster per test process. Server log:"
    tail -n 20 "$log" >&2 || true
    stop_shared_postgres
}

