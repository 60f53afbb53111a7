# Exact canary weights through the Gateway API (DESIGN §7.9), sourced by e2e/run; `e2e/run
# gateway` runs them alone.
#
# The user's own HTTPRoute "web" has two rules: /admin to Service admin (with a header
# filter) and / to Service web. Deployment web (10 replicas) is annotated with
# budgetgate.dev/http-route=web and budgetgate.dev/service=web. The traffic simulator is
# the gateway: it sends the route's 200 requests/s to the backends by weight and, within a
# Service, to its ready endpoints, so the canary's series carry exactly its weight of the
# traffic. e2e/lib/route_watch.py follows the route, the EndpointSlices and the canary
# Deployment through watches, as a gateway would, and records every weight change and
# every instant a weighted backend had no ready endpoint.

GATEWAY=(
  gateway_canary_weights_follow_the_plan
  gateway_faulty_canary_at_5_percent_is_rolled_back
  gateway_route_missing_fails_the_rollout
  gateway_promotion_never_leaves_a_rule_without_backends
  gateway_foreign_canary_service_is_never_touched
  gateway_controller_killed_at_25_percent_resumes_the_weights
)
GW_RUN=$(date +%H%M%S)
GW_PLAN_NS=e2e-gw-plan-$GW_RUN
GW_FAULTY_NS=e2e-gw-faulty-$GW_RUN
GW_PROMOTE_NS=e2e-gw-promote-$GW_RUN
GW_KILL_NS=e2e-gw-kill-$GW_RUN
NAMESPACES+=("$GW_PLAN_NS" "$GW_FAULTY_NS" "$GW_PROMOTE_NS" "$GW_KILL_NS" e2e-gw-missing e2e-gw-foreign)

gateway_tier() {
  local plan='"plan": {"steps": [5, 25, 50, 100], "pause": "12s"}'
  k patch reliabilitypolicy platform --type merge -p "{\"spec\": {\"tiers\": {\"gateway\": {
    \"enforcement\": \"enforce\", \"window\": \"30d\", \"staleAfter\": \"15s\", \"onStale\": \"allow\",
    \"bands\": [
      {\"name\": \"healthy\",  \"minRemaining\": 0.5,  $plan},
      {\"name\": \"caution\",  \"minRemaining\": 0.25, $plan},
      {\"name\": \"critical\", \"minRemaining\": 0,    $plan}],
    \"canary\": {\"analysisWindow\": \"5m\", \"abortBurnRate\": 14.4, \"consecutiveFailures\": 2,
      \"progressDeadline\": \"20s\", \"maxRelativeErrorRate\": 2, \"minCanaryEvents\": 100}}}}}" >/dev/null
}

# gateway_namespace NS [ROUTE [OBJECTIVE]]: team NS in tier gateway with an SLO (OBJECTIVE,
# default 99.9) over the simulator's series of web, Services web and admin, the HTTPRoute
# (unless ROUTE=none) and Deployment web at registry.example/web:1.0 with 10 replicas,
# annotated for the route; waits for a healthy budget.
gateway_namespace() {
  local ns=$1 route=${2:-web} objective=${3:-99.9} i
  k create namespace "$ns" >/dev/null &&
    k label namespace "$ns" "budgetgate.dev/team=$ns" budgetgate.dev/tier=gateway budgetgate.dev/progressive=true >/dev/null || return 1
  k apply -f - >/dev/null <<YAML || fail "apply the namespace's objects" || return 1
apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: avail, namespace: $ns}
spec:
  service: web
  objective: $objective
  deploymentSelector: {matchLabels: {app: web}}
  indicator: {ratio: {errors: 'http_requests_total{namespace="$ns",deployment="web",code=~"5.."}', total: 'http_requests_total{namespace="$ns",deployment="web"}'}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: $ns}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: admin, namespace: $ns}
spec:
  selector: {app: admin}
  ports: [{name: http, port: 80}]
YAML
  if [[ $route != none ]]; then
    k apply -f - >/dev/null <<YAML || fail "apply the HTTPRoute" || return 1
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: $ns}
spec:
  parentRefs: [{name: shared, namespace: infra}]
  hostnames: [web.example]
  rules:
    - matches: [{path: {type: PathPrefix, value: /admin}}]
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-admin, value: "1"}]}}]
      backendRefs: [{name: admin, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: web, port: 80}]
