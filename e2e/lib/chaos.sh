# Chaos scenarios (`e2e/run chaos`; not in the default run): the control plane's parts
# fail under a running canary. Every rollout must end in exactly one terminal Release for
# its revision, with the outcome it would have had without the failure, and no duplicate
# Release. Sourced by e2e/run after canary.sh and analysis.sh (their helpers).

CHAOS=(
  chaos_apiserver_restarted_mid_canary
  chaos_etcd_restarted_mid_canary
  chaos_prometheus_down_mid_canary_holds_and_resumes
  chaos_controller_killed_at_each_canary_state
)
NAMESPACES+=(e2e-ch-api e2e-ch-etcd e2e-ch-kill-start e2e-ch-kill-promoting e2e-ch-kill-rollback)
CHAOS_PROM_NS=e2e-ch-prom-$(date +%H%M%S)
NAMESPACES+=("$CHAOS_PROM_NS")

# one_terminal_release NS OUTCOME: web's Releases are v1's Direct and exactly one for v2,
# in phase OUTCOME.
one_terminal_release() {
  local ns=$1 want=$2 phases
  phases=$(k -n "$ns" get releases -l budgetgate.dev/deployment=web -o jsonpath='{range .items[*]}{.status.phase}{" "}{end}' | tr ' ' '\n' | sort | tr '\n' ' ')
  expect_eq "Releases of $ns" "$phases" "$(printf '%s\n' Direct "$want" | sort | tr '\n' ' ')"
}

# restart_mid_canary NS COMPONENT: a healthy canary (25, 50, 100 every 6 s) whose
# COMPONENT is restarted at stage 0; it must still walk to Promoted.
restart_mid_canary() {
  local ns=$1 component=$2 i seq t0
  canary_namespace "$ns" 0.8 || return 1
  k -n "$ns" set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  for ((i = 0; i < 80; i++)); do [[ $(stage_of "$ns") == 0/3/Progressing ]] && break; sleep 0.25; done
  [[ $(stage_of "$ns") == 0/3/Progressing ]] || fail "never at stage 0: $(stage_of "$ns")" || return 1
  t0=$SECONDS
  "$E2E_DIR/cluster" restart "$component" >/dev/null 2>&1 || fail "restart $component failed" || return 1
  local down=$((SECONDS - t0))
  seq=$(follow "$ns" "Promoted RolledBack Failed" 120) || fail "did not finish: $seq" || return 1
  expect_eq "outcome" "${seq##*=> }" Promoted && one_terminal_release "$ns" Promoted || return 1
  echo "$component restarted at stage 0 (${down}s to answer again); stages after: $seq" >"$OUT/detail"
}

scenario_chaos_apiserver_restarted_mid_canary() { restart_mid_canary e2e-ch-api kube-apiserver; }

scenario_chaos_etcd_restarted_mid_canary() { restart_mid_canary e2e-ch-etcd etcd; }

scenario_chaos_prometheus_down_mid_canary_holds_and_resumes() {
  local ns=$CHAOS_PROM_NS i held="" phase
  traffic_analysis_namespace "$ns" 99 registry.example/web:1.0 || return 1
  k -n "$ns" set image deploy/web web=registry.example/web:1.1 >/dev/null || fail "set image" || return 1
  for ((i = 0; i < 120; i++)); do [[ $(stage_of "$ns") == 0/1/Progressing ]] && break; sleep 0.25; done
  [[ $(stage_of "$ns") == 0/1/Progressing ]] || fail "never at stage 0: $(stage_of "$ns")" || return 1
  "$E2E_DIR/cluster" stop prometheus >/dev/null 2>&1 || fail "stop prometheus" || return 1
  # 30 s without metrics (the stage's pause is 12 s): the canary must hold, not roll back.
  for ((i = 0; i < 30; i++)); do
    held+="$(stage_of "$ns" | cut -d/ -f1,3) "
    sleep 1
  done
  "$E2E_DIR/cluster" start prometheus >/dev/null 2>&1 || fail "start prometheus" || return 1
  phase=$(wait_phase "$ns" "Promoted RolledBack Failed" 180) || fail "no outcome: $phase" || return 1
  expect_eq "outcome" "$phase" Promoted &&
    one_terminal_release "$ns" Promoted &&
    expect_eq "no failed check" "$(k -n "$ns" get events --field-selector involvedObject.name=web,reason=CanaryUnhealthy -o name | wc -l)" 0 || return 1
  [[ $held != *RolledBack* && $held != *Promoted* && $held != *Failed* ]] || fail "while Prometheus was down: $held" || return 1
  echo "stage/phase each second while Prometheus was down: $(echo "$held" | tr ' ' '\n' | uniq -c | awk '{printf "%s x%s, ", $2, $1}')then $phase" >"$OUT/detail"
}

