# The soak (`e2e/run soak`; not in the default run): continuous rollouts across many teams
# whose budgets keep moving, for SOAK_MINUTES (default 30) over SOAK_TEAMS (default 20)
# teams. Sourced by e2e/run after canary.sh (its helpers and tier "canary").
#
# Every 60·SOAK_MINUTES / (SOAK_TEAMS·18) seconds one team, round-robin, gets a new
# budget (healthy, caution, critical, exhausted or paging, chosen at random: seed
# SOAK_SEED) and a new image with `kubectl set image`. The webhook has usually not seen the
# new budget yet, so the image is judged on the previous one; the new budget judges the
# canary it starts and the team's next rollout. A team gets at most 18 rollouts, so the
# controller's newest-20 pruning of its Releases never hides one. At the end, once every
# canary has finished:
# - no Release is still Progressing and no Deployment is left paused;
# - per team, the Releases are its admitted rollouts plus the first Direct one (the
#   creation), one each: Releases == admitted rollouts;
# - budgetgate serve's RSS, sampled every 10 s: start, peak, end and the slope of a
#   least-squares line over the run after its first fifth (MiB per hour), printed.

SOAK=(soak_continuous_rollouts_across_teams_with_moving_budgets)
SOAK_MINUTES=${SOAK_MINUTES:-30}
SOAK_TEAMS=${SOAK_TEAMS:-20}
SOAK_SEED=${SOAK_SEED:-$RANDOM}

SOAK_PREFIX=e2e-soak-$(date +%H%M%S)
soak_ns() { printf "%s-%02d" "$SOAK_PREFIX" "$1"; }

# soak_rss_sampler FILE: "seconds rss_kib" of the budgetgate process every 10 s.
soak_rss_sampler() {
  local file=$1 pid t0=$SECONDS rss
  while sleep 10; do
    pid=$(cat "$RUN/pids/budgetgate.pid" 2>/dev/null) || continue
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
    [[ -n $rss ]] && echo "$((SECONDS - t0)) $rss" >>"$file"
  done
}

