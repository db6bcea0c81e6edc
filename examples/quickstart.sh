#!/usr/bin/env bash
# The README's quickstart, command for command, with a check after each answer.
#
#   examples/quickstart.sh                       # starts its own server on free ports, then stops it
#   GATEHOUSE_URL=http://127.0.0.1:8081 GATEHOUSE_ADMIN_KEY=... \
#   GATEHOUSE_METRICS_URL=http://127.0.0.1:9090/metrics examples/quickstart.sh   # an existing one
#
# It sends what the README sends (curl -d, no Content-Type header, the agent's own key) and exits
# non-zero at the first step that answers differently from what the README says.
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
fi
URL=$GATEHOUSE_URL
METRICS=${GATEHOUSE_METRICS_URL:-${URL%:*}:9090/metrics}
echo "gatehouse quickstart against $URL"
for _ in $(seq 150); do curl -sf "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf "$URL/readyz" >/dev/null || fail "the server at $URL is not ready"

echo "1. an agent identity"
idn=$(curl -s -H "X-API-Key: $GATEHOUSE_ADMIN_KEY" $URL/api/v1/identities -d '{"name":"deploy-bot","tenant":"default","roles":["agent"],"topics":["job.**"],"capabilities":["infra.read","infra.write"]}')
AGENT=$(echo "$idn" | json 'd["api_key"]') || fail "no api_key: $idn"
ok "identity $(echo "$idn" | json 'd["id"]')"

echo "2. simulate a production deploy"
sim=$(curl -s -H "X-API-Key: $AGENT" $URL/api/v1/policy/simulate -d '{"topic":"job.deploy.apply","labels":{"env":"prod"},"meta":{"capability":"infra.write"}}')
[ "$(echo "$sim" | json 'd["result"]+" "+d["rule_id"]')" = "require_approval require-approval-prod-write" ] \
  || fail "expected require_approval by require-approval-prod-write: $sim"
ok "require_approval by require-approval-prod-write"

echo "3. submit a demo job: allowed and completed by a built-in worker"
sub=$(curl -s -H "X-API-Key: $AGENT" $URL/api/v1/jobs -d '{"topic":"job.demo.read","prompt":"status","meta":{"capability":"infra.read"}}')
[ "$(echo "$sub" | json 'd["decision"]["result"]')" = allow ] || fail "not allowed: $sub"
JOB=$(echo "$sub" | json 'd["job_id"]')
status=""
for _ in $(seq 100); do
  status=$(curl -s -H "X-API-Key: $AGENT" "$URL/api/v1/jobs/$JOB" | json 'd["status"]')
  [ "$status" = succeeded ] && break; sleep 0.1
done
[ "$status" = succeeded ] || fail "job $JOB is $status, not succeeded"
ok "job $JOB allowed and succeeded"

echo "4. submit a destructive command: denied at the API boundary"
deny=$(curl -s -H "X-API-Key: $AGENT" $URL/api/v1/jobs -d '{"topic":"job.exec.shell","prompt":"rm -rf /","meta":{"capability":"infra.write"}}')
[ "$(echo "$deny" | json 'd["error"]["code"]')" = denied ] || fail "expected a deny: $deny"
[ "$(echo "$deny" | json 'd["error"]["details"]["decision"]["rule_id"]')" = deny-destructive-exec ] \
  || fail "wrong rule: $deny"
decision=$(echo "$deny" | json 'd["error"]["details"]["decision"]["decision_id"]')
stored=$(curl -s -H "X-API-Key: $AGENT" "$URL/api/v1/jobs?limit=500" | json 'sum(j["topic"]=="job.exec.shell" for j in d["jobs"])')
[ "$stored" = 0 ] || fail "the denied job was stored"
ok "403 by deny-destructive-exec ($decision), nothing stored or queued"

echo "5. the decisions of the allowed job, and the deny in the decision log"
stages=$(curl -s -H "X-API-Key: $AGENT" $URL/api/v1/jobs/$JOB/decisions | json '",".join(x["stage"]+":"+x["result"] for x in d["decisions"])')
[ "$stages" = "submit:allow,dispatch:allow,output:allow" ] || fail "unexpected decisions: $stages"
logged=$(curl -s -H "X-API-Key: $AGENT" "$URL/api/v1/decisions?result=deny" | json '" ".join(x["decision_id"] for x in d["decisions"])')
case " $logged " in *" $decision "*) ;; *) fail "deny $decision not in the decision log: $logged";; esac
ok "$stages; $decision in the decision log"

echo "6. the metrics: the deny is counted"
line=$(curl -s $METRICS | grep gatehouse_decisions_total | grep 'decision="deny",rule="deny-destructive-exec",stage="submit"' || true)
[ -n "$line" ] || fail "deny not counted at $METRICS"
[ "$("$PY" -c "print(float('${line##* }') >= 1)")" = True ] || fail "deny count is ${line##* }"
ok "$line"
echo "quickstart: all steps passed"
