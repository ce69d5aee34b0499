#!/usr/bin/env bash
# Runs the Kubernetes balancer's haproxy.cfg (deploy/k8s/base) for real on loopback, with throwaway
# credentials, and checks its bearer-token rules and its routing by gRPC service path: no or an
# unknown token -> 401 (UNAUTHENTICATED), a user token on an admin method -> 403
# (PERMISSION_DENIED), health open to all, IndexBuilder calls to the builder backend and the rest to
# the serving backend. No replica runs and the cluster DNS is replaced by a loopback port where
# nothing answers, so admitted calls end 503 at the backend the log names.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
hapid=""
cleanup() { [ -z "$hapid" ] || kill "$hapid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- haproxy log:"; cat "$tmp/log" 2>/dev/null; exit 1; }

bash "$root/deploy/k8s/make-example-secrets.sh" "$tmp/secrets" timbre >/dev/null
cp "$tmp/secrets/tls.crt" "$tmp/secrets/tls.pem"
cp "$tmp/secrets/tls.key" "$tmp/secrets/tls.pem.key"
user=$(grep -v '^#' "$tmp/secrets/user.tokens" | head -1)
admin=$(grep -v '^#' "$tmp/secrets/admin.tokens" | head -1)

read -r grpc_port monitor_port dns_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)] + [socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
sed -e "s/^  bind :50051 /  bind 127.0.0.1:$grpc_port /" \
    -e "s/^  bind :8404\$/  bind 127.0.0.1:$monitor_port/" \
    -e "s/^  parse-resolv-conf\$/  nameserver none 127.0.0.1:$dns_port/" \
    "$root/deploy/k8s/base/haproxy.cfg" > "$tmp/haproxy.cfg"
grep -q "bind 127.0.0.1:$grpc_port " "$tmp/haproxy.cfg" && grep -q "nameserver none 127.0.0.1" "$tmp/haproxy.cfg" \
  || fail "haproxy.cfg no longer has the bind and resolvers lines this test rewrites"

POD_NAMESPACE=timbre CLUSTER_DOMAIN=cluster.local TIMBRE_TLS_DIR=$tmp/secrets TIMBRE_TOKEN_DIR=$tmp/secrets \
  haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/log" 2>&1 &
hapid=$!
ready=0
for _ in $(seq 1 100); do
  kill -0 "$hapid" 2>/dev/null || fail "haproxy exited"
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$monitor_port/healthz")" = 200 ]; then
    ready=1; break
  fi
  sleep 0.1
done
[ "$ready" = 1 ] || fail "haproxy's /healthz did not answer within 10 s"

passed=0
# expect CODE PATH [TOKEN]: a gRPC-style POST over TLS and HTTP/2 gets HTTP status CODE.
expect() {
  local want=$1 path=$2 token=${3:-} got
  local args=(--http2 -sk --cacert "$tmp/secrets/ca.crt" -o /dev/null -w '%{http_code} %{http_version}'
              -X POST -H 'content-type: application/grpc' -H 'te: trailers' --data-binary '')
  [ -z "$token" ] || args+=(-H "authorization: Bearer $token")
  got=$(curl "${args[@]}" "https://127.0.0.1:$grpc_port$path")
  local with="no token"
  [ -z "$token" ] || with="token ${token:0:6}..."
  [ "$got" = "$want 2" ] || fail "$path with $with: got HTTP '$got', expected '$want' over HTTP/2"
  echo "ok   $path with $with -> $want"
  passed=$((passed + 1))
}
expect 401 /timbre.v1.Timbre/Blend
expect 401 /timbre.v1.Timbre/Blend not-a-known-token-0123456789
expect 503 /timbre.v1.Timbre/Blend "$user"
expect 503 /timbre.v1.Timbre/BlendStream "$user"
expect 503 /timbre.v1.Timbre/GetSpeaker "$admin"
expect 403 /timbre.v1.Timbre/LoadSpeaker "$user"
expect 403 /timbre.v1.IndexBuilder/BuildIndex "$user"
expect 403 /timbre.v1.Timbre/SomeLaterMethod "$user"
expect 401 /timbre.v1.IndexBuilder/BuildIndex
expect 503 /timbre.v1.IndexBuilder/BuildIndex "$admin"
expect 503 /grpc.health.v1.Health/Check

kill "$hapid"; wait "$hapid" 2>/dev/null || true; hapid=""
# The httplog lines name the backend each admitted call went to.
grep -q '/timbre.v1.IndexBuilder/BuildIndex HTTP/2.0"' "$tmp/log" || fail "no log line for BuildIndex"
grep '/timbre.v1.IndexBuilder/BuildIndex HTTP/2.0"' "$tmp/log" | grep ' 503 ' | grep -q ' builder/<NOSRV> ' \
  || fail "the admitted BuildIndex call did not go to the builder backend"
grep '/timbre.v1.Timbre/Blend HTTP/2.0"' "$tmp/log" | grep ' 503 ' | grep -q ' serving/<NOSRV> ' \
  || fail "the admitted Blend call did not go to the serving backend"
echo "ok   IndexBuilder calls went to the builder backend, Blend to the serving backend"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
