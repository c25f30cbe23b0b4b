#!/usr/bin/env bash
# Instructions per request of the hot read paths, counted by callgrind on the release server
# (SQLite): repeatable whatever else the machine is doing, unlike req/s on a shared VM.
#
#   bash benches/callgrind.sh               # me, read, list: 300 requests each after 50 warm-up
#   CALLGRIND_REQUESTS=1000 bash benches/callgrind.sh
#   CALLGRIND_KEEP=1 bash benches/callgrind.sh   # keep the profiles (callgrind_annotate them)
#
# The server runs under valgrind with instrumentation off; a member of a tenant with 200
# projects is seeded through the API, then for each scenario curl sends the warm-up requests on
# one keep-alive connection, instrumentation is switched on for the measured requests only, and
# the profile's total instruction count is divided by the number of requests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 2; }
cargo build --release -p tenantry
BIN="${CARGO_TARGET_DIR:-target}/release/tenantry"
REQUESTS="${CALLGRIND_REQUESTS:-300}"
WARMUP=50
PORT=$((40000 + RANDOM % 20000))
URL="http://127.0.0.1:$PORT"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/tenantry-callgrind.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [ -z "${CALLGRIND_KEEP:-}" ]; then rm -rf "$DATA"; else echo "profiles kept in $DATA"; fi
}
trap cleanup EXIT

env TENANTRY_DATA_DIR="$DATA" TENANTRY_BIND="127.0.0.1:$PORT" TENANTRY_LOG=warn \
    TENANTRY_AUTH__ACCESS_TOKEN_TTL_SECS=7200 \
    TENANTRY_RATE_LIMITS__LOGIN_PER_MINUTE=0 TENANTRY_RATE_LIMITS__REGISTER_PER_HOUR=0 \
    TENANTRY_RATE_LIMITS__TOKEN_PER_MINUTE=0 TENANTRY_RATE_LIMITS__TENANT_PER_SECOND=0 \
    TENANTRY_RATE_LIMITS__API_KEY_PER_SECOND=0 \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$DATA/callgrind.%p" \
    "$BIN" >"$DATA/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 600); do
    curl -fsS "$URL/ready" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "$URL/ready" >/dev/null || { cat "$DATA/server.log" >&2; exit 1; }

post() { # <path> <token or -> <json>
    local auth=()
    [ "$2" != - ] && auth=(-H "Authorization: Bearer $2")
    curl -fsS -X POST "$URL$1" "${auth[@]}" -H 'Content-Type: application/json' -d "$3"
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }

PASSWORD="callgrind password 1"
TENANT="$(post /api/v1/auth/register - "{\"email\":\"owner@bench.test\",\"password\":\"$PASSWORD\",\"first_name\":\"O\",\"last_name\":\"Wner\",\"tenant_name\":\"Bench\"}" | field "['tenant']['id']")"
OWNER="$(post /api/v1/auth/login - "{\"email\":\"owner@bench.test\",\"password\":\"$PASSWORD\"}" | field "['access_token']")"
post /api/v1/auth/register - "{\"email\":\"member@bench.test\",\"password\":\"$PASSWORD\",\"first_name\":\"M\",\"last_name\":\"Ember\"}" >/dev/null
# Membership follows the consent flow: verified addresses, an invitation, its acceptance.
link() { python3 benches/mail_link.py "$DATA/mail" "$1" "$2"; }
for who in owner member; do
    post /api/v1/auth/verify-email - "{\"token\":\"$(link "$who@bench.test" verify-email)\"}" >/dev/null
done
post "/api/v1/tenants/$TENANT/members" "$OWNER" '{"email":"member@bench.test","role":"member"}' >/dev/null
MEMBER="$(post /api/v1/auth/login - "{\"email\":\"member@bench.test\",\"password\":\"$PASSWORD\"}" | field "['access_token']")"
post "/api/v1/invitations/$(link member@bench.test invitations/accept)/accept" "$MEMBER" '{}' >/dev/null
PROJECT=""
for p in $(seq 1 200); do
    PROJECT="$(post "/api/v1/tenants/$TENANT/projects" "$OWNER" "{\"name\":\"project $p\",\"description\":\"seeded by callgrind.sh\"}" | field "['id']")"
done

# <count> <path>: that many GETs as the member on one keep-alive connection.
requests() {
    local config="$DATA/curl.cfg" i
    : >"$config"
    for i in $(seq 1 "$1"); do
        printf 'url = "%s%s"\noutput = "/dev/null"\n' "$URL" "$2" >>"$config"
    done
    curl -fsS -H "Authorization: Bearer $MEMBER" --config "$config"
}

total_ir() { # the summed instruction count of every profile dumped so far
    cat "$DATA"/callgrind.* | awk '/^totals:/ { s += $2 } END { print s + 0 }'
}

printf '%-28s %12s\n' scenario instr/request
for scenario in me read list; do
    case "$scenario" in
        me) path=/api/v1/users/me ;;
        read) path="/api/v1/tenants/$TENANT/projects/$PROJECT" ;;
        list) path="/api/v1/tenants/$TENANT/projects?limit=20" ;;
    esac
    requests "$WARMUP" "$path"
    before="$(total_ir)"
    callgrind_control -i on "$SERVER_PID" >/dev/null 2>&1
    requests "$REQUESTS" "$path"
    callgrind_control -i off "$SERVER_PID" >/dev/null 2>&1
    callgrind_control -d "$scenario" "$SERVER_PID" >/dev/null 2>&1
    after="$(total_ir)"
    printf '%-28s %12d\n' "$scenario" $(((after - before) / REQUESTS))
done