# soak_rss_summary FILE: start, peak, end and the slope after the first fifth.
soak_rss_summary() {
  python3 - "$1" <<'PY'
import sys
rows = [tuple(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
if len(rows) < 5:
    print(f"RSS: only {len(rows)} samples")
    sys.exit()
mib = lambda kib: kib / 1024
tail = rows[len(rows) // 5:]
n = len(tail)
mx = sum(t for t, _ in tail) / n
my = sum(r for _, r in tail) / n
slope = sum((t - mx) * (r - my) for t, r in tail) / sum((t - mx) ** 2 for t, _ in tail)
print(f"RSS start {mib(rows[0][1]):.1f} MiB, peak {mib(max(r for _, r in rows)):.1f} MiB, "
      f"end {mib(rows[-1][1]):.1f} MiB over {rows[-1][0] / 60:.0f} min ({len(rows)} samples), "
      f"slope after the first fifth {mib(slope) * 3600:+.2f} MiB/h")
PY
}

# soak_releases NS: "PHASE COUNT ..." of web's Releases, sorted.
soak_releases() {
  k -n "$1" get releases -l budgetgate.dev/deployment=web -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' 2>/dev/null |
    sort | uniq -c | awk '{printf "%s %s ", $2, $1}'
}

scenario_soak_continuous_rollouts_across_teams_with_moving_budgets() {
  local i ns pace attempts=0 admitted_total=0 denied_total=0 deadline out why t other=""
  local -a admitted=()
  local -A denials=()
  local states=("0.9" "0.4" "0.1" "-0.2" "0.9 --paging")
  RANDOM=$SOAK_SEED
  pace=$(python3 -c "print(round(max(1.0, 60 * $SOAK_MINUTES / ($SOAK_TEAMS * 18)), 2))")
  for ((i = 1; i <= SOAK_TEAMS; i++)); do
    ns=$(soak_ns "$i")
    NAMESPACES+=("$ns")
    team_namespace "$ns" "$ns" budgetgate.dev/tier=canary budgetgate.dev/progressive=true
    snapshot set "$ns" avail 99.9 0.9
    k -n "$ns" create deployment web --image=registry.example/web:s0 --replicas=3 >/dev/null || fail "create $ns/web" || return 1
    admitted[i]=0
  done
  for ((i = 1; i <= SOAK_TEAMS; i++)); do
    k -n "$(soak_ns "$i")" rollout status deploy/web --timeout=120s >/dev/null || fail "$(soak_ns "$i")/web never available" || return 1
  done
  sleep 4   # two evaluation intervals: every team's budget published
  local rss=$OUT/soak-rss
  : >"$rss"
  soak_rss_sampler "$rss" &
  local sampler=$!
  echo "  soak: $SOAK_TEAMS teams, $SOAK_MINUTES min, one rollout every ${pace} s (SOAK_SEED=$SOAK_SEED)" >&3
  deadline=$((SECONDS + 60 * SOAK_MINUTES))
  i=0
  while ((SECONDS < deadline && attempts < 18 * SOAK_TEAMS)); do
    t=$SECONDS
    i=$((i % SOAK_TEAMS + 1))
    ns=$(soak_ns "$i")
    # shellcheck disable=SC2086  # the state is a remaining budget and maybe --paging
    snapshot set "$ns" avail 99.9 ${states[RANDOM % ${#states[@]}]}
    attempts=$((attempts + 1))
    if out=$(k -n "$ns" set image deploy/web "web=registry.example/web:s$attempts" 2>&1); then
      admitted[i]=$((admitted[i] + 1))
      admitted_total=$((admitted_total + 1))
    else
      denied_total=$((denied_total + 1))
      case $out in
        *"budget is exhausted"* | *"budget exhausted"*) why=exhausted ;;
        *burning*) why=page-burn ;;
        *"in flight"*) why=concurrency ;;
        *"allows one release per"*) why=interval ;;
        *) why=other; other=${other:-$out}; echo "  soak: $ns denied otherwise: $out" >&3 ;;
      esac
      denials[$why]=$((${denials[$why]:-0} + 1))
    fi
    ((attempts % 20 == 0)) && echo "  soak: $attempts rollouts in $((SECONDS - deadline + 60 * SOAK_MINUTES)) s: $admitted_total admitted, $denied_total denied" >&3
    sleep "$(python3 -c "print(max(0.0, $pace - ($SECONDS - $t)))")"
  done
  # Drain: budgets healthy again, every canary walks to its end.
  for ((i = 1; i <= SOAK_TEAMS; i++)); do snapshot set "$(soak_ns "$i")" avail 99.9 0.9; done
  local t0=$SECONDS progressing=1
  echo "  soak: rollouts stopped; waiting for every canary to finish" >&3
  while ((SECONDS - t0 < 300)); do
    progressing=0
    for ((i = 1; i <= SOAK_TEAMS; i++)); do
      [[ $(soak_releases "$(soak_ns "$i")") == *Progressing* ]] && progressing=$((progressing + 1))
    done
    ((progressing == 0)) && break
    sleep 2
  done
  kill "$sampler" 2>/dev/null
  wait "$sampler" 2>/dev/null
  local problems="" releases total=0 phases paused tally=""
  ((progressing == 0)) || problems+="$progressing teams still have a Progressing Release 300 s after the last rollout; "
  for ((i = 1; i <= SOAK_TEAMS; i++)); do
    ns=$(soak_ns "$i")
    phases=$(soak_releases "$ns")
    releases=$(k -n "$ns" get releases -l budgetgate.dev/deployment=web -o name | wc -l)
    total=$((total + releases))
    tally+="$phases"$'\n'
    echo "  soak: $ns admitted ${admitted[i]}, Releases: $phases" >&3
    ((releases == admitted[i] + 1)) || problems+="$ns: $releases Releases for ${admitted[i]} admitted rollouts and the creation ($phases); "
    paused=$(k -n "$ns" get deploy web -o jsonpath='{.spec.paused}')
    [[ -z $paused || $paused == false ]] || problems+="$ns: web is still paused; "
  done
  ((${denials[other]:-0} == 0)) || problems+="${denials[other]} denials with an unexpected message, the first: $other; "
  local outcome
  outcome=$(echo "$tally" | awk '{for (i = 1; i < NF; i += 2) n[$i] += $(i + 1)} END {for (p in n) printf "%s %d, ", p, n[p]}')
  local denied_by
  denied_by=$(for why in "${!denials[@]}"; do printf '%s %s, ' "$why" "${denials[$why]}"; done)
  echo "$attempts rollouts over $SOAK_TEAMS teams in $SOAK_MINUTES min: $admitted_total admitted, $denied_total denied (${denied_by%, }); Releases $total = admitted + $SOAK_TEAMS creations (${outcome%, }); $(soak_rss_summary "$rss")" >"$OUT/detail"
  [[ -z $problems ]] || fail "${problems%; } ($(cat "$OUT/detail"))"
}
