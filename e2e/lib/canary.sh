# Canary scenarios (DESIGN §7), sourced by e2e/run; `e2e/run canary` runs just these.
#
# They use tier "canary" (added to the platform policy below): the samples' bands with
# pauses of seconds instead of minutes, so a whole plan runs in well under a minute, and a
# staleAfter of 15 s so missing metrics show quickly. Budgets come from the snapshot
# (exact burn per window, see e2e/lib/snapshot.py), except in the last scenario, where
# Prometheus reads the traffic simulator's counters; the analysis window is 5m.

CANARY=(
  canary_good_release_walks_every_stage_and_is_promoted
  canary_burning_release_is_rolled_back
  canary_holds_while_metrics_are_unavailable_and_resumes
  canary_resumes_at_the_same_stage_after_the_controller_is_killed
  canary_new_template_mid_canary_supersedes
  canary_scaling_mid_canary_keeps_the_replica_count
  canary_caution_band_is_slower_than_healthy
  canary_faulty_release_is_rolled_back_from_real_traffic
  canary_manual_abort_and_promote
)
NAMESPACES+=(e2e-cy-good e2e-cy-burn e2e-cy-hold e2e-cy-kill e2e-cy-super e2e-cy-hpa e2e-cy-bands e2e-cy-hand)
# Prometheus keeps a namespace's errors for the whole 30d window: a fresh name per run.
FAULTY_NS=e2e-cy-faulty-$(date +%H%M%S)
NAMESPACES+=("$FAULTY_NS")

# The snapshot stands for a live source: keep its evaluatedAt fresh (every 2 s) so the
# canary tier's 15 s staleAfter only trips when a scenario breaks the source on purpose.
start_snapshot_refresh() {
  (while sleep 2; do python3 "$E2E_DIR/lib/snapshot.py" "$SNAP" touch 2>/dev/null; done) &
  SNAPSHOT_REFRESH=$!
}

canary_tier() {
  k patch reliabilitypolicy platform --type merge -p '{"spec": {"tiers": {"canary": {
    "enforcement": "enforce", "window": "30d", "staleAfter": "15s", "onStale": "allow",
    "bands": [
      {"name": "healthy",  "minRemaining": 0.5,  "plan": {"steps": [25, 50, 100], "pause": "6s"}},
      {"name": "caution",  "minRemaining": 0.25, "plan": {"steps": [10, 25, 50, 100], "pause": "8s"}},
      {"name": "critical", "minRemaining": 0,    "plan": {"steps": [5, 10, 25, 50, 100], "pause": "10s"}}],
    "canary": {"analysisWindow": "5m", "abortBurnRate": 14.4, "consecutiveFailures": 2, "progressDeadline": "60s"}}}}}' >/dev/null
}

# canary_namespace NS REMAINING: a progressive namespace of its own team in tier canary,
# with that budget, and Deployment web (9 replicas, image v1) running.
canary_namespace() {
  local ns=$1 remaining=$2
  team_namespace "$ns" "$ns" budgetgate.dev/tier=canary budgetgate.dev/progressive=true
  budget "$ns" "$remaining" || return 1
  k -n "$ns" create deployment web --image=registry.example/web:v1 --replicas=9 >/dev/null &&
    k -n "$ns" rollout status deploy/web --timeout=60s >/dev/null
}

