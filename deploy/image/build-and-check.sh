#!/usr/bin/env bash
# Release step: builds the Dockerfile with podman and checks that the image serves. Too slow for
# every CI run (it builds faiss and timbre from scratch inside the image: see README, Docker).
#   deploy/image/build-and-check.sh [--no-build] [IMAGE]     (IMAGE: localhost/timbre:check)
# --no-build checks an image already in podman's storage (built earlier or pulled) without
# building it again.
# 1. makes the debian:bookworm base images locally (make-base-image.sh) and builds the Dockerfile
#    with `podman build --isolation=chroot` (no Docker engine or registry needed);
# 2. mounts the built image (`podman image mount`) and runs its own timbre-server from that root
#    filesystem, read-only, as the image's user (uid 10001), in a private mount namespace, on a free
#    loopback port with a fresh demo repository (--demo_if_empty);
# 3. checks grpc.health.v1 turns SERVING, then asks the image's own `timbre` CLI for a Blend of 16
#    frames and checks the answer; then stops the server with SIGTERM and expects exit 0.
# Needs root. Prints the build time. Leaves the image in podman's storage, nothing else.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=1
if [ "${1:-}" = --no-build ]; then build=0; shift; fi
case "${1:-}" in -*) echo "usage: $0 [--no-build] [IMAGE]" >&2; exit 2 ;; esac
[ $# -le 1 ] || { echo "usage: $0 [--no-build] [IMAGE]" >&2; exit 2; }
image=${1:-localhost/timbre:check}
[ "$(id -u)" -eq 0 ] || { echo "build-and-check: needs root (podman, mounts, chroot)" >&2; exit 2; }
py=/usr/bin/python3
if ! $py -c 'import grpc, numpy' 2>/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-grpcio python3-numpy >/dev/null
fi
bash deploy/image/make-base-image.sh

if [ "$build" = 1 ]; then
  echo "build-and-check: podman build -t $image ."
  start=$(date +%s)
  podman build --isolation=chroot --network=host -t "$image" .
  echo "build-and-check: built $image in $(( $(date +%s) - start )) s"
else
  podman image exists "$image" || { echo "build-and-check: no image $image in podman's storage" >&2; exit 1; }
fi
podman image inspect --format 'image size: {{.Size}} bytes, user: {{.Config.User}}' "$image"

work=$(mktemp -d)
root=$(podman image mount "$image")
pid=""
cleanup() {
  [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
  podman image unmount "$image" >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "build-and-check: FAIL: $*" >&2; echo "--- server log:" >&2; cat "$work/log" >&2 || true; exit 1; }
for program in timbre-server timbre-index-probe timbre; do
  [ -x "$root/usr/local/bin/$program" ] || fail "the image has no /usr/local/bin/$program"
done
mkdir -p "$work/repo" "$work/io"
chown 10001:10001 "$work/repo" "$work/io"

# in_image CMD...: runs CMD from the image's root filesystem, read-only, as uid 10001, with the
# demo repository at /repo, a scratch directory at /tmp, and the host's /dev and /proc; the mounts
# live in a private namespace and vanish with the process. It replaces the calling shell (exec), so
# call it in a subshell; `(in_image ...) &` leaves $! the image's process itself.
in_image() {
  exec unshare --mount --propagation private -- /bin/bash -c '
    set -e
    root=$1 work=$2; shift 2
    mount --bind "$root" "$root"
    mount -o remount,bind,ro "$root"
    mount --bind "$work/repo" "$root/repo"
    mount --bind "$work/io" "$root/tmp"
    mount --bind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    exec chroot --userspec=10001:10001 "$root" /usr/bin/env LD_LIBRARY_PATH=/opt/timbre/faiss/lib "$@"
  ' in_image "$root" "$work" "$@"
}
[ -d "$root/repo" ] || fail "the image has no /repo directory"

port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(in_image timbre-server --repo=/repo --demo_if_empty --host=127.0.0.1 --port="$port" \
  --metrics_port=-1 >"$work/log" 2>&1) &
pid=$!

# Health: SERVING within 5 minutes (the demo speaker is trained at the first start).
$py - "$port" "$pid" <<'PY' || fail "health did not turn SERVING"
import os, sys, time, grpc
port, pid = sys.argv[1], int(sys.argv[2])
check = grpc.insecure_channel(f"127.0.0.1:{port}").unary_unary("/grpc.health.v1.Health/Check")
deadline = time.monotonic() + 300
status = "no answer"
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the server exited")
    try:
        answer = check(b"", timeout=2)  # empty HealthCheckRequest: the whole server
        if answer == b"\x08\x01":  # status: SERVING
            print(f"build-and-check: health SERVING on 127.0.0.1:{port}")
            sys.exit(0)
        status = f"answer {answer!r}"
    except grpc.RpcError as e:
        status = e.code().name
    time.sleep(0.2)
sys.exit(f"still {status} after 300 s")
PY

# Blend: 16 frames of 768 floats through the image's own CLI, answered with the same shape.
$py -c 'import numpy as np; np.save("'"$work"'/io/in.npy", np.random.default_rng(7).standard_normal((16, 768), dtype=np.float32))'
chown 10001:10001 "$work/io/in.npy"
(in_image timbre blend --server="127.0.0.1:$port" --speaker=demo --input=/tmp/in.npy --output=/tmp/out.npy) \
  || fail "timbre blend failed"
$py - "$work/io" <<'PY' || fail "the Blend answer is wrong"
import sys, numpy as np
x, y = np.load(f"{sys.argv[1]}/in.npy"), np.load(f"{sys.argv[1]}/out.npy")
assert y.shape == x.shape and y.dtype == np.float32, f"answer {y.shape} {y.dtype}, asked {x.shape}"
assert np.isfinite(y).all(), "answer has non-finite values"
assert not np.allclose(x, y), "answer equals the input: nothing was blended in"
print(f"build-and-check: Blend answered {y.shape[0]} x {y.shape[1]} float32 frames")
PY

kill -TERM "$pid"
code=0; wait "$pid" || code=$?
pid=""
[ "$code" -eq 0 ] || fail "timbre-server exited $code after SIGTERM"
grep -q "faiss 1.7.3" "$work/log" && grep "faiss 1.7.3" "$work/log" | head -1
echo "build-and-check: image $image served health and Blend, and stopped cleanly"
