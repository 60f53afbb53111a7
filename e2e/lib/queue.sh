# Queue scenarios (DESIGN §7.10), sourced by e2e/run; `e2e/run queue` runs just these.
#
# They use tier "queue" (added to the platform policy below): onExhausted: queue, bands of
# seconds-long canaries and one rollout at a time per team. Budgets come from the snapshot
# (e2e/lib/snapshot.py), kept fresh by canary.sh's refresher, so "the budget recovers" is
# one `budget NS 0.8`: nobody touches the Deployment after the apply that queued it.

QUEUE=(
  queued_rollout_starts_when_the_budget_recovers
  queued_rollouts_start_in_order_within_the_cap
  newer_template_supersedes_a_queued_one
  exception_releases_a_queued_rollout
  server_dry_run_queues_nothing
  controller_restart_keeps_the_queue
  deleting_a_queued_deployment_drops_it
)
NAMESPACES+=(e2e-q-recover e2e-q-order e2e-q-super e2e-q-exc e2e-q-dry e2e-q-restart e2e-q-delete)

queue_tier() {
  k patch reliabilitypolicy platform --type merge -p '{"spec": {"tiers": {"queue": {
    "enforcement": "enforce", "window": "30d", "staleAfter": "15s", "onStale": "allow", "onExhausted": "queue",
    "bands": [
      {"name": "healthy",  "minRemaining": 0.5, "plan": {"steps": [50, 100], "pause": "4s"}, "maxConcurrentRollouts": 1},
      {"name": "critical", "minRemaining": 0,   "plan": {"steps": [25, 50, 100], "pause": "4s"}, "maxConcurrentRollouts": 1}],
    "canary": {"analysisWindow": "5m", "abortBurnRate": 14.4, "consecutiveFailures": 2, "progressDeadline": "60s"}}}}}' >/dev/null
}

# queue_namespace NS: a progressive namespace of its own team in tier queue with a healthy
# budget and Deployment web (9 replicas, image v1) running; then its budget is exhausted
# (-12%).
queue_namespace() {
  local ns=$1
  team_namespace "$ns" "$ns" budgetgate.dev/tier=queue budgetgate.dev/progressive=true
  budget "$ns" 0.8 || return 1
  k -n "$ns" create deployment web --image=registry.example/web:v1 --replicas=9 >/dev/null &&
    k -n "$ns" rollout status deploy/web --timeout=60s >/dev/null || return 1
  budget "$ns" -0.12
}

# queued_warning NS: what kubectl prints for a rollout of team NS queued at -12%.
queued_warning() {
  echo "Warning: budgetgate: queued: team $1 has -12.0% budget left; starts when it recovers or an exception is approved"
}

# release_of NS DEPLOYMENT REVISION JSONPATH: a field of the Release of that revision.
release_of() {
  k -n "$1" get releases -l "budgetgate.dev/deployment=$2" -o json | python3 -c '
import json, sys
rev, path = sys.argv[1], sys.argv[2].split(".")
for r in json.load(sys.stdin)["items"]:
    if r["spec"]["revision"] == rev:
        v = r
        for p in path:
            v = v.get(p, {}) if isinstance(v, dict) else {}
        print("" if v == {} else v)
        break' "$3" "$4"
}

# wait_queued_release NS DEPLOYMENT REVISION PHASE SECONDS: until that Release is in PHASE.
wait_queued_release() {
  local i got
  for ((i = 0; i < $5 * 4; i++)); do
    got=$(release_of "$1" "$2" "$3" status.phase)
    [[ $got == "$4" ]] && return 0
    sleep 0.25
  done
  fail "Release of $1/$2 revision $3: phase ${got:-none} after $5 s, want $4"
}

revision_of() { k -n "$1" get deploy "$2" -o jsonpath='{.metadata.annotations.budgetgate\.dev/revision}'; }

