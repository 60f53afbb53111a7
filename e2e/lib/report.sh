# The planning review and cluster-mode status (`budgetgate report`, `budgetgate status
# --kubeconfig`), sourced by e2e/run and run last: the Releases the other scenarios left
# are the ledger the review counts. The scenario adds two Direct Releases of its own, so it
# also stands alone (`e2e/run report`).

REPORT=(
  report_counts_the_release_ledger_and_status_reads_the_published_budgets
)
NAMESPACES+=(e2e-report)

# report_counts_from_kubectl REPORT_JSON: compares the review's per-team release counts
# with counts computed here from `kubectl get releases,namespaces` and the policy's default
# tier. Prints "teams=N releases=M" on success, the difference on failure (exit 1).
report_counts_from_kubectl() {
  local releases namespaces default_tier
  releases=$(k get releases -A -o json) || return 1
  namespaces=$(k get namespaces -o json) || return 1
  default_tier=$(k get reliabilitypolicy platform -o jsonpath='{.spec.defaultTier}')
  python3 - "$1" "$default_tier" 3<<<"$releases" 4<<<"$namespaces" <<'PY'
import datetime, json, os, sys
report = json.load(open(sys.argv[1]))
default_tier = sys.argv[2] or "production"
releases = json.load(os.fdopen(3))["items"]
namespaces = {n["metadata"]["name"]: n["metadata"].get("labels", {}) for n in json.load(os.fdopen(4))["items"]}
parse = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
start, end = parse(report["from"]), parse(report["to"])
want = {}
for r in releases:
    created = parse(r["metadata"]["creationTimestamp"])
    if not start <= created <= end:
        continue
    labels = namespaces.get(r["metadata"]["namespace"], {})
    team = labels.get("budgetgate.dev/team")
    if not team:
        continue
    key = (team, labels.get("budgetgate.dev/tier") or default_tier)
    phase = r.get("status", {}).get("phase", "Progressing")
    counts = want.setdefault(key, {"releases": 0, "Promoted": 0, "RolledBack": 0, "Direct": 0,
                                   "Observed": 0, "Failed": 0, "Progressing": 0, "Superseded": 0})
    counts[phase] += 1
    counts["releases"] += phase != "Superseded"
got = {}
for t in report["teams"]:
    p = t["phases"]
    counts = {"releases": t["releases"], "Promoted": p["promoted"], "RolledBack": p["rolledBack"],
              "Direct": p["direct"], "Observed": p["observed"], "Failed": p["failed"],
              "Progressing": p["progressing"], "Superseded": p["superseded"]}
    if any(counts.values()):
        got[(t["team"], t["tier"])] = counts
    if t["rollbacks"] != p["rolledBack"] + p["failed"]:
        sys.exit(f"{t['team']}: rollbacks {t['rollbacks']} is not RolledBack + Failed")
if got != want:
    diff = {f"{k[0]}/{k[1]}": {"report": got.get(k), "kubectl": want.get(k)}
            for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)}
    sys.exit(f"counts differ: {json.dumps(diff)}")
print(f"teams={len(want)} releases={sum(c['releases'] for c in want.values())}")
PY
}

