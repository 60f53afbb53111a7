# Canary analysis scenarios (DESIGN §7.2–7.5), sourced by e2e/run after canary.sh; they are
# part of `e2e/run canary`.
#
# The first three judge canaries on real traffic: Prometheus scrapes the traffic
# simulator's per-pod series, relabels the canary pods' `budgetgate.dev/track` into the
# series label `track`, and the controller reads canary and stable counts in one query per
# check. They use tier "analysis" (plan 10,50,100 every 12s, minCanaryEvents 100) and
# fresh namespaces per run (Prometheus keeps a namespace's errors for the whole window).
# The last two use the snapshot's budgets like the other canary scenarios.

ANALYSIS=(
  canary_diluted_regression_is_rolled_back
  canary_as_good_as_noisy_stable_is_promoted
  canary_with_too_little_traffic_holds
  foreign_canary_name_is_never_touched
  canary_api_errors_hit_the_progress_deadline
)
RUN_ID=$(date +%H%M%S)
DILUTED_NS=e2e-an-diluted-$RUN_ID
NOISY_NS=e2e-an-noisy-$RUN_ID
NAMESPACES+=("$DILUTED_NS" "$NOISY_NS" e2e-an-thin e2e-an-foreign e2e-an-quota)

analysis_tiers() {
  local tier='"enforcement": "enforce", "window": "30d", "staleAfter": "15s", "onStale": "allow",
    "bands": [
      {"name": "healthy",  "minRemaining": 0.5,  "plan": {"steps": [10, 50, 100], "pause": "12s"}},
      {"name": "caution",  "minRemaining": 0.25, "plan": {"steps": [10, 50, 100], "pause": "12s"}},
      {"name": "critical", "minRemaining": 0,    "plan": {"steps": [10, 50, 100], "pause": "12s"}}]'
  local canary='"analysisWindow": "5m", "abortBurnRate": 14.4, "consecutiveFailures": 2, "progressDeadline": "20s", "maxRelativeErrorRate": 2'
  k patch reliabilitypolicy platform --type merge -p "{\"spec\": {\"tiers\": {
    \"analysis\": {$tier, \"canary\": {$canary, \"minCanaryEvents\": 100}},
    \"analysis-thin\": {$tier, \"canary\": {$canary, \"minCanaryEvents\": 1000000}}}}}" >/dev/null
}

# traffic_analysis_namespace NS OBJECTIVE STABLE_IMAGE: a progressive namespace of its own
# team in tier analysis, an SLO over the simulator's series of web (read from Prometheus),
# and web (9 replicas) serving STABLE_IMAGE with a healthy budget.
traffic_analysis_namespace() {
  local ns=$1 objective=$2 image=$3 i
  k create namespace "$ns" >/dev/null &&
    k label namespace "$ns" "budgetgate.dev/team=$ns" budgetgate.dev/tier=analysis budgetgate.dev/progressive=true >/dev/null || return 1
  k apply -f - >/dev/null <<YAML || return 1
apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: avail, namespace: $ns}
spec:
  service: web
  objective: $objective
  deploymentSelector: {matchLabels: {app: web}}
  indicator: {ratio: {errors: 'http_requests_total{namespace="$ns",deployment="web",code=~"5.."}', total: 'http_requests_total{namespace="$ns",deployment="web"}'}}
YAML
  k -n "$ns" create deployment web --image="$image" --replicas=9 >/dev/null &&
    k -n "$ns" rollout status deploy/web --timeout=60s >/dev/null || return 1
  for ((i = 0; i < 60; i++)); do
    [[ $(k get teambudget "$ns" -o jsonpath='{.status.tiers[0].band}' 2>/dev/null) == healthy ]] && return 0
    sleep 0.5
  done
  fail "TeamBudget $ns never healthy"
}

# slo_burn NS: the SLO's whole-service burn over the analysis window (5m), as published.
slo_burn() { k -n "$1" get slo avail -o jsonpath='{.status.burnRates.5m}' 2>/dev/null; }

# release_condition NS TYPE FIELD: a condition of web's newest Release.
release_condition() {
  local release
  release=$(newest_release "$1" '{.metadata.name}')
  [[ -n $release ]] && k -n "$1" get release "$release" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].$3}" 2>/dev/null
}

# wait_phase NS PHASES SECONDS: until web's newest Release is in one of PHASES.
wait_phase() {
  local ns=$1 want=$2 limit=$3 t0=$SECONDS phase
  while ((SECONDS - t0 < limit)); do
    phase=$(newest_release "$ns" '{.status.phase}')
    [[ " $want " == *" $phase "* ]] && { echo "$phase"; return 0; }
    sleep 0.25
  done
  echo "timeout (${phase:-none})"
  return 1
}

