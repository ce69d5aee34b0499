#!/usr/bin/env bash
# secure_cli_expect.sh SERVER CLI FIXTURE_INDEX: starts timbre-server with TLS, client
# certificates and bearer tokens from its flags, and checks what the timbre CLI gets with and
# without its TLS and token flags.
set -u
source "$(dirname "$0")/server_process.sh"
server="$1"; cli="$2"; fixture="$3"
certs="$work/certs"
bash "$(dirname "$0")/../data/make_test_certs.sh" "$certs" || fail "cannot make the test certificates"
(umask 077
 echo "user-token-0123456789abcdef" >"$work/user.tokens"
 echo "admin-token-0123456789abcdef" >"$work/admin.tokens")

start_server "$server" "$fixture" --tls_cert="$certs/server.pem" --tls_key="$certs/server.key" \
  --tls_client_ca="$certs/ca.pem" --token_file="$work/user.tokens" \
  --admin_token_file="$work/admin.tokens" --drain_grace=0s
grep -q "\[warning\]" "$work/log" && fail "a secured server should not warn"

tls=(--server="127.0.0.1:$port" --timeout=10s --tls_ca="$certs/ca.pem"
     --tls_cert="$certs/client.pem" --tls_key="$certs/client.key")
output=$("$cli" speakers "${tls[@]}" --token_file="$work/user.tokens" 2>&1) \
  || fail "the CLI with TLS and a user token failed: $output"
grep -q "^rvc " <<<"$output" || fail "speaker 'rvc' is not listed: $output"
output=$("$cli" speakers "${tls[@]}" 2>&1) && fail "a call without a token succeeded"
grep -q "UNAUTHENTICATED" <<<"$output" || fail "no UNAUTHENTICATED without a token: $output"
output=$("$cli" speakers --server="127.0.0.1:$port" --timeout=5s 2>&1) && fail "a plain-text call succeeded"
grep -q "UNAVAILABLE" <<<"$output" || fail "no UNAVAILABLE in plain text: $output"
stop_server TERM
[ "$code" -eq 0 ] || fail "exit code $code after SIGTERM, expected 0"
echo "ok: TLS, client certificates and tokens from the flags"