scenario_report_counts_the_release_ledger_and_status_reads_the_published_budgets() {
  local bin=${E2E_BUDGETGATE_BIN:-$ROOT/target/debug/budgetgate} i n json="$OUT/report.json" counts out markdown
  team_namespace e2e-report e2e-report budgetgate.dev/tier=production
  budget e2e-report 0.9 && deploy e2e-report web registry.example/web:v1 || return 1
  k -n e2e-report set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image" || return 1
  for ((i = 0; i < 60; i++)); do
    n=$(k -n e2e-report get releases -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Direct$')
    ((n == 2)) && break
    sleep 0.5
  done
  expect_eq "Direct Releases of e2e-report/web" "$n" 2 || return 1

  # The controller may finish a canary between the two reads: retry a mismatch.
  for ((i = 0; i < 5; i++)); do
    "$bin" report --kubeconfig "$KUBECONFIG" --since 90d -o json >"$json" 2>"$OUT/report.err" ||
      fail "report exited $?: $(cat "$OUT/report.err")" || return 1
    counts=$(report_counts_from_kubectl "$json" 2>&1) && break
    sleep 2
  done
  [[ $counts == teams=* ]] || fail "report vs kubectl: $counts" || return 1
  out=$(python3 -c '
import json, sys
t = [t for t in json.load(open(sys.argv[1]))["teams"] if t["team"] == "e2e-report"][0]
print(t["tier"], t["releases"], t["phases"]["direct"], t["rollbacks"], t["changeFailureRate"], round(t["remaining"], 6))' "$json")
  expect_eq "the review's row of e2e-report" "$out" "production 2 2 0 0.0 0.9" || return 1

  markdown=$("$bin" report --kubeconfig "$KUBECONFIG" --since 90d 2>&1) || fail "report -o markdown: $markdown" || return 1
  expect_has "markdown title" "$markdown" "# budgetgate review: " &&
    expect_has "markdown row of e2e-report" "$markdown" $'\n| e2e-report | 90.0% | healthy | Healthy | 2 | 0 | 2 | 0 | 0 | 0 | 0.0% | 0.16 | 0.0% | 0 | 0.0% | 0.0% | 0 | 0 |\n' &&
    expect_has "markdown definitions" "$markdown" "## Definitions" || return 1

  # With Prometheus: the SLOs' events over the range join the rows.
  out=$("$bin" report --kubeconfig "$KUBECONFIG" --prometheus "$E2E_PROMETHEUS_URL" --since 90d -o json 2>"$OUT/report.err") ||
    fail "report --prometheus exited $?: $(tail -n 1 "$OUT/report.err")" || return 1
  python3 -c 'import json, sys; json.loads(sys.stdin.read())["teams"]' <<<"$out" ||
    fail "report --prometheus: not the review's JSON: ${out:0:200}" || return 1

  # status in cluster mode shows what the controller published on each TeamBudget. Budgets
  # read from Prometheus move every interval: the TeamBudgets are read before and after
  # status, and status must show one of the two.
  local before after mismatch
  for ((i = 0; i < 5; i++)); do
    before=$(k get teambudgets -o json) || return 1
    out=$("$bin" status --kubeconfig "$KUBECONFIG" -o json 2>"$OUT/status.err") ||
      fail "status exited $?: $(cat "$OUT/status.err")" || return 1
    after=$(k get teambudgets -o json) || return 1
    mismatch=$(python3 - "$out" 3<<<"$before" 4<<<"$after" <<'PY'
import json, os, sys
status = json.loads(sys.argv[1])
def published(fd):
    return {(t["spec"]["team"], tier["tier"]): tier.get("remaining")
            for t in json.load(os.fdopen(fd))["items"] for tier in t.get("status", {}).get("tiers", [])}
before, after = published(3), published(4)
same = lambda a, b: (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9)
bad = [f"{t['team']}/{t['tier']}: status {t['remaining']}, TeamBudget {before.get(key)} then {after.get(key)}"
       for t in status["teams"] for key in [(t["team"], t["tier"])]
       if not (same(t["remaining"], before.get(key)) or same(t["remaining"], after.get(key)))]
missing = sorted(f"{k[0]}/{k[1]}" for k in set(before) & set(after) if k not in {(t["team"], t["tier"]) for t in status["teams"]})
print("; ".join(bad + [f"{m}: not in status" for m in missing]))
PY
) || return 1
    [[ -z $mismatch ]] && break
    sleep 1
  done
  [[ -z $mismatch ]] || fail "status --kubeconfig vs kubectl: $mismatch" || return 1
  expect_has "status has e2e-report" "$out" '"team": "e2e-report"' || return 1
  echo "review matches kubectl ($counts); status matches every TeamBudget" >"$OUT/detail"
}
