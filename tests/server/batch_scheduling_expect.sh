#!/usr/bin/env bash
# batch_scheduling_expect.sh SERVER FIXTURE_INDEX: every thread of timbre-server runs under
# SCHED_BATCH by default and under the default policy with --batch_scheduling=false; when the
# kernel refuses the switch (a seccomp filter), the server warns, keeps the default policy and
# serves.
set -u
here="$(dirname "$0")"
source "$here/server_process.sh"
server="$1"; fixture="$2"
readonly SCHED_OTHER=0 SCHED_BATCH=3

# Fails unless every thread of the server has policy $1.
expect_policy() {
  local task policy threads=0
  for task in /proc/"$pid"/task/*; do
    # Field 41 of stat; the name in field 2 may hold spaces, so count from its closing ')'.
    policy=$(sed 's/.*) //' "$task/stat" | awk '{print $39}')
    [ "$policy" = "$1" ] || fail "thread $(basename "$task") ($(cat "$task/comm")) has policy $policy, expected $1"
    threads=$((threads + 1))
  done
  [ "$threads" -gt 1 ] || fail "the server has $threads threads"
}

start_server "$server" "$fixture"
expect_policy $SCHED_BATCH
stop_server TERM

start_server "$server" "$fixture" --batch_scheduling=false
expect_policy $SCHED_OTHER
stop_server TERM

# sched_setscheduler is system call 144 on x86-64.
wrapper="$work/refused-server"
printf '#!/bin/sh\nexec python3 %q 144 %q "$@"\n' "$here/refuse_syscall.py" "$server" > "$wrapper"
chmod +x "$wrapper"
start_server "$wrapper" "$fixture"
expect_log "cannot switch to the SCHED_BATCH policy (Operation not permitted)"
expect_policy $SCHED_OTHER
stop_server TERM
[ "$code" -eq 0 ] || fail "exit code $code after SIGTERM, expected 0"
echo "ok: SCHED_BATCH by default, the default policy when turned off or refused"
