# Scoreboard scenarios, sourced by e2e/run; `e2e/run scoreboard` runs just these.
#
# The scoreboard's pages are loaded in headless Chromium (e2e/lib/browser.py): a page must
# load without console errors, failed requests, scripts or external resources, and its
# markup (read by e2e/lib/scoreboard.py) must agree with what budgetgate publishes.
# Three teams, set up once by the first scoreboard scenario that runs:
#   e2e-sb-healthy  production, SLO read from Prometheus (the traffic simulator), web 1.0
#   e2e-sb-frozen   production, budget exhausted through the snapshot
#   e2e-sb-dryrun   dry-run namespace with an exhausted budget and a rollout: an Observed
#                   release and a would-deny
# Each page's report and full-page screenshot (1280 px wide) go to $E2E_RUN_DIR/artifacts/;
# with E2E_SCREENSHOTS=1 the screenshots also go to docs/screenshots/.

SCOREBOARD=(
  scoreboard_browser_driver_reports_console_errors
  scoreboard_platform_page_matches_status
  scoreboard_team_page_charts
  scoreboard_adoption_page_lists_dry_run_evidence
)
SB_HEALTHY=e2e-sb-healthy
SB_FROZEN=e2e-sb-frozen
SB_DRYRUN=e2e-sb-dryrun
NAMESPACES+=("$SB_HEALTHY" "$SB_FROZEN" "$SB_DRYRUN")
SCOREBOARD_URL=${E2E_DASHBOARD_URL:-http://127.0.0.1:${E2E_DASHBOARD_PORT:-22493}}
ARTIFACTS=$RUN/artifacts

scoreboard() { python3 "$E2E_DIR/lib/scoreboard.py" "$@"; }

# browse NAME PATH PAGE: loads PATH in headless Chromium and reads the PAGE markup
# (platform, team or adoption); the report goes to $ARTIFACTS/scoreboard-NAME.json.
browse() {
  local name=$1 path=$2 page=$3 shot=$ARTIFACTS/scoreboard-$1.png
  mkdir -p "$ARTIFACTS"
  python3 "$E2E_DIR/lib/browser.py" check "$SCOREBOARD_URL$path" --width 1280 --full-page \
    --screenshot "$shot" --extract "$(scoreboard extract "$page")" \
    >"$ARTIFACTS/scoreboard-$name.json" 2>"$OUT/browser.err" ||
    fail "loading $path in Chromium: $(cat "$OUT/browser.err")" || return 1
  if [[ ${E2E_SCREENSHOTS:-0} == 1 && $name == @(platform|team|adoption) ]]; then
    mkdir -p "$ROOT/docs/screenshots" && cp "$shot" "$ROOT/docs/screenshots/$name.png"
  fi
}

# page_ok NAME PAGE [CHECK ARGS...]: the page NAME loaded cleanly and CHECK holds.
page_ok() {
  local name=$1 page=$2 why; shift 2
  why=$(scoreboard clean "$ARTIFACTS/scoreboard-$name.json" "$page") || fail "$why" || return 1
  (($# == 0)) || why=$(scoreboard "$1" "$ARTIFACTS/scoreboard-$name.json" "${@:2}") || fail "$why"
}

# scoreboard_teams: the three teams above, once per run.
scoreboard_teams() {
  [[ -n ${SCOREBOARD_TEAMS:-} ]] && return 0
  # Left over from an earlier run on a kept cluster: gone first.
  k delete namespace "$SB_HEALTHY" "$SB_FROZEN" "$SB_DRYRUN" --ignore-not-found --timeout=90s >/dev/null 2>&1
  traffic_namespace "$SB_HEALTHY" "{ratio: {errors: 'http_requests_total{namespace=\"$SB_HEALTHY\",deployment=\"web\",code=~\"5..\"}', total: 'http_requests_total{namespace=\"$SB_HEALTHY\",deployment=\"web\"}'}}"
  k -n "$SB_HEALTHY" create deployment web --image=example/web:1.0 --replicas=3 >/dev/null &&
    k -n "$SB_HEALTHY" rollout status deploy/web --timeout=60s >/dev/null || fail "$SB_HEALTHY: web did not roll out" || return 1
  team_namespace "$SB_FROZEN" "$SB_FROZEN" budgetgate.dev/tier=production
  budget "$SB_FROZEN" 0.8 && deploy "$SB_FROZEN" web registry.example/web:v1 || return 1
  budget "$SB_FROZEN" -0.25 || return 1
  team_namespace "$SB_DRYRUN" "$SB_DRYRUN" budgetgate.dev/enforcement=dryrun
  budget "$SB_DRYRUN" 0.8 && deploy "$SB_DRYRUN" web registry.example/web:v1 || return 1
  budget "$SB_DRYRUN" -0.2 || return 1
  k -n "$SB_DRYRUN" set image deploy/web web=registry.example/web:v2 >/dev/null || fail "$SB_DRYRUN: set image failed" || return 1
  wait_team_state "$SB_HEALTHY" Healthy 60 >/dev/null || return 1
  wait_release "$SB_HEALTHY" Direct && wait_release "$SB_DRYRUN" Observed || return 1
  SCOREBOARD_TEAMS=1
}

# wait_release NS PHASE: until a Release in NS has PHASE (the controller records it).
wait_release() {
  local i phases
  for ((i = 0; i < 60; i++)); do
    phases=$(k -n "$1" get releases -o jsonpath='{.items[*].status.phase}' 2>/dev/null)
    [[ " $phases " == *" $2 "* ]] && return 0
    sleep 0.5
  done
  fail "$1: no $2 Release after 30 s (phases: ${phases:-none})"
}

# decisions_on NAME: the verdicts "what the webhook would decide now" on the team page
# loaded as NAME, space separated.
decisions_on() {
  python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["data"]["decisions"]))' "$ARTIFACTS/scoreboard-$1.json"
}

# `budgetgate status` in cluster mode: the budgets the webhook answers from.
status_json() {
  "${E2E_BUDGETGATE_BIN:-$ROOT/target/debug/budgetgate}" status --kubeconfig "$KUBECONFIG" -o json
}

# ---- scenarios -----------------------------------------------------------------------
scenario_scoreboard_browser_driver_reports_console_errors() {
  local out
  out=$(python3 "$E2E_DIR/lib/browser.py" selftest 2>&1) || fail "$out" || return 1
  echo "${out#browser.py selftest: }" >"$OUT/detail"
}

scenario_scoreboard_platform_page_matches_status() {
  scoreboard_teams || return 1
  local i why
  # Budgets are evaluated every 2 s and the Prometheus-read ones move each time: a
  # difference that is gone on the next read was an evaluation between the reads.
  for ((i = 1; i <= 5; i++)); do
    browse platform / platform || return 1
    k get teambudgets -o json >"$OUT/teambudgets.json" || fail "kubectl get teambudgets failed" || return 1
    status_json >"$OUT/status.json" 2>"$OUT/status.err" || fail "budgetgate status --kubeconfig: $(tail -n 3 "$OUT/status.err")" || return 1
    why=$(scoreboard platform "$ARTIFACTS/scoreboard-platform.json" "$OUT/teambudgets.json" "$SB_HEALTHY,$SB_FROZEN" "$OUT/status.json") && break
  done
  [[ -z $why ]] || fail "$why (5 reads)" || return 1
  page_ok platform platform frozen "$SB_FROZEN" true &&
    page_ok platform platform frozen "$SB_DRYRUN" would &&
    page_ok platform platform frozen "$SB_HEALTHY" false || return 1
  echo "every team row equals budgetgate status, the API and the TeamBudgets (read $i time(s))" >"$OUT/detail"
}

scenario_scoreboard_team_page_charts() {
  scoreboard_teams || return 1
  browse team "/teams/$SB_HEALTHY" team || return 1
  k -n "$SB_HEALTHY" get releases -o json >"$OUT/releases.json" || fail "kubectl get releases failed" || return 1
  page_ok team team team "$SB_HEALTHY/web" "$OUT/releases.json" --prometheus || return 1
  local verdicts code
  verdicts=$(decisions_on team)
  expect_eq "the healthy team's decision" "$verdicts" allow || return 1
  browse team-frozen "/teams/$SB_FROZEN" team || return 1
  k -n "$SB_FROZEN" get releases -o json >"$OUT/releases.json" || fail "kubectl get releases failed" || return 1
  page_ok team-frozen team team "$SB_FROZEN/avail" "$OUT/releases.json" || return 1
  verdicts=$(decisions_on team-frozen)
  expect_eq "the frozen team's decision" "$verdicts" deny || return 1
  code=$(curl -s -o /dev/null -w '%{http_code}' "$SCOREBOARD_URL/teams/e2e-sb-no-such-team")
  expect_eq "an unknown team's page" "$code" 404
}

scenario_scoreboard_adoption_page_lists_dry_run_evidence() {
  scoreboard_teams || return 1
  browse adoption /adoption adoption || return 1
  page_ok adoption adoption adoption "$SB_DRYRUN" "$SB_DRYRUN"
}
