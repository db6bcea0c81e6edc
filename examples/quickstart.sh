#!/usr/bin/env bash
# The validation runbook, step by step, against a fresh `gatehouse serve` on the seed policy.
#
#   examples/quickstart.sh                       # starts its own server on free ports, then stops it
#   GATEHOUSE_URL=http://127.0.0.1:8081 GATEHOUSE_ADMIN_KEY=... \
#   GATEHOUSE_METRICS_URL=http://127.0.0.1:9090/metrics examples/quickstart.sh   # an existing one
#
# Exits non-zero at the first step that gives another answer than the runbook expects.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

json() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
ok() { printf '  ok: %s\n' "$*"; }
fail() { printf "  FAIL: %s\n" "$*" >&2; cat "${data:-/nonexistent}/server.log" >&2 2>/dev/null || true; exit 1; }

if [ -z "${GATEHOUSE_URL:-}" ]; then
  port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mport=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  data=$(mktemp -d)
  export GATEHOUSE_ADMIN_KEY=${GATEHOUSE_ADMIN_KEY:-ghk_quickstart_$RANDOM$RANDOM}
  "$PY" -m gatehouse serve --port "$port" --metrics-port "$mport" --data-dir "$data" \
      --policy examples/policies/seed.yaml --log-level warning >"$data/server.log" 2>&1 &
  server=$!
  trap 'rc=$?; kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -rf "$data"; exit $rc' EXIT
  GATEHOUSE_URL=http://127.0.0.1:$port
  GATEHOUSE_METRICS_URL=http://127.0.0.1:$mport/metrics
  for _ in $(seq 100); do curl -fs "$GATEHOUSE_URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
fi
URL=$GATEHOUSE_URL
METRICS=${GATEHOUSE_METRICS_URL:-${URL%:*}:9090/metrics}
H=(-H "X-API-Key: $GATEHOUSE_ADMIN_KEY" -H "Content-Type: application/json")
echo "gatehouse quickstart against $URL"

echo "1. simulate a production deploy"
sim=$(curl -s "${H[@]}" "$URL/api/v1/policy/simulate" \
  -d '{"topic":"job.deploy.apply","prompt":"terraform apply","labels":{"env":"prod"},"meta":{"capability":"infra.write"}}')
[ "$(echo "$sim" | json 'd["result"]')" = require_approval ] || fail "expected require_approval: $sim"
[ "$(echo "$sim" | json 'd["rule_id"]')" = require-approval-prod-write ] || fail "wrong rule: $sim"
ok "require_approval by require-approval-prod-write"

echo "2. submit a demo job: allowed and completed by a built-in worker"
code=$(curl -s -o /tmp/gh_qs_submit.$$ -w '%{http_code}' "${H[@]}" "$URL/api/v1/jobs" \
  -d '{"topic":"job.demo.read","prompt":"status"}')
sub=$(cat /tmp/gh_qs_submit.$$); rm -f /tmp/gh_qs_submit.$$
[ "$code" = 201 ] || fail "expected 201, got $code: $sub"
job=$(echo "$sub" | json 'd["job_id"]')
[ "$(echo "$sub" | json 'd["decision"]["result"]')" = allow ] || fail "not allowed: $sub"
status=""
for _ in $(seq 100); do
  status=$(curl -s "${H[@]}" "$URL/api/v1/jobs/$job" | json 'd["status"]')
  [ "$status" = succeeded ] && break; sleep 0.1
done
[ "$status" = succeeded ] || fail "job $job is $status, not succeeded"
ok "job $job allowed and succeeded"

echo "3. submit a destructive command: denied at the API boundary"
code=$(curl -s -o /tmp/gh_qs_deny.$$ -w '%{http_code}' "${H[@]}" "$URL/api/v1/jobs" \
  -d '{"topic":"job.exec.shell","prompt":"rm -rf /"}')
deny=$(cat /tmp/gh_qs_deny.$$); rm -f /tmp/gh_qs_deny.$$
[ "$code" = 403 ] || fail "expected 403, got $code: $deny"
[ "$(echo "$deny" | json 'd["decision"]["rule_id"]')" = deny-destructive-exec ] || fail "wrong rule: $deny"
denied=$(echo "$deny" | json 'd["job_id"]')
queued=$(curl -s "${H[@]}" "$URL/api/v1/jobs?status=queued&limit=500" | json '" ".join(j["job_id"] for j in d["jobs"])')
case " $queued " in *" $denied "*) fail "denied job $denied was queued";; esac
ok "403 by deny-destructive-exec, nothing queued"

echo "4. read the decisions of the allowed job"
stages=$(curl -s "${H[@]}" "$URL/api/v1/jobs/$job/decisions" | json '",".join(x["stage"]+":"+x["result"] for x in d["decisions"])')
[ "$stages" = "submit:allow,dispatch:allow,output:allow" ] || fail "unexpected decisions: $stages"
ok "$stages"

echo "5. read the metrics: the deny is counted"
line=$(curl -s "$METRICS" | grep '^gatehouse_decisions_total{decision="deny",rule="deny-destructive-exec",stage="submit"}' || true)
[ -n "$line" ] || fail "deny not counted at $METRICS"
[ "$("$PY" -c "print(float('${line##* }') >= 1)")" = True ] || fail "deny count is ${line##* }"
ok "$line"
echo "quickstart: all steps passed"