scenario_canary_diluted_regression_is_rolled_back() {
  local ns=$DILUTED_NS burns="" b max=0 seq reason checks
  traffic_analysis_namespace "$ns" 99.9 registry.example/web:1.0 || return 1
  # Give the stable pods a history, as a production service has: the period budget then
  # absorbs the canary's few errors and only the canary's own burn can fail the check.
  sleep 40
  k -n "$ns" set image deploy/web web=registry.example/web:1.1-err5 >/dev/null || fail "set image" || return 1
  # 10% of 9 stable = 1 canary pod (10% of the traffic) failing 5%: 0.5% of the service.
  local t0=$SECONDS
  while ((SECONDS - t0 < 90)); do
    b=$(slo_burn "$ns")
    [[ -n $b ]] && burns+="$(printf '%.2f' "$b") "
    [[ $(newest_release "$ns" '{.status.phase}') == RolledBack || $(newest_release "$ns" '{.status.phase}') == Promoted ]] && break
    sleep 1
  done
  seq=$(newest_release "$ns" '{.status.phase}')
  expect_eq "outcome" "$seq" RolledBack || return 1
  for b in $burns; do
    python3 -c "import sys; sys.exit(0 if $b < 14.4 else 1)" || fail "whole-service burn $b reached abortBurnRate 14.4 (burns: $burns)" || return 1
    max=$(python3 -c "print(max($max, $b))")
  done
  reason=$(newest_release "$ns" '{.status.reason}')
  expect_has "reason names the canary" "$reason" "SLO $ns/avail: canary 5." &&
    expect_has "reason names stable" "$reason" "vs stable 0.00% (0/" &&
    expect_has "reason is the canary's own burn" "$reason" "above abortBurnRate 14.4x (z " &&
    expect_eq "canary analysis" "$(release_condition "$ns" CanaryAnalysis status)/$(release_condition "$ns" CanaryAnalysis reason)" "True/CanaryTraffic" &&
    expect_eq "image restored" "$(image_of "$ns" web)" registry.example/web:1.0 || return 1
  checks=$(k -n "$ns" get events --field-selector involvedObject.name=web,reason=CanaryUnhealthy -o jsonpath='{range .items[*]}{.note}{.message}{"\n"}{end}' | sed 's/.*failed: SLO [^:]*: //')
  echo "whole-service burn 5m at each second: max ${max}x (< 14.4); checks: ${checks//$'\n'/ | }; reason: $reason" >"$OUT/detail"
}

scenario_canary_as_good_as_noisy_stable_is_promoted() {
  local ns=$NOISY_NS phase reason
  # Both tracks fail 2% of requests; objective 95 (budget 5%): burn 0.4x everywhere.
  traffic_analysis_namespace "$ns" 95 registry.example/web:1.0-err2 || return 1
  k -n "$ns" set image deploy/web web=registry.example/web:1.1-err2 >/dev/null || fail "set image" || return 1
  phase=$(wait_phase "$ns" "Promoted RolledBack" 120) || fail "no outcome: $phase" || return 1
  reason=$(newest_release "$ns" '{.status.reason}')
  expect_eq "outcome" "$phase" Promoted &&
    expect_eq "no failed check" "$(k -n "$ns" get events --field-selector involvedObject.name=web,reason=CanaryUnhealthy -o name | wc -l)" 0 &&
    expect_eq "judged on its own traffic" "$(release_condition "$ns" CanaryAnalysis reason)" CanaryTraffic || return 1
  echo "promoted ($reason); max burn $(newest_release "$ns" '{.status.maxBurn}')x" >"$OUT/detail"
}