YAML
  fi
  k -n "$ns" create deployment web --image=registry.example/web:1.0 --replicas=10 >/dev/null &&
    k -n "$ns" annotate deployment web budgetgate.dev/http-route=web budgetgate.dev/service=web >/dev/null &&
    k -n "$ns" rollout status deploy/web --timeout=60s >/dev/null || fail "deploy web" || return 1
  for ((i = 0; i < 60; i++)); do
    [[ $(k get teambudget "$ns" -o jsonpath='{.status.tiers[0].band}' 2>/dev/null) == healthy ]] && return 0
    sleep 0.5
  done
  fail "TeamBudget $ns never healthy"
}

# route_watch NS FILE: starts e2e/lib/route_watch.py in the background (pid in GW_WATCH)
# and waits until it watches.
route_watch() {
  local i
  : >"$2"
  python3 "$E2E_DIR/lib/route_watch.py" "$(command -v kubectl)" "$1" web web "$2" &
  GW_WATCH=$!
  for ((i = 0; i < 40; i++)); do grep -q ' watching$' "$2" && return 0; sleep 0.25; done
  fail "the route watch did not start"
}

# event_series NS REASON: how many Events of REASON Deployment web got (one series, counted).
event_series() {
  k -n "$1" get events.events.k8s.io -o json | python3 -c '
import json, sys
items = [e for e in json.load(sys.stdin)["items"] if e.get("reason") == sys.argv[1] and e["regarding"]["name"] == "web"]
print(sum((e.get("series") or {}).get("count", 1) for e in items))' "$2"
}

# route_rule NS N: rule N of the route as JSON (keys sorted).
route_rule() {
  k -n "$1" get httproute web -o json | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(json.dumps(r["spec"]["rules"][int(sys.argv[1])], sort_keys=True))' "$2"
}

