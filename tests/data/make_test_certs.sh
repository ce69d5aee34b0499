#!/usr/bin/env bash
# make_test_certs.sh DIR: makes the TLS files of the security tests in DIR with the openssl tool:
#   ca.pem                      test CA
#   server.pem, server.key      server certificate for localhost and 127.0.0.1, signed by the CA
#   client.pem, client.key      client certificate signed by the CA
#   other_ca.pem                a second CA
#   other_server.pem/.key       server certificate for localhost and 127.0.0.1, signed by the
#                               second CA (what a server rotates to)
#   other_client.pem/.key       client certificate signed by the second CA
# EC P-256 keys, valid for 2 days: made fresh for each test run, never committed.
set -euo pipefail
out="$1"
mkdir -p "$out"
cd "$out"
quiet() {
  local output
  output=$("$@" 2>&1) || { echo "make_test_certs: '$*' failed: $output" >&2; exit 1; }
}

new_key() { quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# new_ca NAME CN
new_ca() {
  new_key "$1.key"
  quiet openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

# new_leaf NAME CA CN EXTENSIONS
new_leaf() {
  new_key "$1.key"
  quiet openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$3"
  printf '%s\n' "$4" >"$1.ext"
  quiet openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
    -out "$1.pem" -days 2 -extfile "$1.ext"
  rm -f "$1.csr" "$1.ext"
}

new_ca ca "timbre test CA"
new_ca other_ca "timbre other test CA"
server_extensions="subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
new_leaf server ca localhost "$server_extensions"
new_leaf other_server other_ca localhost "$server_extensions"
new_leaf client ca "timbre test client" "extendedKeyUsage=clientAuth"
new_leaf other_client other_ca "timbre other test client" "extendedKeyUsage=clientAuth"
rm -f ./*.srl
chmod 600 ./*.key
