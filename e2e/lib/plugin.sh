# `kubectl budgetgate`, found by kubectl's own plugin discovery: the budgetgate binary
# linked as kubectl-budgetgate into a directory on the PATH, as a user installs it.
# Sourced by e2e/run, part of the default run.

PLUGIN=(
  kubectl_plugin_explains_a_denial_and_grants_an_exception
  kubectl_plugin_promotes_a_canary_and_lists_the_ledger
)
NAMESPACES+=(e2e-plugin e2e-plugin-cy)

# kb ARGS...: `kubectl budgetgate ARGS...` with the plugin on the PATH.
kb() {
  local dir=$RUN/plugin-bin
  mkdir -p "$dir"
  ln -sf "${E2E_BUDGETGATE_BIN:-$ROOT/target/debug/budgetgate}" "$dir/kubectl-budgetgate"
  PATH="$dir:$PATH" kubectl budgetgate "$@"
}

scenario_kubectl_plugin_explains_a_denial_and_grants_an_exception() {
  local ns=e2e-plugin out rc webhook listed
  team_namespace "$ns" "$ns" budgetgate.dev/tier=production
  budget "$ns" 0.8 && deploy "$ns" web registry.example/web:v1 || return 1
  budget "$ns" -0.25 || return 1
  listed=$(PATH="$RUN/plugin-bin:$PATH" kb --help >/dev/null; PATH="$RUN/plugin-bin:$PATH" kubectl plugin list 2>/dev/null)
  expect_has "kubectl plugin list" "$listed" "kubectl-budgetgate" || return 1
  # why: the webhook's own answer, before anyone tries.
  out=$(kb -n "$ns" why web 2>&1); rc=$?
  webhook=$(k -n "$ns" set image deploy/web web=registry.example/web:v2 2>&1)
  webhook=${webhook#*denied the request: }
  expect_eq "why exit" "$rc" 1 &&
    expect_eq "why" "$out" "deployment $ns/web (team $ns, tier production, enforce mode)"$'\n'"a rollout now: DENIED"$'\n'"$webhook" &&
    expect_has "the webhook's message" "$webhook" "the error budget is exhausted: team $ns has -25.0% remaining" || return 1
  out=$(kb -n "$ns" why web -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["verdict"], d["allowed"], d["reason"], d["class"])')
  expect_eq "why -o json" "$out" "deny False exhausted rollout" || return 1
  out=$(kb status "$ns" | tr -s ' ')
  expect_has "status" "$out" "$ns production -25.0%" || return 1
  # An approver's exception through the plugin; why then lets the rollout through.
  out=$(kb -n "$ns" exception create web --reason "INC-4411 hotfix" --approved-by alice --expires 1h --max-rollouts 1 2>&1) ||
    fail "exception create: $out" || return 1
  [[ $out =~ ^budgetexception\.budgetgate\.dev/web-[a-z0-9]{5}\ created:\ override\ for\ deployment\ $ns/web,\ expires\ 20[0-9-]{8}T ]] ||
    fail "exception create said [$out]" || return 1
  local name=${out#budgetexception.budgetgate.dev/}; name=${name%% *}
  expect_eq "approved by" "$(k -n "$ns" get budgetexception "$name" -o jsonpath='{.spec.kind}/{.spec.approvedBy}/{.spec.maxRollouts}/{.spec.selector.matchLabels.app}')" "override/alice/1/web" || return 1
  expect_eq "kubectl get budgetexceptions" "$(columns budgetexceptions k -n "$ns" get budgetexceptions)" \
    "NAME KIND APPROVED-BY EXPIRES"$'\n'"$name override alice $(k -n "$ns" get budgetexception "$name" -o jsonpath='{.spec.expiresAt}')" || return 1
  for ((i = 0; i < 20; i++)); do
    out=$(kb -n "$ns" why web 2>&1) && break
    sleep 0.5
  done
  # Let through at the pace of the tier's last band, with the exception's warning.
  expect_eq "why with the exception" "$out" "deployment $ns/web (team $ns, tier production, enforce mode)"$'\n'"a rollout now: ALLOWED (band critical, -25.0% remaining)"$'\n'"budgetgate: exception $name (approved by alice) lets this through until $(k -n "$ns" get budgetexception "$name" -o jsonpath='{.spec.expiresAt}')" || return 1
  echo "why printed the webhook's denial word for word; the exception it created let the next why through" >"$OUT/detail"
}

scenario_kubectl_plugin_promotes_a_canary_and_lists_the_ledger() {
  local ns=e2e-plugin-cy out rc seq
  canary_namespace "$ns" 0.4 || return 1   # caution: 10,25,50,100 every 8s
  out=$(kb -n "$ns" promote web 2>&1); rc=$?
  expect_eq "promote without a canary: exit" "$rc" 1 &&
    expect_eq "promote without a canary" "$out" "deployment $ns/web: no canary in progress; nothing to promote" || return 1
  k -n "$ns" set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  wait_stage "$ns" 0 || fail "never at stage 0: $(stage_of "$ns")" || return 1
  out=$(kb -n "$ns" promote web 2>&1) || fail "promote: $out" || return 1
  expect_eq "promote" "$out" "deployment.apps/web: promote requested; budgetgate acts on its next look and records it on the Release with your name" || return 1
  seq=$(follow "$ns" "Promoted RolledBack" 30) || fail "no outcome: $seq" || return 1
  expect_eq "outcome" "${seq##*=> }" Promoted || return 1
  out=$(kb -n "$ns" releases web | tr -s ' ')
  expect_has "releases: header" "$out" "NAME DEPLOYMENT REVISION PHASE STAGE CONSUMED BY HAND AGE REASON" &&
    expect_has "releases: the promotion" "$out" "Promoted 3 (100%)" &&
    expect_has "releases: who" "$out" "promote@0 (e2e-admin)" || return 1
  out=$(kb -n "$ns" releases -o json | python3 -c 'import json,sys; print(" ".join(r["status"]["phase"] for r in json.load(sys.stdin)))')
  expect_eq "releases -o json" "$out" "Direct Promoted" || return 1
  echo "promote through the plugin at stage 0 → Promoted; the ledger names e2e-admin" >"$OUT/detail"
}
