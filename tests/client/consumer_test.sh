#!/usr/bin/env bash
# The client library as an installed package: installs the timbre_client component of the build
# tree into a temporary prefix, configures and builds tests/client/consumer against it with
# find_package(timbre_client), runs it, and removes the prefix.
#   consumer_test.sh BUILD_DIR CONSUMER_SOURCE_DIR [CXX_COMPILER [SANITIZERS]]
# (the build tree's compiler and -fsanitize list, which a sanitizer build's library needs)
set -euo pipefail
build_dir="$1" consumer="$2" compiler="${3:-}" sanitizers="${4:-}"
extra=()
[ -z "$compiler" ] || extra+=("-DCMAKE_CXX_COMPILER=$compiler")
[ -z "$sanitizers" ] || extra+=("-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=$sanitizers")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" --component timbre_client > "$work/install.log"
for file in include/timbre/timbre_client.h include/timbre/builder_client.h \
            include/timbre/v1/timbre.pb.h include/timbre/v1/index_builder.grpc.pb.h \
            lib/cmake/timbre_client/timbre_clientConfig.cmake; do
  [ -f "$work/prefix/$file" ] || { echo "not installed: $file"; cat "$work/install.log"; exit 1; }
done
if find "$work/prefix" -path '*server*' | grep -q .; then
  echo "server files installed:"; find "$work/prefix" -path '*server*'; exit 1
fi
cmake -S "$consumer" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$work/prefix" "${extra[@]}" > "$work/configure.log" 2>&1 \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$work/build/consumer"
