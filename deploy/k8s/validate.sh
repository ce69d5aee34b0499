#!/usr/bin/env bash
# Checks deploy/k8s offline, as CI does: yamllint; `kubectl kustomize` renders the base, the example
# overlay (with throwaway credentials) and the Istio example; every rendered object is validated
# against the Kubernetes, prometheus-operator and Istio schemas and checked for fields their types
# do not know (validate/, npm packages pinned by validate/package-lock.json); the alert rules pass `promtool check rules` and their unit tests
# (validate/alerts-test.yaml); the balancer's haproxy.cfg passes `haproxy -c`.
#   deploy/k8s/validate.sh [WORK_DIR]       (default: build/k8s-validate; rendered files stay there)
# Needs kubectl (kustomize v4 or later), node and npm, yamllint, promtool, haproxy and openssl:
# deploy/install-deps.sh installs them. Exits non-zero at the first check that fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
k8s=$root/deploy/k8s
work=${1:-$root/build/k8s-validate}
mkdir -p "$work"
work=$(cd "$work" && pwd)

fail() { echo "k8s-validate: $*" >&2; exit 1; }
for tool in kubectl node npm yamllint promtool haproxy openssl; do
  command -v "$tool" >/dev/null || fail "$tool is missing (run deploy/install-deps.sh)"
done
kustomize_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')
[ "${kustomize_version:-0}" -ge 4 ] \
  || fail "kubectl's kustomize is older than v4 ($(kubectl version --client 2>&1 | head -2 | tr '\n' ' '))"

# The schema packages, installed once per package-lock.json.
tools=$work/tools
if ! cmp -s "$k8s/validate/package-lock.json" "$tools/package-lock.json" 2>/dev/null \
   || [ ! -d "$tools/node_modules" ]; then
  rm -rf "$tools"; mkdir -p "$tools"
  cp "$k8s/validate/package.json" "$k8s/validate/package-lock.json" "$tools/"
  (cd "$tools" && npm ci --silent --no-audit --no-fund --ignore-scripts >/dev/null)
fi
cp "$k8s/validate/"*.mjs "$tools/"

echo "== yamllint"
yamllint --strict -c "$k8s/.yamllint" "$k8s"

echo "== kubectl kustomize (kustomize v$kustomize_version)"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
cp -r "$k8s" "$tree/k8s"
rm -rf "$tree/k8s/overlays/example/secrets"
bash "$k8s/make-example-secrets.sh" "$tree/k8s/overlays/example/secrets" timbre >/dev/null
rendered=()
for target in base overlays/example istio; do
  out="$work/rendered-${target//\//-}.yaml"
  kubectl kustomize "$tree/k8s/$target" > "$out"
  echo "$target: $(grep -c '^kind:' "$out") objects -> $out"
  rendered+=("$out")
done

echo "== schemas"
node "$tools/validate-manifests.mjs" "${rendered[@]}"
echo "== unknown fields"
node "$tools/check-fields.mjs" "${rendered[@]}"

echo "== promtool"
node "$tools/extract-rules.mjs" "$work/rules.yaml" "$work/rendered-overlays-example.yaml"
promtool check rules "$work/rules.yaml"
cp "$k8s/validate/alerts-test.yaml" "$work/alerts-test.yaml"
promtool test rules "$work/alerts-test.yaml"

echo "== haproxy -c"
secrets=$tree/k8s/overlays/example/secrets
cp "$secrets/tls.crt" "$secrets/tls.pem"
cp "$secrets/tls.key" "$secrets/tls.pem.key"
POD_NAMESPACE=timbre CLUSTER_DOMAIN=cluster.local TIMBRE_TLS_DIR=$secrets TIMBRE_TOKEN_DIR=$secrets \
  haproxy -c -f "$k8s/base/haproxy.cfg" 2>&1 | grep -v "^\[NOTICE\]"
echo "k8s-validate: all checks passed"