scenario_gateway_canary_weights_follow_the_plan() {
  local ns=$GW_PLAN_NS log phase weights pods before0 after0 beforeh afterh final split metric i
  gateway_namespace "$ns" || return 1
  log=$RUN/gateway-plan.log
  before0=$(route_rule "$ns" 0)
  beforeh=$(k -n "$ns" get httproute web -o jsonpath='{.spec.hostnames} {.spec.parentRefs}')
  route_watch "$ns" "$log" || return 1
  k -n "$ns" set image deploy/web web=registry.example/web:1.1 >/dev/null || fail "set image" || return 1
  # At 25%: the Release, the Event and the metric say what the route carries.
  for ((i = 0; i < 240; i++)); do grep -q 'web-canary=25$' "$log" && break; sleep 0.25; done
  sleep 1
  split=$(newest_release "$ns" '{.status.weight}')/$(newest_release "$ns" '{.status.traffic}')
  metric=$(curl -fsS "http://127.0.0.1:$E2E_WEBHOOK_METRICS_PORT/metrics" | grep "^budgetgate_canary_weight{namespace=\"$ns\"")
  phase=$(wait_phase "$ns" "Promoted RolledBack Failed" 150)
  kill "$GW_WATCH" 2>/dev/null
  expect_eq "outcome" "$phase" Promoted &&
    expect_eq "Release at 25%" "$split" "25/HTTPRoute web: 75% to Service web (10 pods), 25% to Service web-canary (3 pods); accepted by its gateway" &&
    expect_eq "metric at 25%" "$metric" "budgetgate_canary_weight{namespace=\"$ns\",deployment=\"web\"} 25" &&
    expect_eq "TrafficShifted Events (one series: stages 0, 1, 2 and the promotion)" "$(event_series "$ns" TrafficShifted)" 4 &&
    expect_eq "TrafficRestored Events" "$(event_series "$ns" TrafficRestored)" 1 || return 1
  # The weights of the / rule in the order they were set, and the canary's replica counts.
  weights=$(awk '$2 == "weights" {print $3}' "$log" | sed 's/^1://' | uniq | tr '\n' ' ')
  pods=$(awk '$2 == "canary" && $3 ~ /^replicas=/ && $4 == "deleting=false" {sub("replicas=", "", $3); print $3}' "$log" | uniq | tr '\n' ' ')
  expect_eq "route weights over the rollout" "$weights" "web=1 web=95,web-canary=5 web=75,web-canary=25 web=50,web-canary=50 web=100,web-canary=0 web=1 " &&
    expect_eq "canary pods" "$pods" "1 3 5 " || return 1
  after0=$(route_rule "$ns" 0)
  afterh=$(k -n "$ns" get httproute web -o jsonpath='{.spec.hostnames} {.spec.parentRefs}')
  final=$(route_rule "$ns" 1)
  expect_eq "the /admin rule and its filter" "$after0" "$before0" &&
    expect_eq "hostnames and parents" "$afterh" "$beforeh" &&
    expect_eq "the / rule after promotion" "$final" '{"backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80, "weight": 1}], "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}' &&
    expect_eq "canary Service removed" "$(k -n "$ns" get service web-canary -o name 2>/dev/null)" "" &&
    expect_eq "stable selector given back" "$(k -n "$ns" get service web -o jsonpath='{.spec.selector}')" '{"app":"web"}' &&
    expect_eq "promoted image" "$(image_of "$ns" web)" registry.example/web:1.1 || return 1
  echo "weights over time (s after the watch started): $(awk '$2 == "weights" {printf "%s %s; ", $1, $3}' "$log")canary pods $pods" >"$OUT/detail"
}

scenario_gateway_faulty_canary_at_5_percent_is_rolled_back() {
  local ns=$GW_FAULTY_NS log phase t0 took reason off gone
  # A 99% SLO and 30 s of history (6000 requests): the budget absorbs the canary's first
  # errors, so the canary's own burn (20% errors on its 5%: 20x) is what fails the checks.
  gateway_namespace "$ns" web 99 || return 1
  sleep 30
  log=$RUN/gateway-faulty.log
  route_watch "$ns" "$log" || return 1
  t0=$SECONDS
  k -n "$ns" set image deploy/web web=registry.example/web:1.1-faulty >/dev/null || fail "set image" || return 1
  phase=$(wait_phase "$ns" "Promoted RolledBack Failed" 120)
  took=$((SECONDS - t0))
  sleep 3
  kill "$GW_WATCH" 2>/dev/null
  reason=$(newest_release "$ns" '{.status.reason}')
  expect_eq "outcome" "$phase" RolledBack &&
    expect_has "judged on the canary's own requests" "$reason" "SLO $ns/avail: canary 20." &&
    expect_eq "rolled back at stage 0" "$(newest_release "$ns" '{.status.stage}')" 0 || return 1
  # The canary's weight is 0 before its Deployment is deleted.
  off=$(awk '$2 == "weights" && $3 ~ /web-canary=0/ {print NR; exit}' "$log")
  gone=$(awk '$2 == "canary" && ($3 == "gone" || $4 == "deleting=true") {print NR; exit}' "$log")
  [[ -n $off && -n $gone ]] || fail "watch log lacks the weight-0 or the deletion line: $(tr '\n' '|' <"$log")" || return 1
  ((off < gone)) || fail "the canary was deleted (line $gone) before its weight went to 0 (line $off): $(tr '\n' '|' <"$log")" || return 1
  expect_eq "image restored" "$(image_of "$ns" web)" registry.example/web:1.0 &&
    expect_eq "the / rule restored" "$(route_rule "$ns" 1)" '{"backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80, "weight": 1}], "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}' || return 1
  echo "rolled back ${took}s after kubectl set image, at 5% ($(newest_release "$ns" '{.status.failingSince}') first failed check, completed $(newest_release "$ns" '{.status.completedAt}')); reason: $reason" >"$OUT/detail"
}

