#!/usr/bin/env bash
# A JQS worker in bash, curl and jq: the HTTP worker protocol (docs/workers.md), one job at
# a time.
#
#   JQS_URL=http://127.0.0.1:8000 JQS_API_KEY=... examples/worker.sh
#
# Settings (environment): JQS_URL, JQS_API_KEY (a key with the `worker` scope), JQS_QUEUES
# (comma-separated, default "default"), JQS_LEASE_SECONDS (default 30), JQS_WORKER_ID.
# Tasks: echo (returns its payload), fail (fails its first `times` attempts), sleep (sleeps
# `seconds`, heartbeating each second unless "heartbeat": false, and stops when cancelled).
# SIGTERM: the waiting claim is dropped, a running job finishes, then the worker exits.
# Each thing it does is one JSON line on stdout.
set -euo pipefail

URL=${JQS_URL:-http://127.0.0.1:8000}
URL=${URL%/}
KEY=${JQS_API_KEY:-}
QUEUES=${JQS_QUEUES:-default}
LEASE=${JQS_LEASE_SECONDS:-30}
WORKER_ID=${JQS_WORKER_ID:-$(hostname):$$:bash}

say() { # say EVENT [jq args...]: one JSON line
  local event=$1
  shift
  jq -cn --arg event "$event" --arg worker "$WORKER_ID" "$@" '$ARGS.named'
}

post() { # post PATH JSON: prints the answer's body, then its status on a line of its own
  curl -sS -X POST "$URL$1" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data-binary "$2" -w '\n%{http_code}'
}

STATUS=""
BODY=""
request() { # request PATH JSON: sets STATUS and BODY
  local answer
  answer=$(post "$1" "$2") || { STATUS=000; BODY=""; return 0; }
  STATUS=${answer##*$'\n'}
  BODY=${answer%$'\n'*}
}

heartbeat() { # heartbeat ID TOKEN: 0 while the job should go on, 1 when it must stop
  request "/v1/jobs/$1/heartbeat" "$(jq -cn --arg t "$2" --argjson s "$LEASE" \
    '{lease_token: $t, lease_seconds: $s}')"
  if [[ $STATUS == 409 ]]; then
    say lease_lost --argjson job_id "$1"
    return 1
  fi
  if [[ $(jq -r '.cancel_requested' <<<"$BODY") == true ]]; then
    say cancel_requested --argjson job_id "$1"
    return 1
  fi
  return 0
}

RESULT=""
ERROR=""
handle() { # handle JOB: sets RESULT (JSON) or ERROR (a message)
  local job=$1 id token task attempt
  id=$(jq -r '.id' <<<"$job")
  token=$(jq -r '.lease_token' <<<"$job")
  task=$(jq -r '.task' <<<"$job")
  attempt=$(jq -r '.attempt' <<<"$job")
  RESULT="" ERROR=""
  case $task in
    echo) RESULT=$(jq -c '{echoed: .payload}' <<<"$job") ;;
    fail)
      local times
      times=$(jq -r '.payload.times // 1000000' <<<"$job")
      if ((attempt <= times)); then ERROR="failing attempt $attempt"; else
        RESULT=$(jq -cn --argjson a "$attempt" '{succeeded_on: $a}')
      fi
      ;;
    sleep)
      local seconds beat
      seconds=$(jq -r '.payload.seconds // 1' <<<"$job")
      beat=$(jq -r '.payload.heartbeat != false' <<<"$job")
      for ((i = 0; i < seconds; i++)); do
        sleep 1
        if [[ $beat == true ]] && ! heartbeat "$id" "$token"; then
          ERROR="stopped: cancelled or lease lost"
          return
        fi
      done
      RESULT=$(jq -cn --argjson s "$seconds" '{slept: $s}')
      ;;
    *) ERROR="no handler for task $task" ;;
  esac
}

stopping=false
trap 'stopping=true; say stopping' TERM

queues=$(jq -cn --arg q "$QUEUES" '$q | split(",")')
say worker_started --arg url "$URL" --argjson queues "$queues"
while [[ $stopping == false ]]; do
  claim=$(jq -cn --arg id "$WORKER_ID" --arg host "$(hostname)" --argjson queues "$queues" \
    --argjson lease "$LEASE" \
    '{worker: {id: $id, host: $host, version: "bash-example/1.0"}, queues: $queues,
      max_jobs: 1, wait: 20, lease_seconds: $lease}')
  # In the background, so that SIGTERM is heard while the claim waits: dropping the
  # connection makes the server hand back whatever it claimed.
  post /v1/workers/claim "$claim" >"${TMPDIR:-/tmp}/jqs-claim.$$" &
  curl_pid=$!
  wait "$curl_pid" || true
  if [[ $stopping == true ]]; then
    kill "$curl_pid" 2>/dev/null || true
    break
  fi
  answer=$(<"${TMPDIR:-/tmp}/jqs-claim.$$")
  STATUS=${answer##*$'\n'}
  BODY=${answer%$'\n'*}
  if [[ $STATUS != 200 ]]; then
    say claim_refused --arg status "$STATUS" --arg detail "$(jq -r '.detail? // ""' <<<"$BODY" 2>/dev/null)"
    sleep 1
    continue
  fi
  while read -r job; do
    [[ -n $job ]] || continue
    id=$(jq -r '.id' <<<"$job")
    token=$(jq -r '.lease_token' <<<"$job")
    say job_started --argjson job_id "$id" --arg task "$(jq -r '.task' <<<"$job")" \
      --argjson attempt "$(jq -r '.attempt' <<<"$job")"
    handle "$job"
    if [[ -n $ERROR ]]; then
      request "/v1/jobs/$id/fail" "$(jq -cn --arg t "$token" --arg m "$ERROR" \
        '{lease_token: $t, error: {type: "Error", message: $m}}')"
    else
      request "/v1/jobs/$id/complete" "$(jq -cn --arg t "$token" --argjson r "$RESULT" \
        '{lease_token: $t, result: $r}')"
    fi
    if [[ $STATUS == 200 ]]; then
      say job_ended --argjson job_id "$id" --arg status "$(jq -r '.status' <<<"$BODY")"
    else
      say job_end_refused --argjson job_id "$id" --argjson status "$STATUS" \
        --arg detail "$(jq -r '.detail? // ""' <<<"$BODY" 2>/dev/null)"
    fi
  done < <(jq -c '.[]' <<<"$BODY")
done
rm -f "${TMPDIR:-/tmp}/jqs-claim.$$"
say worker_stopped