# killed_at NS STATE_PATTERN OUTCOME: a v2 rollout of web; budgetgate SIGKILLed as soon as
# stage_of matches the pattern (fails when it never does within 60 s) and started again;
# the rollout must end in OUTCOME with one terminal Release. Prints "[state] -> outcome".
killed_at() {
  local ns=$1 pattern=$2 want=$3 i state seq
  canary_namespace "$ns" 0.8 || return 1
  k -n "$ns" set image deploy/web web=registry.example/web:v2 >/dev/null || { echo "set image failed"; return 1; }
  for ((i = 0; i < 600; i++)); do
    state=$(stage_of "$ns")
    # shellcheck disable=SC2053
    [[ $state == $pattern ]] && break
    sleep 0.1
  done
  [[ $state == $pattern ]] || { echo "never in state $pattern (last: $state)"; return 1; }
  "$E2E_DIR/cluster" restart-budgetgate --kill >/dev/null 2>&1 || { echo "restart failed"; return 1; }
  seq=$(follow "$ns" "Promoted RolledBack Failed" 120) || { echo "did not finish: $seq"; return 1; }
  [[ ${seq##*=> } == "$want" ]] || { echo "outcome ${seq##*=> }, want $want"; return 1; }
  one_terminal_release "$ns" "$want" >/dev/null || { echo "not one terminal Release"; return 1; }
  echo "[$state] -> ${seq##*=> }"
}

scenario_chaos_controller_killed_at_each_canary_state() {
  local seen detail="" i seq
  # Start: killed right after the rollout was admitted, before or as the canary is made.
  seen=$(killed_at e2e-ch-kill-start '*' Promoted) || fail "start: $seen" || return 1
  detail+="start $seen; "
  # Promoting: killed while the stable Deployment takes the new template.
  seen=$(killed_at e2e-ch-kill-promoting 'promoting/*' Promoted) || fail "promoting: $seen" || return 1
  detail+="promoting $seen; "
  # Rolling back: the budget burns at stage 0; killed between the first failed check and the
  # second (consecutiveFailures 2), when the Release has counted one.
  canary_namespace e2e-ch-kill-rollback 0.8 || return 1
  k -n e2e-ch-kill-rollback set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  wait_stage e2e-ch-kill-rollback 0 || fail "never at stage 0" || return 1
  snapshot set e2e-ch-kill-rollback avail 99.9 0.7 --paging
  for ((i = 0; i < 300; i++)); do
    [[ $(newest_release e2e-ch-kill-rollback '{.status.failedChecks}') == 1 ]] && break
    sleep 0.1
  done
  seen="failedChecks=$(newest_release e2e-ch-kill-rollback '{.status.failedChecks}') $(stage_of e2e-ch-kill-rollback)"
  [[ $seen == failedChecks=1\ * ]] || fail "never between the first and the second failed check: $seen" || return 1
  "$E2E_DIR/cluster" restart-budgetgate --kill >/dev/null 2>&1 || fail "restart failed" || return 1
  seq=$(follow e2e-ch-kill-rollback "Promoted RolledBack Failed" 120) || fail "rollback: did not finish: $seq" || return 1
  expect_eq "rollback: outcome" "${seq##*=> }" RolledBack && one_terminal_release e2e-ch-kill-rollback RolledBack &&
    expect_eq "rollback: image restored" "$(image_of e2e-ch-kill-rollback web)" registry.example/web:v1 || return 1
  detail+="rolling back [$seen] -> ${seq##*=> }"
  echo "$detail" >"$OUT/detail"
}