scenario_gateway_route_missing_fails_the_rollout() {
  local ns=e2e-gw-missing phase reason t0
  gateway_namespace "$ns" none || return 1
  t0=$SECONDS
  k -n "$ns" set image deploy/web web=registry.example/web:1.1 >/dev/null || fail "set image" || return 1
  phase=$(wait_phase "$ns" "Promoted RolledBack Failed" 60)
  reason=$(newest_release "$ns" '{.status.reason}')
  expect_eq "outcome" "$phase" Failed &&
    expect_eq "reason" "$reason" "the canary's traffic cannot be routed within progressDeadline 20s: HTTPRoute $ns/web not found" &&
    expect_eq "no canary was started" "$(k -n "$ns" get deploy web-canary -o name 2>/dev/null)" "" || return 1
  k -n "$ns" rollout status deploy/web --timeout=30s >/dev/null
  expect_eq "restored" "$(image_of "$ns" web)" registry.example/web:1.0 &&
    expect_has "event" "$(events_of "$ns")" "RolloutFailed" || return 1
  echo "Failed $((SECONDS - t0))s after kubectl set image: $reason" >"$OUT/detail"
}

scenario_gateway_promotion_never_leaves_a_rule_without_backends() {
  local ns=$GW_PROMOTE_NS log phase empty events i
  gateway_namespace "$ns" || return 1
  log=$RUN/gateway-promote.log
  route_watch "$ns" "$log" || return 1
  k -n "$ns" set image deploy/web web=registry.example/web:1.1 >/dev/null || fail "set image" || return 1
  # Promoted by hand from the 5% stage: one canary pod, ten stable, the rolling update of
  # ten pods behind the stable Service while the route still names the canary's.
  for ((i = 0; i < 120; i++)); do grep -q 'web-canary=5$' "$log" && break; sleep 0.25; done
  grep -q 'web-canary=5$' "$log" || fail "the canary never got 5%: $(tr '\n' '|' <"$log")" || return 1
  k -n "$ns" annotate deploy web budgetgate.dev/action=promote >/dev/null || fail "annotate promote" || return 1
  phase=$(wait_phase "$ns" "Promoted RolledBack Failed" 150)
  sleep 2
  kill "$GW_WATCH" 2>/dev/null
  wait "$GW_WATCH" 2>/dev/null
  expect_eq "outcome" "$phase" Promoted || return 1
  empty=$(grep ' empty ' "$log")
  events=$(awk '$2 == "stopped" {print $4}' "$log")
  expect_eq "instants with a weighted backend and no ready endpoint" "$empty" "" &&
    expect_eq "the / rule after promotion" "$(route_rule "$ns" 1)" '{"backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80, "weight": 1}], "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}' || return 1
  ((${events:-0} > 10)) || fail "the watch saw only ${events:-no} events: $(tr '\n' '|' <"$log")" || return 1
  echo "$events watch events of the route, its EndpointSlices and the canary from the 5% stage through the promotion; after each, every weighted backend had a ready endpoint" >"$OUT/detail"
}

