#!/usr/bin/env bash
# deploy/k8s/validate.sh must fail, naming the problem, on each planted defect: a field of the
# wrong type, a misspelt field, an unknown kind, an alert expression that is not PromQL, a YAML
# lint error, a haproxy.cfg keyword HAProxy does not know, and a kustomization naming a missing file.
#   tests/deploy/k8s_manifests_test.sh WORK_DIR
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 WORK_DIR" >&2; exit 2; }
src=$(cd "$(dirname "$0")/../.." && pwd)/deploy/k8s
work=$1
mkdir -p "$work"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# plant NAME EXPECTED EDIT...: copies deploy/k8s, runs EDIT in the copy, and expects validate.sh to
# exit non-zero with EXPECTED in its output.
plant() {
  local name=$1 expected=$2; shift 2
  local tree=$tmp/$name
  mkdir -p "$tree/deploy"
  cp -r "$src" "$tree/deploy/k8s"
  rm -rf "$tree/deploy/k8s/overlays/example/secrets"
  (cd "$tree/deploy/k8s" && "$@")
  local out rc=0
  out=$(bash "$tree/deploy/k8s/validate.sh" "$work" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ] && grep -qF -- "$expected" <<<"$out"; then
    echo "ok   $name: refused ($expected)"
    passed=$((passed + 1))
  else
    echo "FAIL $name: exit $rc, expected a failure naming '$expected'; output:"
    tail -20 <<<"$out"
    failed=$((failed + 1))
  fi
}

# The unchanged tree passes, so each failure below is the planted defect's.
mkdir -p "$tmp/good/deploy" && cp -r "$src" "$tmp/good/deploy/k8s" && rm -rf "$tmp/good/deploy/k8s/overlays/example/secrets"
if out=$(bash "$tmp/good/deploy/k8s/validate.sh" "$work" 2>&1); then
  echo "ok   unchanged: all checks passed"; passed=$((passed + 1))
else
  echo "FAIL unchanged tree: $(tail -5 <<<"$out")"; failed=$((failed + 1))
fi

plant probe_port_name "readinessProbe/grpc/port must be integer" \
  sed -i -z 's/port: 50051\n              service: timbre.v1.Timbre/port: grpc\n              service: timbre.v1.Timbre/' \
  base/serving-deployment.yaml
plant misspelt_field "'\"readinesProbe\"' does not exist in type 'IContainer'" \
  sed -i 's/^          readinessProbe:$/          readinesProbe:/' base/builder-deployment.yaml
plant unknown_kind "unknown apiVersion/kind policy/v1 PodDisruptionBudjet" \
  sed -i 's/^kind: PodDisruptionBudget$/kind: PodDisruptionBudjet/' base/serving-pdb.yaml
plant bad_promql "could not parse expression" \
  sed -i 's/max by (namespace, pod) (timbre_speakers{state="failed"}) > 0/max by (namespace, pod) (timbre_speakers{state="failed"} > 0/' \
  base/prometheus-rule.yaml
plant yaml_lint "trailing-spaces" sed -i 's/^  maxUnavailable: 1$/  maxUnavailable: 1   /' base/serving-pdb.yaml
plant haproxy_keyword "unknown keyword 'balanse'" \
  sed -i 's/^  balance hdr(x-timbre-speaker)$/  balanse hdr(x-timbre-speaker)/' base/haproxy.cfg
plant missing_resource "serving-hpa.yaml" rm base/serving-hpa.yaml

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