# stage_of NS: "STAGE/CANARY_REPLICAS/PHASE" of Deployment web right now. The stage and
# the canary come from one LIST (one consistent read of the apiserver): two GETs could
# straddle an advance and show a stage with the next stage's canary. A canary being
# deleted (after a promotion or rollback) counts as none.
stage_of() {
  local ns=$1 shape phase
  shape=$(k -n "$ns" get deployments -o json 2>/dev/null | python3 -c '
import json, sys
items = {d["metadata"]["name"]: d for d in json.load(sys.stdin)["items"]}
web, canary = items.get("web", {}), items.get("web-canary", {})
stage = web.get("metadata", {}).get("annotations", {}).get("budgetgate.dev/stage") or "-"
live = canary and not canary["metadata"].get("deletionTimestamp")
print("%s/%s" % (stage, canary["spec"]["replicas"] if live else "-"))')
  phase=$(newest_release "$ns" '{.status.phase}')
  echo "${shape:--/-}/${phase:--}"
}

# newest_release NS JSONPATH: the field of the newest Release of web.
newest_release() {
  k -n "$1" get releases -l budgetgate.dev/deployment=web --sort-by=.metadata.name -o json 2>/dev/null |
    python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
items.sort(key=lambda r: (r["metadata"]["creationTimestamp"], int(r["metadata"]["name"].rsplit("-", 1)[1])))
path = sys.argv[1].strip("{}.").split(".")
v = items[-1] if items else {}
for p in path:
    v = v.get(p, {}) if isinstance(v, dict) else {}
print("" if v == {} else json.dumps(v) if isinstance(v, (list, dict)) else v)' "$2"
}

# manual_actions NS: the newest Release's status.actions as "action/stage/by ...".
manual_actions() {
  newest_release "$1" '{.status.actions}' | python3 -c '
import json, sys
text = sys.stdin.read().strip()
print(" ".join("%s/%s/%s" % (a["action"], a["stage"], a.get("by", "")) for a in (json.loads(text) if text else [])))'
}

# follow NS UNTIL_PHASES TIMEOUT: polls stage_of every 0.25 s, records each distinct
# "stage/replicas" while a canary runs, until the newest Release is in one of the phases
# (space separated). Prints the sequence, e.g. "0/3 1/9 promoting/9", then the phase.
# An advance is two writes: the stage annotation, then the canary's size. A poll between
# them sees the new stage with the old size ("1/1" between "0/1" and "1/3"); when the
# same stage then shows its own size, that in-between state is replaced. A stage whose
# canary is never resized stays in the sequence and fails the comparison.
follow() {
  local ns=$1 until=$2 timeout=$3 last="" now phase state between=0 t0=$SECONDS
  local -a seen=()
  while ((SECONDS - t0 < timeout)); do
    state=$(stage_of "$ns")
    phase=${state##*/}
    now=${state%/*}
    if [[ $now == -/* || $now == */- || $now == "$last" ]]; then
      : # no canary, or nothing new
    elif ((between)) && [[ ${now%/*} == "${last%/*}" ]]; then
      seen[${#seen[@]} - 1]=$now
      between=0
    else
      between=0
      [[ -n $last && ${now##*/} == "${last##*/}" ]] && between=1
      seen+=("$now")
    fi
    [[ $now == -/* || $now == */- ]] || last=$now
    if [[ " $until " == *" $phase "* ]]; then
      # The promoting state lasts as long as the stable Deployment's rollout, which kwok can
      # finish between two polls on a busy machine: then the controller's Promoting event
      # is the evidence, and the canary kept the size of its last stage.
      if [[ $phase == Promoted && -n $last && $last != promoting/* ]] && [[ " $(events_of "$ns") " == *" Promoting "* ]]; then
        seen+=("promoting/${last##*/}")
      fi
      echo "${seen[*]} => $phase"
      return 0
    fi
    sleep 0.25
  done
  echo "${seen[*]} => timeout (${phase:-none})"
  return 1
}

# wait_stage NS STAGE: until web's budgetgate.dev/stage annotation is STAGE (one kubectl
# call per poll, so a busy machine's slow polls do not miss a stage of a few seconds).
wait_stage() {
  local i
  for ((i = 0; i < 300; i++)); do
    [[ $(k -n "$1" get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/stage}' 2>/dev/null) == "$2" ]] && return 0
    sleep 0.1
  done
  return 1
}

events_of() { k -n "$1" get events --field-selector "involvedObject.name=web,involvedObject.kind=Deployment" -o jsonpath='{range .items[*]}{.reason}{" "}{end}'; }

scenario_canary_good_release_walks_every_stage_and_is_promoted() {
  canary_namespace e2e-cy-good 0.8 || return 1
  local t0 out seq rev
  t0=$(date +%s%N)
  k -n e2e-cy-good set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  seq=$(follow e2e-cy-good Promoted 90) || fail "no promotion: $seq" || return 1
  local ms=$((($(date +%s%N) - t0) / 1000000))
  # healthy band: 25% of 9 = 3 canary pods, 50% = 9, then the promotion.
  expect_eq "stages" "$seq" "0/3 1/9 promoting/9 => Promoted" || return 1
  k -n e2e-cy-good rollout status deploy/web --timeout=30s >/dev/null
  rev=$(newest_release e2e-cy-good '{.spec.revision}')
  expect_eq "image" "$(image_of e2e-cy-good web)" registry.example/web:v2 &&
    expect_eq "paused" "$(k -n e2e-cy-good get deploy web -o jsonpath='{.spec.paused}')" "" &&
    expect_eq "history" "$(k -n e2e-cy-good get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/history}')" "$rev" &&
    expect_eq "canary gone" "$(k -n e2e-cy-good get deploy web-canary -o name 2>&1 | grep -c NotFound)" 1 &&
    expect_eq "replicas" "$(k -n e2e-cy-good get deploy web -o jsonpath='{.spec.replicas}')" 9 &&
    expect_eq "release" "$(newest_release e2e-cy-good '{.spec.band}') $(newest_release e2e-cy-good '{.status.reason}')" \
      "healthy promoted after 2 stage(s) of plan 25,50,100 every 6s" || return 1
  # kubectl's columns (the age left out).
  local first
  first=$(k -n e2e-cy-good get releases -o jsonpath='{.items[?(@.status.phase=="Direct")].spec.revision}')
  expect_eq "kubectl get releases" "$(columns releases k -n e2e-cy-good get releases | sed 's/ [0-9a-z]*$//')" \
    "NAME DEPLOYMENT REVISION BAND PHASE STAGE WEIGHT QUEUE AGE"$'\n'"web-${first:0:8}-1 web $first healthy Direct"$'\n'"web-${rev:0:8}-2 web $rev healthy Promoted 2 100" || return 1
  out=$(events_of e2e-cy-good)
  expect_has "events" "$out" "CanaryStarted CanaryCreated" &&
    expect_has "events" "$out" "StageAdvanced" && expect_has "events" "$out" "Promoting" &&
    expect_has "events" "$out" "Promoted" || return 1
  out=$(k -n e2e-cy-good describe deploy web)
  expect_has "describe" "$out" "revision $rev promoted and rolled out; canary removed" || return 1
  echo "promoted ${ms} ms after kubectl set image (plan 25,50,100 every 6s)" >"$OUT/detail"
}

scenario_canary_burning_release_is_rolled_back() {
  canary_namespace e2e-cy-burn 0.8 || return 1
  local seq rev t0 ms out
  k -n e2e-cy-burn set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  # Wait for the canary to run, then burn the budget at page rate (20x > abortBurnRate 14.4).
  seq=$(follow e2e-cy-burn Progressing 30) || fail "no canary: $seq" || return 1
  for ((i = 0; i < 40; i++)); do [[ $(stage_of e2e-cy-burn) == 0/3/* ]] && break; sleep 0.25; done
  t0=$(date +%s%N)
  snapshot set e2e-cy-burn avail 99.9 0.7 --paging
  seq=$(follow e2e-cy-burn "RolledBack Promoted" 60) || fail "no rollback: $seq" || return 1
  ms=$((($(date +%s%N) - t0) / 1000000))
  expect_eq "outcome" "${seq##*=> }" RolledBack || return 1
  rev=$(newest_release e2e-cy-burn '{.spec.revision}')
  k -n e2e-cy-burn rollout status deploy/web --timeout=30s >/dev/null
  expect_eq "image restored" "$(image_of e2e-cy-burn web)" registry.example/web:v1 &&
    expect_eq "paused" "$(k -n e2e-cy-burn get deploy web -o jsonpath='{.spec.paused}')" "" &&
    expect_eq "rolled-back-revision" "$(k -n e2e-cy-burn get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/rolled-back-revision}')" "$rev" &&
    expect_eq "canary gone" "$(k -n e2e-cy-burn get deploy web-canary -o name 2>&1 | grep -c NotFound)" 1 &&
    expect_eq "reason" "$(newest_release e2e-cy-burn '{.status.reason}')" \
      "SLO e2e-cy-burn/avail burns 20.0x over 5m, above abortBurnRate 14.4x (2 checks in a row)" || return 1
  out=$(k -n e2e-cy-burn describe deploy web)
  expect_has "describe" "$out" "CanaryUnhealthy" && expect_has "describe" "$out" "RolledBack" || return 1
  out=$(k -n e2e-cy-burn get releases)
  expect_has "get releases" "$out" "RolledBack" || return 1
  echo "rolled back ${ms} ms after the burn reached the snapshot (interval ${INTERVAL}s, 2 failed checks)" >"$OUT/detail"
}

scenario_canary_holds_while_metrics_are_unavailable_and_resumes() {
  canary_namespace e2e-cy-hold 0.4 || return 1   # caution: 10,25,50,100 every 8s
  local seq before after i release
  k -n e2e-cy-hold set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  for ((i = 0; i < 80; i++)); do [[ $(stage_of e2e-cy-hold) == 0/1/Progressing ]] && break; sleep 0.25; done
  # The SLI's series go missing: no burn over the analysis window.
  snapshot set e2e-cy-hold avail 99.9 0.4 --missing-windows
  release=$(newest_release e2e-cy-hold '{.metadata.name}')
  for ((i = 0; i < 60; i++)); do
    [[ $(k -n e2e-cy-hold get release "$release" -o jsonpath='{.status.conditions[?(@.type=="MetricsUnavailable")].status}') == True ]] && break
    sleep 0.5
  done
  before=$(stage_of e2e-cy-hold)
  sleep 10  # longer than the 8 s pause: a healthy stage would have advanced
  after=$(stage_of e2e-cy-hold)
  snapshot set e2e-cy-hold avail 99.9 0.4
  [[ $before == [01]/[13]/Progressing ]] || fail "held at [$before], want stage 0 or 1 Progressing" || return 1
  expect_eq "still held" "$after" "$before" &&
    expect_has "condition" "$(k -n e2e-cy-hold get release "$release" -o jsonpath='{.status.conditions[?(@.type=="MetricsUnavailable")].message}')" "no burn rate over 5m" || return 1
  seq=$(follow e2e-cy-hold "Promoted RolledBack" 90) || fail "did not resume: $seq" || return 1
  expect_eq "after the outage" "${seq##*=> }" Promoted &&
    expect_eq "condition cleared" "$(k -n e2e-cy-hold get release "$release" -o jsonpath='{.status.conditions[?(@.type=="MetricsUnavailable")].status}')" False &&
    expect_has "events" "$(events_of e2e-cy-hold)" "MetricsUnavailable"
}

scenario_canary_resumes_at_the_same_stage_after_the_controller_is_killed() {
  canary_namespace e2e-cy-kill 0.8 || return 1
  local i at_kill at_restart seq releases
  k -n e2e-cy-kill set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  # Killed at stage 1 (one kubectl call per poll: a slow poll must not miss its 6 s); a
  # poll that still misses it kills at stage 0, which tests the same thing.
  for ((i = 0; i < 200; i++)); do
    at_kill=$(k -n e2e-cy-kill get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/stage} {.metadata.annotations.budgetgate\.dev/stage-started-at}')
    [[ ${at_kill%% *} == 1 ]] && break
    sleep 0.1
  done
  "$E2E_DIR/cluster" restart-budgetgate --kill >/dev/null || fail "restart failed" || return 1
  at_restart=$(k -n e2e-cy-kill get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/stage} {.metadata.annotations.budgetgate\.dev/stage-started-at}')
  seq=$(follow e2e-cy-kill "Promoted RolledBack" 90) || fail "did not finish: $seq" || return 1
  releases=$(k -n e2e-cy-kill get releases -o name | wc -l)
  # After the restart the plan goes on from the stage it was at (how far it got while
  # budgetgate restarted depends on the machine): a tail of the whole plan.
  local full="0/3 1/9 promoting/9 => Promoted" got=${seq#1/3 }
  [[ ${at_kill%% *} == [01] ]] || fail "stage when killed: ${at_kill%% *}, want 1 (or 0)" || return 1
  [[ $full == *"$got" && $got == *" => Promoted" ]] || fail "finished: got [$got], want a tail of [$full]" || return 1
  [[ ${at_kill%% *} == 1 && $got == 0/* ]] && { fail "back at stage 0 after a kill at stage 1: $got"; return 1; }
  # Right after the restart: the same stage with the same start, or (when its pause ran out
  # while budgetgate was down) a later one; never an earlier stage or a new clock.
  if [[ ${at_restart%% *} == "${at_kill%% *}" ]]; then
    expect_eq "same stage and start after the restart" "$at_restart" "$at_kill" || return 1
  elif [[ ${at_kill%% *} == 1 && ${at_restart%% *} == 0 ]]; then
    fail "stage 0 after a kill at stage 1" || return 1
  fi
  expect_eq "one Release (v1 Direct + v2)" "$releases" 2
}

scenario_canary_new_template_mid_canary_supersedes() {
  canary_namespace e2e-cy-super 0.8 || return 1
  local i first second
  k -n e2e-cy-super set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  wait_stage e2e-cy-super 1 || fail "never at stage 1: $(stage_of e2e-cy-super)" || return 1
  first=$(newest_release e2e-cy-super '{.metadata.name}')
  k -n e2e-cy-super set image deploy/web web=registry.example/web:v3 >/dev/null || fail "set image v3" || return 1
  for ((i = 0; i < 80; i++)); do
    [[ $(k -n e2e-cy-super get deploy web-canary -o jsonpath='{.spec.template.spec.containers[0].image}' 2>/dev/null) == registry.example/web:v3 ]] && break
    sleep 0.25
  done
  second=$(newest_release e2e-cy-super '{.metadata.name}')
  expect_eq "old release" "$(k -n e2e-cy-super get release "$first" -o jsonpath='{.status.phase}')" Superseded &&
    expect_eq "canary image" "$(k -n e2e-cy-super get deploy web-canary -o jsonpath='{.spec.template.spec.containers[0].image}')" registry.example/web:v3 &&
    expect_eq "restarted at" "$(stage_of e2e-cy-super)" "0/3/Progressing" || return 1
  [[ $first != "$second" ]] || fail "no new Release" || return 1
  local seq
  seq=$(follow e2e-cy-super "Promoted RolledBack" 90) || fail "did not finish: $seq" || return 1
  expect_eq "outcome" "${seq##*=> }" Promoted && expect_eq "image" "$(image_of e2e-cy-super web)" registry.example/web:v3
}

scenario_canary_scaling_mid_canary_keeps_the_replica_count() {
  canary_namespace e2e-cy-hpa 0.8 || return 1
  local i seq
  # An HPA owns spec.replicas (no metrics server here, so we move replicas the way it would).
  k -n e2e-cy-hpa autoscale deploy web --min=3 --max=12 >/dev/null || fail "autoscale" || return 1
  k -n e2e-cy-hpa set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  wait_stage e2e-cy-hpa 0 || fail "never at stage 0: $(stage_of e2e-cy-hpa)" || return 1
  k -n e2e-cy-hpa scale deploy web --replicas=12 >/dev/null || fail "scale" || return 1
  # 25% of 12 = 4 canary pods once scaled (one kubectl call per poll: both Deployments in
  # one read), unless stage 0's pause ran out first; 50% = 12 at stage 1 either way.
  local sizes="" resized=""
  for ((i = 0; i < 100; i++)); do
    sizes=$(k -n e2e-cy-hpa get deploy -o jsonpath='{range .items[*]}{.metadata.name}={.spec.replicas}={.metadata.annotations.budgetgate\.dev/stage} {end}')
    [[ " $sizes " == *" web-canary=4="* ]] && { resized="0/4 "; break; }
    [[ " $sizes " == *" web=12=0 "* ]] || break
    sleep 0.1
  done
  [[ -n $resized || " $sizes " != *" web=12=0 "* ]] || fail "the canary kept its size at stage 0: $sizes" || return 1
  seq=$(follow e2e-cy-hpa "Promoted RolledBack" 90) || fail "did not finish: $seq" || return 1
  expect_has "stage 1" "$seq" "1/12" &&
    expect_eq "outcome" "${seq##*=> }" Promoted &&
    expect_eq "replicas kept" "$(k -n e2e-cy-hpa get deploy web -o jsonpath='{.spec.replicas}')" 12 || return 1
  echo "${resized:-(stage 0 ended before the resize) }$seq" >"$OUT/detail"
}

scenario_canary_caution_band_is_slower_than_healthy() {
  canary_namespace e2e-cy-bands 0.8 || return 1
  local t0 healthy caution seq_h seq_c
  t0=$SECONDS
  k -n e2e-cy-bands set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  seq_h=$(follow e2e-cy-bands "Promoted RolledBack" 90) || fail "healthy: $seq_h" || return 1
  healthy=$((SECONDS - t0))
  k -n e2e-cy-bands rollout status deploy/web --timeout=30s >/dev/null
  budget e2e-cy-bands 0.4 || return 1
  t0=$SECONDS
  k -n e2e-cy-bands set image deploy/web web=registry.example/web:v3 >/dev/null || fail "set image v3" || return 1
  seq_c=$(follow e2e-cy-bands "Promoted RolledBack" 120) || fail "caution: $seq_c" || return 1
  caution=$((SECONDS - t0))
  expect_eq "healthy plan" "$seq_h" "0/3 1/9 promoting/9 => Promoted" &&
    expect_eq "caution plan" "$seq_c" "0/1 1/3 2/9 promoting/9 => Promoted" &&
    expect_eq "caution band" "$(newest_release e2e-cy-bands '{.spec.band}')" caution || return 1
  ((caution > healthy)) || fail "caution took ${caution}s, healthy ${healthy}s" || return 1
  echo "healthy band promoted in ${healthy}s (3 steps every 6s), caution in ${caution}s (4 steps every 8s)" >"$OUT/detail"
}

scenario_canary_faulty_release_is_rolled_back_from_real_traffic() {
  local ns=$FAULTY_NS i t0 ms seq rev
  k create namespace $ns >/dev/null &&
    k label namespace $ns budgetgate.dev/team=$ns budgetgate.dev/tier=canary budgetgate.dev/progressive=true >/dev/null || return 1
  # A strict availability SLO over the simulator's per-pod counters (not in the snapshot).
  k apply -f - >/dev/null <<YAML || return 1
apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: avail, namespace: $ns}
spec:
  service: web
  objective: 99.99
  indicator: {ratio: {errors: 'http_requests_total{namespace="$ns",deployment="web",code=~"5.."}', total: 'http_requests_total{namespace="$ns",deployment="web"}'}}
YAML
  k -n $ns create deployment web --image=registry.example/web:1.0 --replicas=9 >/dev/null &&
    k -n $ns rollout status deploy/web --timeout=60s >/dev/null || return 1
  for ((i = 0; i < 60; i++)); do
    [[ $(k get teambudget $ns -o jsonpath='{.status.tiers[0].band}' 2>/dev/null) == healthy ]] && break
    sleep 0.5
  done
  expect_eq "band before" "$(k get teambudget $ns -o jsonpath='{.status.tiers[0].band}')" healthy || return 1
  k -n $ns set image deploy/web web=registry.example/web:1.1-faulty >/dev/null || fail "set image" || return 1
  # Errors start when the canary's pods are Ready (the simulator counts Ready pods only).
  for ((i = 0; i < 80; i++)); do
    [[ $(k -n $ns get deploy web-canary -o jsonpath='{.status.availableReplicas}' 2>/dev/null) -ge 1 ]] && break
    sleep 0.25
  done
  t0=$(date +%s%N)
  seq=$(follow $ns "RolledBack Promoted" 60) || fail "no outcome: $seq" || return 1
  ms=$((($(date +%s%N) - t0) / 1000000))
  expect_eq "outcome" "${seq##*=> }" RolledBack || return 1
  rev=$(newest_release $ns '{.spec.revision}')
  k -n $ns rollout status deploy/web --timeout=30s >/dev/null
  expect_eq "image restored" "$(image_of $ns web)" registry.example/web:1.0 &&
    expect_eq "rolled-back-revision" "$(k -n $ns get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/rolled-back-revision}')" "$rev" &&
    expect_has "reason" "$(newest_release $ns '{.status.reason}')" "$ns" &&
    expect_has "describe" "$(k -n $ns describe deploy web)" "RolledBack" || return 1
  ((ms <= 60000)) || fail "rolled back ${ms} ms after the errors started" || return 1
  echo "rolled back ${ms} ms after the faulty canary's pods were Ready (analysis window 5m; reason: $(newest_release $ns '{.status.reason}'))" >"$OUT/detail"
}

scenario_canary_manual_abort_and_promote() {
  canary_namespace e2e-cy-hand 0.4 || return 1   # caution: 10,25,50,100 every 8s
  k -n e2e-cy-hand create rolebinding team-edit --clusterrole=edit --user=e2e-user >/dev/null || return 1
  local i seq by
  k -n e2e-cy-hand set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  for ((i = 0; i < 80; i++)); do [[ $(stage_of e2e-cy-hand) == 0/1/Progressing ]] && break; sleep 0.25; done
  # An edit-role user aborts and tries to name someone else as the requester.
  as_user -n e2e-cy-hand annotate deploy web budgetgate.dev/action=abort budgetgate.dev/action-by=platform-lead >/dev/null ||
    fail "annotate abort" || return 1
  seq=$(follow e2e-cy-hand "RolledBack Promoted" 30) || fail "abort: $seq" || return 1
  k -n e2e-cy-hand rollout status deploy/web --timeout=30s >/dev/null
  by=$(manual_actions e2e-cy-hand)
  expect_eq "aborted" "${seq##*=> }" RolledBack &&
    expect_eq "reason" "$(newest_release e2e-cy-hand '{.status.reason}')" "aborted by hand (e2e-user) with annotation budgetgate.dev/action=abort" &&
    expect_eq "recorded" "$by" "abort/0/e2e-user" &&
    expect_eq "image" "$(image_of e2e-cy-hand web)" registry.example/web:v1 &&
    expect_eq "annotations cleared" "$(k -n e2e-cy-hand get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/action}{.metadata.annotations.budgetgate\.dev/action-by}')" "" || return 1
  # The next rollout is gated and canaried again; promote it by hand at its first stage.
  k -n e2e-cy-hand set image deploy/web web=registry.example/web:v3 >/dev/null || fail "set image v3" || return 1
  wait_stage e2e-cy-hand 0 || fail "never at stage 0: $(stage_of e2e-cy-hand)" || return 1
  k -n e2e-cy-hand annotate deploy web budgetgate.dev/action=promote >/dev/null || fail "annotate promote" || return 1
  seq=$(follow e2e-cy-hand "Promoted RolledBack" 30) || fail "promote: $seq" || return 1
  # Straight from stage 0 to the promotion: no stage 1 or 2 in between (a promotion that
  # ends between two polls shows no promoting state; no StageAdvanced event either way).
  local got=${seq/0\/1 /}
  [[ $got == "promoting/1 => Promoted" || $got == "=> Promoted" ]] || fail "promoted from stage 0: got [$seq]" || return 1
  [[ " $(events_of e2e-cy-hand) " != *" StageAdvanced "* ]] || fail "a stage advanced: $(events_of e2e-cy-hand)" || return 1
  expect_eq "promoted" "${seq##*=> }" Promoted &&
    expect_eq "image" "$(image_of e2e-cy-hand web)" registry.example/web:v3 &&
    expect_eq "annotations cleared" "$(k -n e2e-cy-hand get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/action}{.metadata.annotations.budgetgate\.dev/action-by}')" "" &&
    expect_eq "promote reason" "$(newest_release e2e-cy-hand '{.status.reason}')" "promoted after 3 stage(s) of plan 10,25,50,100 every 8s; by hand: promote at stage 0 (e2e-admin)" &&
    expect_eq "promote recorded" "$(manual_actions e2e-cy-hand)" "promote/0/e2e-admin" &&
    expect_has "events" "$(k -n e2e-cy-hand describe deploy web)" "promoted by hand (e2e-admin)"
}
