#!/usr/bin/env bash
# drain_expect.sh SERVER CLI FIXTURE_INDEX: starts timbre-server on a free loopback port, checks
# that it answers and warns that it is unauthenticated, sends SIGTERM, and passes when the server
# drains, logs it and exits 0.
set -u
source "$(dirname "$0")/server_process.sh"
server="$1"; cli="$2"; fixture="$3"

start_server "$server" "$fixture" --drain_grace=300ms
"$cli" speakers --server="127.0.0.1:$port" --timeout=10s | grep -q "^rvc " || fail "speaker 'rvc' is not served"
expect_log "[warning] timbre: the server is unauthenticated"
stop_server TERM
[ "$code" -eq 0 ] || fail "exit code $code after SIGTERM, expected 0"
expect_log "SIGTERM: draining" "draining: health NOT_SERVING" "timbre-server stopped"
echo "ok: drained on SIGTERM and exited 0"