scenario_gateway_foreign_canary_service_is_never_touched() {
  local ns=e2e-gw-foreign phase reason before after route_before stable_before
  gateway_namespace "$ns" || return 1
  # The team's own Service that happens to be called web-canary.
  k -n "$ns" create service clusterip web-canary --tcp=80:9090 >/dev/null || fail "create service" || return 1
  before=$(k -n "$ns" get service web-canary -o jsonpath='{.metadata.uid} {.metadata.resourceVersion} {.metadata.labels} {.metadata.annotations} {.metadata.ownerReferences} {.spec}')
  route_before=$(k -n "$ns" get httproute web -o jsonpath='{.metadata.resourceVersion} {.spec}')
  stable_before=$(k -n "$ns" get service web -o jsonpath='{.metadata.resourceVersion} {.metadata.annotations} {.spec.selector}')
  k -n "$ns" set image deploy/web web=registry.example/web:1.1 >/dev/null || fail "set image" || return 1
  phase=$(wait_phase "$ns" "Promoted RolledBack Failed" 60)
  reason=$(newest_release "$ns" '{.status.reason}')
  expect_eq "outcome" "$phase" Failed &&
    expect_eq "reason" "$reason" "the canary's traffic cannot be routed within progressDeadline 20s: Service $ns/web-canary exists and is not controlled by web (it has no controller); budgetgate never changes or deletes it" || return 1
  k -n "$ns" rollout status deploy/web --timeout=30s >/dev/null
  sleep 2
  after=$(k -n "$ns" get service web-canary -o jsonpath='{.metadata.uid} {.metadata.resourceVersion} {.metadata.labels} {.metadata.annotations} {.metadata.ownerReferences} {.spec}')
  expect_eq "the team's web-canary Service" "$after" "$before" &&
    expect_eq "the route" "$(k -n "$ns" get httproute web -o jsonpath='{.metadata.resourceVersion} {.spec}')" "$route_before" &&
    expect_eq "the stable Service" "$(k -n "$ns" get service web -o jsonpath='{.metadata.resourceVersion} {.metadata.annotations} {.spec.selector}')" "$stable_before" &&
    expect_eq "restored" "$(image_of "$ns" web)" registry.example/web:1.0 &&
    expect_eq "no canary was started" "$(k -n "$ns" get deploy web-canary -o name 2>/dev/null)" "" || return 1
  echo "Failed after progressDeadline; the team's web-canary Service, the route and the stable Service kept their resourceVersion" >"$OUT/detail"
}

scenario_gateway_controller_killed_at_25_percent_resumes_the_weights() {
  local ns=$GW_KILL_NS log phase weights i
  gateway_namespace "$ns" || return 1
  log=$RUN/gateway-kill.log
  route_watch "$ns" "$log" || return 1
  k -n "$ns" set image deploy/web web=registry.example/web:1.1 >/dev/null || fail "set image" || return 1
  for ((i = 0; i < 240; i++)); do grep -q 'web-canary=25$' "$log" && break; sleep 0.25; done
  grep -q 'web-canary=25$' "$log" || fail "the canary never got 25%: $(tr '\n' '|' <"$log")" || return 1
  # SIGKILL with the route at 75/25: the new process knows the stage from the Deployment
  # and the weight from the route, nothing from memory.
  "$E2E_DIR/cluster" restart-budgetgate --kill >/dev/null || fail "restart failed" || return 1
  phase=$(wait_phase "$ns" "Promoted RolledBack Failed" 150)
  sleep 2
  kill "$GW_WATCH" 2>/dev/null
  wait "$GW_WATCH" 2>/dev/null
  weights=$(awk '$2 == "weights" {print $3}' "$log" | sed 's/^1://' | uniq | tr '\n' ' ')
  expect_eq "outcome" "$phase" Promoted &&
    expect_eq "route weights: none set twice, none going back" "$weights" "web=1 web=95,web-canary=5 web=75,web-canary=25 web=50,web-canary=50 web=100,web-canary=0 web=1 " &&
    expect_eq "instants with a weighted backend and no ready endpoint" "$(grep ' empty ' "$log")" "" &&
    expect_eq "Releases (1.0 Direct, 1.1)" "$(k -n "$ns" get releases -o name | wc -l)" 2 || return 1
  echo "killed at 75/25, restarted; weights went on: $(awk '$2 == "weights" {printf "%s %s; ", $1, $3}' "$log")" >"$OUT/detail"
}
