#!/usr/bin/env bash
# Builds timbre with sanitizers, each into its own build directory, and runs the tests under them.
#   deploy/run-sanitizers.sh [asan] [tsan]      (default: both)
#
#   asan  build-asan/, clang-14, AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer
#         included) and the libFuzzer targets of tests/fuzz: the whole ctest suite, which also
#         replays the fuzzers' seed corpora.
#   tsan  build-tsan/, clang-14, ThreadSanitizer: the concurrency-heavy tests (search scheduler,
#         speaker registry, memory budget, build job queue, credential reload).
#
# Any report fails the run. The few suppressions are in tests/sanitizers/, each with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
STEPS=("$@")
[ "${#STEPS[@]}" -gt 0 ] || STEPS=(asan tsan)
for step in "${STEPS[@]}"; do
  case "$step" in
    asan|tsan) ;;
    *) echo "run-sanitizers.sh: unknown step '$step' (known: asan, tsan)" >&2; exit 2 ;;
  esac
done

bash deploy/install-deps.sh
JOBS="$(nproc)"
SUPP="$ROOT/tests/sanitizers"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$SUPP/tsan.supp:print_suppressions=0"

configure() {  # build dir, sanitizers, extra cmake arguments
  local dir="$1" sanitize="$2"; shift 2
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG" -DTIMBRE_SANITIZE="$sanitize" \
        -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST "$@" >/dev/null
}

run_asan() {
  echo "run-sanitizers: ASan + UBSan, whole suite (build-asan)"
  configure build-asan address,undefined -DTIMBRE_FUZZ=ON
  cmake --build build-asan -j "$JOBS"
  (cd build-asan && ctest --output-on-failure -j "$JOBS")
}

# The concurrency-heavy tests; each runs as its own executable: the core's scheduler, registry,
# budget and job queue, the credential reloader, the file worker and upload watchdog, and the gRPC
# reactors and servers (service, streams, drain, uploads, WatchJob, builder service, server).
# Debian's libgrpc and libabsl are not built with TSan: ignore_noninstrumented_modules makes TSan
# skip the interceptor calls made from inside them (their own locks and memcpy), and the abseil
# annotations (tests/sanitizers/absl_tsan_annotations.cc) let it see absl::Mutex, which gRPC uses
# too. timbre's own code, including every reactor callback gRPC runs, stays fully checked.
TSAN_TESTS=(search_scheduler_test speaker_registry_test memory_budget_test build_job_queue_test
            credential_reloader_test file_work_queue_test upload_stall_watchdog_test
            blend_stream_reactor_test upload_features_reactor_test watch_job_reactor_test
            stream_drain_test timbre_service_test index_builder_service_test timbre_server_test)
# Tests left out of the TSan run, as gtest filters, for time: the auto recipe's test trains and
# times about 20 candidate settings, which takes about 5 minutes under TSan (it passed there on
# 2026-12-02); the ASan run covers it.
TSAN_FILTER="-*Auto*"

run_tsan() {
  echo "run-sanitizers: TSan, ${TSAN_TESTS[*]} (build-tsan)"
  configure build-tsan thread
  cmake --build build-tsan -j "$JOBS" --target "${TSAN_TESTS[@]}" timbre-index-probe
  local failed=()
  for test in "${TSAN_TESTS[@]}"; do
    echo "run-sanitizers: tsan $test"
    (cd tests && TIMBRE_TEST_DATA="$ROOT/tests/data" "$ROOT/build-tsan/tests/$test" --gtest_brief=1 \
                  --gtest_filter="$TSAN_FILTER") \
      || failed+=("$test")
  done
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "run-sanitizers: TSan failed: ${failed[*]}" >&2
    return 1
  fi
}

for step in "${STEPS[@]}"; do "run_$step"; done
echo "run-sanitizers: no sanitizer reports"
