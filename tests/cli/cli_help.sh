#!/usr/bin/env bash
# The CLI's help: `timbre help`, `timbre help COMMAND`, `timbre COMMAND --help` and `-h` exit 0
# and print what they should; a command's help shows its own flags with their defaults and help
# text and its examples, never another command's flags, Abseil's "No flags matched" or a path of
# the machine that built it.
#   cli_help.sh CLI_BINARY SOURCE_DIR
set -uo pipefail
cli="$1" source_dir="$2"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# has OUTPUT TEXT: OUTPUT contains TEXT.
has() { grep -qF -- "$2" <<<"$1"; }
check_common() {  # OUTPUT WHAT
  for forbidden in "No flags matched" "$source_dir" ".cc" "Flags from"; do
    has "$1" "$forbidden" && fail "$2 shows '$forbidden'"
  done
}

overview=$("$cli" help 2>&1) || fail "'timbre help' exit code $?"
check_common "$overview" "timbre help"
for expected in "usage: timbre COMMAND" "  blend          blend an .npy file's frames" \
                "  build          build and publish" "  feature-sets   list the feature sets" \
                "--server (default: localhost:50051)" "Exit codes: 0 success"; do
  has "$overview" "$expected" || fail "'timbre help' lacks '$expected': $overview"
done
has "$overview" "--recipe" && fail "'timbre help' lists a command's flag (--recipe)"
[ "$("$cli" --help 2>&1)" == "$overview" ] || fail "'timbre --help' differs from 'timbre help'"

blend=$("$cli" help blend 2>&1) || fail "'timbre help blend' exit code $?"
check_common "$blend" "timbre help blend"
for expected in "timbre blend: blend an .npy file's frames" \
                "usage: timbre blend --speaker=NAME --input=IN.npy --output=OUT.npy" \
                "  --index_rate (default: -1)" "Retrieved-frame weight in [0, 1]" \
                "  --speaker (required)" "Examples:" \
                "timbre blend --speaker=alice --input=in.npy --output=out.npy" \
                "Connection flags (every command; 'timbre help' explains them): --server"; do
  has "$blend" "$expected" || fail "'timbre help blend' lacks '$expected': $blend"
done
for other in "--recipe" "--concurrency" "--watch" "--server (default"; do
  has "$blend" "$other" && fail "'timbre help blend' shows '$other', not blend's own flag"
done
for spelling in "blend --help" "blend -h" "blend --speaker=a --help"; do
  # shellcheck disable=SC2086
  out=$("$cli" $spelling 2>&1) || fail "'timbre $spelling' exit code $?"
  [ "$out" == "$blend" ] || fail "'timbre $spelling' differs from 'timbre help blend': $out"
done

bench=$("$cli" bench --help 2>&1) || fail "'timbre bench --help' exit code $?"
for expected in "  --duration (default: 10s)" "  --concurrency (default: 4)" "--mode=unary|stream" \
                "  --speaker (required)" "  --queries (default: none)"; do
  has "$bench" "$expected" || fail "'timbre bench --help' lacks '$expected': $bench"
done
jobs=$("$cli" jobs -h 2>&1) || fail "'timbre jobs -h' exit code $?"
has "$jobs" "Flags:" && fail "'timbre jobs -h' has a flag section but jobs takes no flags"
has "$jobs" "usage: timbre jobs" || fail "'timbre jobs -h' lacks its usage: $jobs"

# Every command's help names each of its flags with its registry entry.
for command in $(sed -n 's/^  \([a-z-]*\)  .*/\1/p' <<<"$overview"); do
  out=$("$cli" help "$command" 2>&1) || fail "'timbre help $command' exit code $?"
  has "$out" "usage: timbre $command" || fail "'timbre help $command' lacks its usage: $out"
  check_common "$out" "timbre help $command"
  # Each flag its usage line names is one of its flags, described from the registry.
  for flag in $(grep "^usage: " <<<"$out" | grep -o -- '--[a-z_]*' | sort -u); do
    has "$out" "  $flag (" || fail "'timbre help $command' names $flag but does not describe it"
  done
done

[ "$failures" -eq 0 ] || exit 1
echo "ok"
