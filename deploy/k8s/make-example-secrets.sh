#!/usr/bin/env bash
# Writes throwaway credentials for trying the example overlay: a CA, a server certificate for the
# balancer's Service signed by it, and one user and one admin bearer token.
#   deploy/k8s/make-example-secrets.sh DIR [NAMESPACE]     (NAMESPACE: timbre)
# Writes DIR/ca.crt (give it to the clients: timbre --tls_ca), DIR/tls.crt, DIR/tls.key,
# DIR/user.tokens, DIR/admin.tokens, readable by their owner only. Refuses to overwrite any of
# them and writes all or nothing. For production, put your own certificate and tokens there (or
# let cert-manager or your secret store make the two Secrets) instead.
set -euo pipefail
usage() { echo "usage: $0 DIR [NAMESPACE]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
dir=$1
namespace=${2:-timbre}
[[ "$namespace" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] \
  || { echo "make-example-secrets: '$namespace' is not a Kubernetes namespace name" >&2; exit 2; }
files=(ca.crt tls.crt tls.key user.tokens admin.tokens)
for f in "${files[@]}"; do
  [ ! -e "$dir/$f" ] || { echo "make-example-secrets: $dir/$f exists; not overwriting it" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "make-example-secrets: needs openssl" >&2; exit 1; }
mkdir -p "$dir"
work=$(mktemp -d "$dir/.secrets-XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 077
(
  cd "$work"
  openssl req -x509 -newkey rsa:3072 -nodes -days 30 -subj "/CN=timbre example CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:3072 -nodes -subj "/CN=timbre.$namespace.svc" \
    -keyout tls.key -out tls.csr 2>/dev/null
  printf 'subjectAltName=DNS:timbre,DNS:timbre.%s,DNS:timbre.%s.svc,DNS:timbre.%s.svc.cluster.local\n' \
    "$namespace" "$namespace" "$namespace" > san.ext
  openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile san.ext -out tls.crt 2>/dev/null
  { echo "# user tokens, one per line"; openssl rand -hex 32; } > user.tokens
  { echo "# admin tokens, one per line"; openssl rand -hex 32; } > admin.tokens
)
for f in "${files[@]}"; do mv "$work/$f" "$dir/$f"; done
echo "make-example-secrets: wrote ${files[*]} in $dir (CA and certificate valid 30 days)"
