#!/usr/bin/env bash
# cli_expect.sh EXIT_CODE PATTERN COMMAND...: runs COMMAND and passes when it exits EXIT_CODE and
# its output contains PATTERN (a fixed string).
expected_code="$1"; pattern="$2"; shift 2
output=$("$@" 2>&1); code=$?
if [ "$code" -ne "$expected_code" ]; then
  echo "exit code $code, expected $expected_code; output: $output"; exit 1
fi
if ! grep -qF -- "$pattern" <<<"$output"; then
  echo "output lacks '$pattern': $output"; exit 1
fi
echo "ok: exit $code, '$pattern'"
