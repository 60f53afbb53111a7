# Budget escapes a team with the standard `edit` role might try during a freeze (DESIGN §6
# steps 2 and 4, §9), with real kubectl as the user e2e-user; sourced by e2e/run, part of the
# default run.

ESCAPES=(
  edit_user_restarts_pods_during_a_freeze
  edit_user_planted_replica_set_is_no_rollback
  forged_system_annotations_are_put_back_on_the_status_subresource
)
NAMESPACES+=(e2e-esc-restart e2e-esc-planted e2e-esc-status)

# frozen_team NS: a production namespace of team NS whose user e2e-user has the `edit`
# role, web v1 running, then the budget exhausted (-10%).
frozen_team() {
  local ns=$1
  team_namespace "$ns" "$ns" budgetgate.dev/tier=production
  k -n "$ns" create rolebinding team-edit --clusterrole=edit --user=e2e-user >/dev/null || return 1
  budget "$ns" 0.8 && deploy "$ns" web registry.example/web:v1 || return 1
  budget "$ns" -0.1
}

as_user() { kubectl --context e2e-user "$@"; }

scenario_edit_user_restarts_pods_during_a_freeze() {
  local ns=e2e-esc-restart out rc
  frozen_team "$ns" || return 1
  out=$(as_user -n "$ns" rollout restart deploy/web 2>&1); rc=$?
  expect_eq "restart exit" "$rc" 0 &&
    expect_eq "restart output" "$out" $'Warning: budgetgate: restart of '"$ns"$'/web let through despite the freeze (budget exhausted, -10.0% left)\ndeployment.apps/web restarted' || return 1
  k -n "$ns" rollout status deploy/web --timeout=60s >/dev/null || fail "the restart did not roll out" || return 1
  # The restart changed nothing but the restart annotation: a new image is still refused.
  out=$(as_user -n "$ns" set image deploy/web web=registry.example/web:v2 2>&1); rc=$?
  expect_eq "rollout exit" "$rc" 1 &&
    expect_has "rollout refused" "$out" "budgetgate denied the rollout of deployment $ns/web (team $ns, tier production): the error budget is exhausted" &&
    expect_eq "image" "$(image_of "$ns" web)" registry.example/web:v1
}

scenario_edit_user_planted_replica_set_is_no_rollback() {
  local ns=e2e-esc-planted out rc i owner
  frozen_team "$ns" || return 1
  # A ReplicaSet with the Deployment's selector labels and the new image, no replicas: the
  # Deployment controller adopts it as if the Deployment had run that revision.
  as_user -n "$ns" apply -f - >/dev/null <<YAML || fail "the edit role could not create the ReplicaSet" || return 1
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-planted, labels: {app: web}}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: registry.example/web:v2}]}
YAML
  for ((i = 0; i < 50; i++)); do
    owner=$(k -n "$ns" get rs web-planted -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}' 2>/dev/null)
    [[ $owner == Deployment/web ]] && break
    sleep 0.2
  done
  expect_eq "adopted by the Deployment" "$owner" Deployment/web || return 1
  sleep 1   # one more watch event for the webhook's index
  out=$(as_user -n "$ns" set image deploy/web web=registry.example/web:v2 2>&1); rc=$?
  expect_eq "exit" "$rc" 1 &&
    expect_has "refused as a rollout, not let through as a rollback" "$out" "budgetgate denied the rollout of deployment $ns/web (team $ns, tier production): the error budget is exhausted" &&
    expect_eq "image" "$(image_of "$ns" web)" registry.example/web:v1
}

scenario_forged_system_annotations_are_put_back_on_the_status_subresource() {
  local ns=e2e-esc-status history out rc
  frozen_team "$ns" || return 1
  # What web's ledger says now (a Direct release of v1 leaves no history entry).
  history=$(k -n "$ns" get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/history}')
  # Whoever may write deployments/status (not the edit role) forges the ledger there: a
  # revision in history would make a later change to it pass a freeze as a rollback.
  out=$(k -n "$ns" patch deploy web --subresource=status --type merge \
    -p '{"metadata": {"annotations": {"budgetgate.dev/history": "0123456789abcdef"}}}' 2>&1); rc=$?
  expect_eq "patch exit" "$rc" 0 &&
    expect_eq "history after the forged status write" "$(k -n "$ns" get deploy web -o jsonpath='{.metadata.annotations.budgetgate\.dev/history}')" "$history" || return 1
  out=$(as_user -n "$ns" patch deploy web --subresource=status --type merge -p '{"metadata": {"annotations": {"budgetgate.dev/history": "0123456789abcdef"}}}' 2>&1); rc=$?
  expect_eq "the edit role cannot write status" "$rc" 1 && expect_has "forbidden" "$out" "forbidden"
}