# The template revision budgetgate names a Deployment's pod template by: the revision of
# its newest Release once one exists for the current template.
queued_revision() {
  local ns=$1 name=$2 i rev
  for ((i = 0; i < 40; i++)); do
    rev=$(k -n "$ns" get releases -l "budgetgate.dev/deployment=$name" -o json | python3 -c '
import json, sys
items = [r for r in json.load(sys.stdin)["items"] if r.get("status", {}).get("phase") == "Queued"]
items.sort(key=lambda r: r["metadata"]["creationTimestamp"])
print(items[-1]["spec"]["revision"] if items else "")')
    [[ -n $rev ]] && { echo "$rev"; return 0; }
    sleep 0.25
  done
  return 1
}

images_running() { k -n "$1" get rs -l "app=$2" -o jsonpath='{range .items[?(@.spec.replicas>0)]}{.spec.template.spec.containers[0].image}{" "}{end}'; }

scenario_queued_rollout_starts_when_the_budget_recovers() {
  local ns=e2e-q-recover out rc rev since t0 started ms seq metrics
  queue_namespace $ns || return 1
  out=$(k -n $ns set image deploy/web web=registry.example/web:v2 2>&1); rc=$?
  expect_eq "exit" "$rc" 0 &&
    expect_eq "output" "$out" "$(queued_warning $ns)"$'\n'"deployment.apps/web image updated" || return 1
  rev=$(queued_revision $ns web) || fail "no Queued Release" || return 1
  since=$(k -n $ns get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/queued-since}')
  expect_eq "paused" "$(k -n $ns get deploy web -o jsonpath='{.spec.paused}')" true &&
    expect_eq "no plan yet" "$(k -n $ns get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/stage}')" "" &&
    expect_eq "pods still on v1" "$(images_running $ns web)" "registry.example/web:v1 " &&
    expect_eq "queued since" "$(release_of $ns web "$rev" status.queuedSince)" "$since" &&
    expect_eq "position" "$(release_of $ns web "$rev" status.queuePosition)" 1 &&
    expect_eq "reason" "$(release_of $ns web "$rev" status.reason)" \
      "queued at position 1: the error budget is exhausted: team $ns has -12.0% remaining (burn 5m 0.5x, 1h 0.5x, 6h 0.5x)" || return 1
  expect_eq "kubectl get releases" "$(columns queued k -n $ns get releases --sort-by=.metadata.creationTimestamp | sed 's/ [0-9a-z]*$//' | tail -n 1)" \
    "web-${rev:0:8}-2 web $rev Queued 1" || return 1
  expect_has "events" "$(events_of $ns)" "Queued" || return 1
  metrics=$(curl -fsS "http://127.0.0.1:$E2E_WEBHOOK_METRICS_PORT/metrics")
  expect_has "queued metric" "$metrics" "budgetgate_queued_rollouts{team=\"$ns\"} 1" || return 1
  # The scoreboard's team view lists the queue (its JSON API is the page's data).
  expect_eq "scoreboard queue" "$(curl -fsS "$SCOREBOARD_URL/api/v1/teams/$ns" | python3 -c '
import json, sys
t = json.load(sys.stdin)["tiers"][0]
print(t["row"]["queued"], " ".join("%d:%s/%s:%s" % (q["position"], q["namespace"], q["deployment"], q["revision"]) for q in t["queue"]))')" \
    "1 1:$ns/web:$rev" || return 1
  expect_has "scoreboard page" "$(curl -fsS "$SCOREBOARD_URL/teams/$ns")" "<h3>Queued rollouts</h3>" || return 1
  # Recovery: nothing but the budget changes (the snapshot source, read every 2 s).
  t0=$(date +%s%N)
  budget $ns 0.8 || return 1
  wait_queued_release $ns web "$rev" Progressing 20 || return 1
  started=$((($(date +%s%N) - t0) / 1000000))
  seq=$(follow $ns Promoted 60) || fail "no promotion: $seq" || return 1
  ms=$((($(date +%s%N) - t0) / 1000000))
  expect_eq "stages" "$seq" "0/9 promoting/9 => Promoted" || return 1
  k -n $ns rollout status deploy/web --timeout=30s >/dev/null
  expect_eq "image" "$(image_of $ns web)" registry.example/web:v2 &&
    expect_eq "unpaused" "$(k -n $ns get deploy web -o jsonpath='{.spec.paused}')" "" &&
    expect_eq "queue entry gone" "$(k -n $ns get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/queued-since}')" "" &&
    expect_eq "band" "$(release_of $ns web "$rev" spec.band)" healthy &&
    expect_eq "final reason" "$(release_of $ns web "$rev" status.reason)" "promoted after 1 stage(s) of plan 50,100 every 4s" || return 1
  expect_has "events" "$(events_of $ns)" "QueueStarted" || return 1
  metrics=$(curl -fsS "http://127.0.0.1:$E2E_WEBHOOK_METRICS_PORT/metrics")
  expect_has "queued metric after" "$metrics" "budgetgate_queued_rollouts{team=\"$ns\"} 0" || return 1
  echo "started ${started} ms after the budget recovered at its source (evaluation interval 2 s), promoted ${ms} ms after it" >"$OUT/detail"
}

scenario_queued_rollouts_start_in_order_within_the_cap() {
  local ns=e2e-q-order web_rev api_rev i phases both=0 order=""
  team_namespace $ns $ns budgetgate.dev/tier=queue budgetgate.dev/progressive=true
  budget $ns 0.8 || return 1
  k -n $ns create deployment web --image=registry.example/web:v1 --replicas=9 >/dev/null &&
    k -n $ns create deployment api --image=registry.example/api:v1 --replicas=3 >/dev/null &&
    k -n $ns rollout status deploy/web --timeout=60s >/dev/null &&
    k -n $ns rollout status deploy/api --timeout=60s >/dev/null || return 1
  budget $ns -0.12 || return 1
  # web first, api a second later (queued-since has one-second precision).
  k -n $ns set image deploy/web web=registry.example/web:v2 >/dev/null 2>&1 || fail "web" || return 1
  web_rev=$(queued_revision $ns web) || fail "web not queued" || return 1
  sleep 1.2
  k -n $ns set image deploy/api api=registry.example/api:v2 >/dev/null 2>&1 || fail "api" || return 1
  api_rev=$(queued_revision $ns api) || fail "api not queued" || return 1
  for ((i = 0; i < 20; i++)); do
    [[ $(release_of $ns api "$api_rev" status.queuePosition) == 2 ]] && break
    sleep 0.25
  done
  expect_eq "web's place" "$(release_of $ns web "$web_rev" status.queuePosition)" 1 &&
    expect_eq "api's place" "$(release_of $ns api "$api_rev" status.queuePosition)" 2 || return 1
  # The queue as kubectl budgetgate shows it, and what `why` says for a third rollout.
  local out
  out=$(kb queue $ns | tr -s ' ')
  expect_has "kubectl budgetgate queue: header" "$out" "TEAM TIER POSITION DEPLOYMENT REVISION WAITING REASON" &&
    expect_has "kubectl budgetgate queue: web" "$out" "$ns queue 1 $ns/web $web_rev " &&
    expect_has "kubectl budgetgate queue: api" "$out" "$ns queue 2 $ns/api $api_rev " &&
    expect_has "kubectl budgetgate queue: why" "$out" "s the error budget is exhausted: team $ns has -12.0% remaining" || return 1
  out=$(kb -n $ns why web 2>&1)
  expect_eq "why" "$out" "deployment $ns/web (team $ns, tier queue, enforce mode)"$'\n'"a rollout now: QUEUED: admitted paused; it starts when the budget allows (-12.0% remaining)"$'\n'"$(queued_warning $ns | sed 's/^Warning: //')" || return 1
  budget $ns 0.8 || return 1
  # Band healthy allows one rollout at a time: web runs first, then api; never both.
  for ((i = 0; i < 400; i++)); do
    phases="$(release_of $ns web "$web_rev" status.phase)/$(release_of $ns api "$api_rev" status.phase)"
    [[ $phases == Progressing/Progressing ]] && both=1
    [[ ${order##* } != "$phases" ]] && order="$order $phases"
    [[ $phases == Promoted/Promoted ]] && break
    sleep 0.25
  done
  # Polls see every state but the short ones in between (web promoted and api not yet
  # started lasts up to an interval).
  ((both == 0)) || fail "both ran at once:$order" || return 1
  expect_not_has "api never before web" "$order" "Queued/Progressing" &&
    expect_has "web first" "$order" " Progressing/Queued" &&
    expect_has "then api" "$order" "Promoted/Progressing" &&
    expect_eq "both promoted" "${order##* }" "Promoted/Promoted" || return 1
  expect_eq "images" "$(image_of $ns web) $(image_of $ns api)" "registry.example/web:v2 registry.example/api:v2"
}

scenario_newer_template_supersedes_a_queued_one() {
  local ns=e2e-q-super out first second since
  queue_namespace $ns || return 1
  k -n $ns set image deploy/web web=registry.example/web:v2 >/dev/null 2>&1 || fail "v2" || return 1
  first=$(queued_revision $ns web) || fail "v2 not queued" || return 1
  since=$(k -n $ns get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/queued-since}')
  sleep 1.2
  out=$(k -n $ns set image deploy/web web=registry.example/web:v3 2>&1) || fail "v3: $out" || return 1
  expect_eq "v3 output" "$out" "$(queued_warning $ns)"$'\n'"deployment.apps/web image updated" || return 1
  wait_queued_release $ns web "$first" Superseded 10 || return 1
  second=$(queued_revision $ns web) || fail "v3 not queued" || return 1
  [[ $second != "$first" ]] || fail "the same revision queued twice" || return 1
  expect_eq "superseded reason" "$(release_of $ns web "$first" status.reason)" "superseded in the queue by revision $second" &&
    expect_eq "keeps its place in the queue" "$(k -n $ns get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/queued-since}')" "$since" &&
    expect_eq "pods still on v1" "$(images_running $ns web)" "registry.example/web:v1 " || return 1
  budget $ns 0.8 || return 1
  wait_queued_release $ns web "$second" Promoted 60 || return 1
  k -n $ns rollout status deploy/web --timeout=30s >/dev/null
  expect_eq "image" "$(image_of $ns web)" registry.example/web:v3
}

scenario_exception_releases_a_queued_rollout() {
  local ns=e2e-q-exc rev later
  queue_namespace $ns || return 1
  k -n $ns set image deploy/web web=registry.example/web:v2 >/dev/null 2>&1 || fail "set image" || return 1
  rev=$(queued_revision $ns web) || fail "not queued" || return 1
  sleep 3
  expect_eq "still queued" "$(release_of $ns web "$rev" status.phase)" Queued || return 1
  later=$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%SZ)
  k apply -f - >/dev/null <<YAML || fail "could not create the exception" || return 1
apiVersion: budgetgate.dev/v1alpha1
kind: BudgetException
metadata: {name: p0, namespace: $ns}
spec: {kind: override, selector: {matchLabels: {app: web}}, reason: "P0 fix, INC-2", approvedBy: platform-oncall, expiresAt: "$later"}
YAML
  wait_queued_release $ns web "$rev" Progressing 20 || return 1
  # The budget is still exhausted: the most cautious band's plan.
  expect_eq "exception" "$(release_of $ns web "$rev" spec.exception)" p0 &&
    expect_eq "band" "$(release_of $ns web "$rev" spec.band)" critical &&
    expect_has "reason" "$(release_of $ns web "$rev" status.reason)" "exception p0 lets it through" &&
    expect_eq "plan" "$(k -n $ns get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/plan}')" "25,50,100" || return 1
  wait_queued_release $ns web "$rev" Promoted 60 || return 1
  k -n $ns rollout status deploy/web --timeout=30s >/dev/null
  expect_eq "image" "$(image_of $ns web)" registry.example/web:v2
}

scenario_server_dry_run_queues_nothing() {
  local ns=e2e-q-dry out rc
  queue_namespace $ns || return 1
  out=$(k -n $ns set image deploy/web web=registry.example/web:v2 --dry-run=server 2>&1); rc=$?
  expect_eq "exit" "$rc" 0 &&
    expect_eq "output (the real request's answer)" "$out" "$(queued_warning $ns)"$'\n'"deployment.apps/web image updated (server dry run)" || return 1
  sleep 3 # more than an evaluation interval: a queued Deployment would have its Release
  expect_eq "image" "$(image_of $ns web)" registry.example/web:v1 &&
    expect_eq "not paused" "$(k -n $ns get deploy web -o jsonpath='{.spec.paused}')" "" &&
    expect_eq "not queued" "$(k -n $ns get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/queued-since}')" "" &&
    expect_eq "Releases (v1's Direct only)" "$(k -n $ns get releases -o jsonpath='{.items[*].status.phase}')" "Direct"
}

scenario_controller_restart_keeps_the_queue() {
  local ns=e2e-q-restart rev before after
  queue_namespace $ns || return 1
  k -n $ns set image deploy/web web=registry.example/web:v2 >/dev/null 2>&1 || fail "set image" || return 1
  rev=$(queued_revision $ns web) || fail "not queued" || return 1
  queue_state() { echo "$(k -n $ns get deploy web -o jsonpath='{.spec.paused} {.metadata.annotations.budgetgate\.dev/queued-since}') $(release_of $ns web "$rev" status.phase) $(release_of $ns web "$rev" status.queuePosition)"; }
  before=$(queue_state)
  "$E2E_DIR/cluster" restart-budgetgate --kill >/dev/null || fail "restart failed" || return 1
  sleep 3 # an evaluation interval of the new process
  after=$(queue_state)
  expect_eq "queue after the restart" "$after" "$before" || return 1
  expect_has "queued state" "$after" "true 20" || return 1
  # The budget recovers: the new process starts the rollout from what the objects say.
  budget $ns 0.8 || return 1
  wait_queued_release $ns web "$rev" Promoted 60 || return 1
  k -n $ns rollout status deploy/web --timeout=30s >/dev/null
  expect_eq "image" "$(image_of $ns web)" registry.example/web:v2 &&
    expect_eq "Releases" "$(k -n $ns get releases -o jsonpath='{.items[*].status.phase}' | tr ' ' '\n' | sort | tr '\n' ' ')" "Direct Promoted "
}

scenario_deleting_a_queued_deployment_drops_it() {
  local ns=e2e-q-delete rev i left
  queue_namespace $ns || return 1
  k -n $ns set image deploy/web web=registry.example/web:v2 >/dev/null 2>&1 || fail "set image" || return 1
  rev=$(queued_revision $ns web) || fail "not queued" || return 1
  k -n $ns delete deployment web --wait=true >/dev/null || fail "delete" || return 1
  # Its Releases are owned by it: the garbage collector takes them, and the queue with them.
  for ((i = 0; i < 40; i++)); do
    left=$(k -n $ns get releases -o name | wc -l)
    ((left == 0)) && break
    sleep 0.5
  done
  expect_eq "Releases left" "$left" 0 &&
    expect_eq "kubectl budgetgate queue" "$(kb queue $ns 2>&1)" "no queued rollouts for team $ns" &&
    expect_has "queued metric" "$(curl -fsS "http://127.0.0.1:$E2E_WEBHOOK_METRICS_PORT/metrics")" "budgetgate_queued_rollouts{team=\"$ns\"} 0"
}