scenario_canary_with_too_little_traffic_holds() {
  local ns=e2e-an-thin i before after
  team_namespace "$ns" "$ns" budgetgate.dev/tier=analysis-thin budgetgate.dev/progressive=true
  budget "$ns" 0.8 || return 1
  k -n "$ns" create deployment web --image=registry.example/web:v1 --replicas=9 >/dev/null &&
    k -n "$ns" rollout status deploy/web --timeout=60s >/dev/null || return 1
  k -n "$ns" set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  for ((i = 0; i < 120; i++)); do
    [[ $(release_condition "$ns" InsufficientTraffic status) == True ]] && break
    sleep 0.5
  done
  before=$(stage_of "$ns")
  expect_eq "held" "$(release_condition "$ns" InsufficientTraffic status)" True &&
    expect_has "why" "$(release_condition "$ns" InsufficientTraffic message)" "fewer than minCanaryEvents 1000000" || return 1
  sleep 14   # longer than the 12 s pause: a judged stage would have advanced
  after=$(stage_of "$ns")
  expect_eq "still at stage 0" "$after" "0/1/Progressing" &&
    expect_eq "unchanged" "$after" "$before" || return 1
  k -n "$ns" annotate deploy web budgetgate.dev/action=resume >/dev/null || fail "annotate resume" || return 1
  for ((i = 0; i < 40; i++)); do [[ $(stage_of "$ns") == 1/* ]] && break; sleep 0.25; done
  expect_eq "resumed" "$(stage_of "$ns")" "1/9/Progressing" &&
    expect_has "events" "$(events_of "$ns")" "InsufficientTraffic" || return 1
  echo "held at stage 0 with InsufficientTraffic past its pause; resume advanced it to stage 1" >"$OUT/detail"
}

# web_canary_state NS: everything of the user's web-canary that budgetgate must not change.
web_canary_state() {
  k -n "$1" get deploy web-canary -o jsonpath='{.metadata.uid} {.metadata.resourceVersion} {.metadata.generation} {.metadata.labels} {.metadata.annotations} {.metadata.ownerReferences} {.spec}'
}

scenario_foreign_canary_name_is_never_touched() {
  local ns=e2e-an-foreign before after phase t0 reason
  canary_namespace "$ns" 0.8 || return 1
  # The user's own Deployment that happens to be called web-canary.
  k -n "$ns" create deployment web-canary --image=registry.example/tools:1 --replicas=1 >/dev/null &&
    k -n "$ns" rollout status deploy/web-canary --timeout=60s >/dev/null || return 1
  sleep 2   # let its status settle
  before=$(web_canary_state "$ns")
  t0=$SECONDS
  k -n "$ns" set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  phase=$(wait_phase "$ns" "Failed RolledBack Promoted" 30) || fail "no outcome: $phase" || return 1
  local took=$((SECONDS - t0))
  reason=$(newest_release "$ns" '{.status.reason}')
  expect_eq "phase" "$phase" Failed &&
    expect_has "reason" "$reason" "Deployment web-canary exists and is not controlled by web (it has no controller); budgetgate never changes or deletes it" || return 1
  k -n "$ns" rollout status deploy/web --timeout=30s >/dev/null
  expect_eq "restored" "$(image_of "$ns" web)" registry.example/web:v1 &&
    expect_eq "unpaused" "$(k -n "$ns" get deploy web -o jsonpath='{.spec.paused}')" "" &&
    expect_has "event" "$(events_of "$ns")" "RolloutFailed" || return 1
  k -n "$ns" annotate deploy web budgetgate.dev/action=abort >/dev/null || fail "annotate abort" || return 1
  sleep 4
  after=$(web_canary_state "$ns")
  expect_eq "web-canary untouched" "$after" "$before" &&
    expect_eq "web-canary image" "$(image_of "$ns" web-canary)" registry.example/tools:1 || return 1
  echo "Failed ${took}s after kubectl set image; the user's web-canary kept uid, resourceVersion, spec and labels, also after action=abort" >"$OUT/detail"
}

scenario_canary_api_errors_hit_the_progress_deadline() {
  local ns=e2e-an-quota i phase reason t0 blocked
  team_namespace "$ns" "$ns" budgetgate.dev/tier=analysis budgetgate.dev/progressive=true
  budget "$ns" 0.8 || return 1
  k -n "$ns" create deployment web --image=registry.example/web:v1 --replicas=3 >/dev/null &&
    k -n "$ns" rollout status deploy/web --timeout=60s >/dev/null || return 1
  # A quota of one Deployment: the apiserver refuses the canary.
  k -n "$ns" create quota one-deployment --hard=count/deployments.apps=1 >/dev/null || fail "create quota" || return 1
  for ((i = 0; i < 60; i++)); do
    [[ $(k -n "$ns" get quota one-deployment -o jsonpath='{.status.used.count/deployments\.apps}') == 1 ]] && break
    sleep 0.5
  done
  t0=$SECONDS
  k -n "$ns" set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  for ((i = 0; i < 60; i++)); do
    [[ $(newest_release "$ns" '{.status.reason}') == retrying:* ]] && break
    sleep 0.5
  done
  expect_has "reason while retrying" "$(newest_release "$ns" '{.status.reason}')" "exceeded quota" || return 1
  phase=$(wait_phase "$ns" "RolledBack Failed Promoted" 60) || fail "no outcome: $phase" || return 1
  local took=$((SECONDS - t0))
  reason=$(newest_release "$ns" '{.status.reason}')
  expect_eq "phase" "$phase" RolledBack &&
    expect_has "reason" "$reason" "the canary was not available within progressDeadline 20s (last error: applying the canary $ns/web-canary" &&
    expect_has "reason names the quota" "$reason" "exceeded quota" || return 1
  k -n "$ns" rollout status deploy/web --timeout=30s >/dev/null
  expect_eq "restored" "$(image_of "$ns" web)" registry.example/web:v1 || return 1
  blocked=$(k -n "$ns" get events.events.k8s.io -o json | python3 -c '
import json, sys
items = [e for e in json.load(sys.stdin)["items"] if e.get("reason") == "RolloutBlocked" and e["regarding"]["name"] == "web"]
print(len(items), max([(e.get("series") or {}).get("count", 1) for e in items] or [0]))')
  expect_eq "one RolloutBlocked Event" "${blocked%% *}" 1 || return 1
  blocked=${blocked##* }
  ((${blocked:-0} >= 2)) || fail "RolloutBlocked event series count [$blocked], want >= 2 (one Event, counted)" || return 1
  echo "rolled back ${took}s after kubectl set image (progressDeadline 20s); one RolloutBlocked event with count ${blocked}" >"$OUT/detail"
}
