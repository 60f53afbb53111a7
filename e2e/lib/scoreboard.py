#!/usr/bin/env python3
"""What the scoreboard scenarios (e2e/lib/scoreboard.sh) read from a page and check in it.

scoreboard.py extract PAGE
    prints the JavaScript expression that e2e/lib/browser.py evaluates in the loaded page
    (PAGE: platform, team or adoption): the page's markup as plain data.
scoreboard.py clean REPORT PAGE
    the page loaded with status 200, is the PAGE page, has no console errors, no failed
    requests, no scripts and no external resources, and fits the window's width.
scoreboard.py platform REPORT TEAMBUDGETS STABLE-TEAM,... [STATUS]
    every team row's remaining/band/state equals GET /api/v1/platform's (read by the page
    right after it loaded) and the published TeamBudget's (and `budgetgate status -o
    json`'s when STATUS is given). Budgets move while they are read: a caller retries.
scoreboard.py frozen REPORT TEAM true|would|false
    TEAM's row is frozen (class frozen, text FROZEN), would be frozen if its namespaces
    enforced (class would-freeze, text WOULD FREEZE), or neither.
scoreboard.py team REPORT NAMESPACE/SLO RELEASES [--prometheus]
    the SLO's section and charts (with --prometheus: polylines, the burn-down ending at
    the SLO's remaining budget; else polylines or nodata),
    the production tier's alert windows as thresholds, the ledger as `kubectl get releases`.
scoreboard.py adoption REPORT NAMESPACE TEAM
    the dry-run namespace's row: mode dryrun, at least one release.

Each check prints what is wrong, one line each, and exits 1; silent and 0 when all holds.
REPORT is browser.py's JSON; the others are kubectl's or the API's JSON.
"""

import datetime
import json
import math
import sys

COMMON = """
  page: document.body.dataset.page,
  overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  evaluatedAt: document.body.dataset.evaluatedAt,
  scripts: document.querySelectorAll('script').length,
  external: [...document.querySelectorAll('[src], link[href], object[data], iframe, embed')]
    .map(e => e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('data') || e.tagName)
    .filter(u => !u.startsWith('data:')),
"""

EXTRACT = {
    # The API is read from the page itself, right after it loaded: both show the same
    # evaluation unless one fell between them (then the caller reads both again).
    "platform": """(async () => ({""" + COMMON + """
  api: await (await fetch('/api/v1/platform')).json(),
  tiers: [...document.querySelectorAll('table.teams')].map(t => t.dataset.tier),
  platform: [...document.querySelectorAll('tr.platform')].map(tr => ({
    tier: tr.dataset.tier, remaining: tr.dataset.remaining})),
  teams: [...document.querySelectorAll('tr.team')].map(tr => ({
    team: tr.dataset.team, tier: tr.dataset.tier, table: tr.closest('table.teams')?.dataset.tier,
    remaining: tr.dataset.remaining, band: tr.dataset.band, state: tr.dataset.state,
    frozen: tr.dataset.frozen, wouldFreeze: tr.dataset.wouldFreeze, inFlight: tr.dataset.inFlight, classes: [...tr.classList],
    text: tr.textContent, links: [...tr.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))})),
}))()""",
    "team": """(() => ({""" + COMMON + """
  slos: [...document.querySelectorAll('section.slo')].map(s => ({
    slo: s.dataset.slo, remaining: s.dataset.remaining,
    charts: Object.fromEntries([...s.querySelectorAll('svg.chart')].map(svg => [svg.dataset.chart, {
      series: Object.fromEntries([...svg.querySelectorAll('polyline[data-series]')].map(p =>
        [p.dataset.series, p.getAttribute('points')])),
      thresholds: [...svg.querySelectorAll('line[data-threshold]')].map(l =>
        [l.dataset.threshold, l.dataset.factor]),
      nodata: svg.querySelectorAll('text.nodata').length}]))})),
  releases: [...document.querySelectorAll('table.releases tr[data-release]')].map(tr => ({
    release: tr.dataset.release, phase: tr.dataset.phase, band: tr.dataset.band})),
  decisions: [...document.querySelectorAll('div.decision')].map(d => d.dataset.verdict),
  incidents: document.querySelectorAll('table.incidents').length,
  exceptions: document.querySelectorAll('table.exceptions').length,
}))()""",
    "adoption": """(() => ({""" + COMMON + """
  rows: [...document.querySelectorAll('table.adoption tr[data-namespace]')].map(tr => ({
    namespace: tr.dataset.namespace, team: tr.dataset.team, mode: tr.dataset.mode,
    releases: tr.dataset.releases, wouldDeny: tr.dataset.wouldDeny, wouldSlow: tr.dataset.wouldSlow})),
}))()""",
}

# The production tier's alert windows (the default ones) over its 30-day window: the burn
# rate that spends budgetPercent of the budget in the long window.
PRODUCTION_THRESHOLDS = {"page-fast": 14.4, "page-slow": 6.0, "ticket-fast": 3.0, "ticket-slow": 1.0}


def load(path):
    with open(path) as f:
        return json.load(f)


def number(text):
    """A data-* number: the float, None when empty."""
    return float(text) if text not in (None, "") else None


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def points(text):
    """A polyline's points as (x, y) floats; ValueError when they are not all numbers."""
    pairs = [p.split(",") for p in (text or "").split()]
    out = [(float(x), float(y)) for x, y in pairs]
    if not all(math.isfinite(v) for p in out for v in p):
        raise ValueError(text)
    return out


def check_clean(report, page):
    wrong = []
    data = report.get("data") or {}
    if report["status"] != 200:
        wrong.append(f"{report['url']}: HTTP status {report['status']}, want 200")
    if data.get("page") != page:
        wrong.append(f"{report['url']}: data-page {data.get('page')!r}, want {page!r}")
    for c in report["consoleErrors"]:
        wrong.append(f"{report['url']}: console {c['level']} ({c['source']}): {c['text']}")
    for r in report["failedRequests"]:
        wrong.append(f"{report['url']}: failed request {r['url']}: {r.get('status') or r.get('error')}")
    if data.get("scripts"):
        wrong.append(f"{report['url']}: {data['scripts']} script element(s), want none")
    if data.get("external"):
        wrong.append(f"{report['url']}: external resources {data['external']}, want none")
    if data.get("overflow", 0) > 0:
        wrong.append(f"{report['url']}: {data['overflow']} px wider than the window (1280 px): "
                     f"something is cut off or scrolls sideways")
    return wrong


def published(teambudgets):
    """(team, tier) -> (remaining, band, state) from the TeamBudgets' status."""
    out = {}
    for tb in teambudgets["items"]:
        team = tb.get("spec", {}).get("team") or tb["metadata"]["name"]
        for t in tb.get("status", {}).get("tiers", []):
            out[(team, t["tier"])] = (t.get("remaining"), t.get("band"), t.get("state"))
    return out


def api_rows(api):
    """(team, tier) -> (remaining, band, state) from GET /api/v1/platform (its tiers'
    teams) or `budgetgate status -o json` (its teams)."""
    rows = [row for tier in api["tiers"] for row in tier["teams"]] if "tiers" in api else api.get("teams", [])
    return {(row["team"], row["tier"]): (row.get("remaining"), row.get("band"), row.get("state")) for row in rows}


def compare(page, other, what):
    wrong = []
    for key, (remaining, band, state) in sorted(page.items()):
        if key not in other:
            wrong.append(f"team {key[0]} tier {key[1]}: on the page, not in {what}")
            continue
        r, b, s = other[key]
        if not same(remaining, r) or (band or None) != (b or None) or state != (s or "Unknown"):
            wrong.append(f"team {key[0]} tier {key[1]}: page remaining={remaining} band={band} state={state}, "
                         f"{what} remaining={r} band={b} state={s}")
    return wrong


def instant(text):
    """An RFC 3339 time (Python before 3.11 does not read a trailing Z)."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def evaluated(teambudgets):
    """team -> the evaluation its TeamBudget status shows."""
    return {tb.get("spec", {}).get("team") or tb["metadata"]["name"]: instant(tb.get("status", {}).get("evaluatedAt"))
            for tb in teambudgets["items"]}


def at(rows, teams):
    return {k: v for k, v in rows.items() if k[0] in teams}


def check_platform(report, teambudgets, stable, status=None):
    """The API is read by the page right after it loaded, so both normally show the same
    evaluation; when one fell between them they differ, and the caller reads both again
    (evaluatedAt alone does not tell: with a snapshot layered over Prometheus two
    evaluations can carry the same time). The published TeamBudgets and `budgetgate
    status` are read a moment later: their teams are compared when they show the page's
    evaluatedAt, the STABLE teams (whose budgets do not move) always."""
    data = report["data"]
    api = data["api"]
    shown = instant(data["evaluatedAt"])
    page, wrong = {}, []
    if shown != instant(api.get("evaluatedAt")):
        wrong.append(f"the page shows the evaluation of {data['evaluatedAt']}, GET /api/v1/platform that of {api.get('evaluatedAt')}")
    for row in data["teams"]:
        key = (row["team"], row["tier"])
        if key in page:
            wrong.append(f"team {key[0]} tier {key[1]}: more than one row")
        page[key] = (number(row["remaining"]), row["band"] or None, row["state"])
        if row["table"] != row["tier"]:
            wrong.append(f"team {key[0]}: row of tier {row['tier']} in the table of tier {row['table']}")
        if f"/teams/{row['team']}" not in row["links"]:
            wrong.append(f"team {key[0]}: no link to /teams/{row['team']} (links {row['links']})")
    if not page:
        wrong.append("no team rows")
    api_page = api_rows(api)
    wrong += compare(page, api_page, "GET /api/v1/platform")
    missing = sorted(set(api_page) - set(page))
    if missing:
        wrong.append(f"in GET /api/v1/platform but not on the page: {missing}")
    same_evaluation = {t for t, e in evaluated(teambudgets).items() if e == shown} | set(stable)
    wrong += compare(at(page, same_evaluation), published(teambudgets), "the TeamBudget status")
    if status is not None:
        teams = {t for t, _ in page} if instant(status.get("evaluatedAt")) == shown else set(stable)
        wrong += compare(at(page, teams), api_rows(status), "budgetgate status")
    for team in stable:
        if not any(t == team for t, _ in page):
            wrong.append(f"team {team}: no row")
    frozen = {(row["team"], row["tier"]): row.get("frozen") is not None for tier in api["tiers"] for row in tier["teams"]}
    for row in data["teams"]:
        key = (row["team"], row["tier"])
        if key in frozen and (row["frozen"] == "true") != frozen[key]:
            wrong.append(f"team {key[0]} tier {key[1]}: data-frozen={row['frozen']}, the API's frozen: {frozen[key]}")
    aggregate = {t["tier"]: t.get("remaining") for t in api["tiers"]}
    page_aggregate = {row["tier"]: number(row["remaining"]) for row in data["platform"]}
    if set(page_aggregate) != set(aggregate) or any(not same(v, aggregate[t]) for t, v in page_aggregate.items()):
        wrong.append(f"platform rows {page_aggregate}, the API's tiers {aggregate}")
    if sorted(data["tiers"]) != sorted(aggregate):
        wrong.append(f"tier tables {data['tiers']}, the API's tiers {sorted(aggregate)}")
    return wrong


def check_frozen(report, team, frozen):
    """frozen: "true" (rollouts refused: class frozen, FROZEN), "would" (the budget rules
    would refuse, but no namespace of the team enforces: class would-freeze, WOULD FREEZE)
    or "false"."""
    rows = [r for r in report["data"]["teams"] if r["team"] == team]
    if not rows:
        return [f"no row for team {team}"]
    wrong = []
    want = {
        "true": ("true", "false", True, False, True, False),
        "would": ("false", "true", False, True, False, True),
        "false": ("false", "false", False, False, False, False),
    }[frozen]
    for r in rows:
        got = (r["frozen"], r.get("wouldFreeze"), "frozen" in r["classes"], "would-freeze" in r["classes"],
               "FROZEN" in r["text"], "WOULD FREEZE" in r["text"])
        if got != want:
            wrong.append(f"team {team}: data-frozen={r['frozen']} data-would-freeze={r.get('wouldFreeze')} "
                         f"class={' '.join(r['classes'])} FROZEN/WOULD FREEZE in text={got[4]}/{got[5]}, "
                         f"want {frozen}")
    return wrong


def burndown_ends_at_remaining(slo, section):
    """The burn-down's last point is the SLO's remaining budget. The ideal line runs from
    100% to 0%, which gives the chart's scale; one pixel of tolerance and then some for
    the moment between the evaluation and the chart's query."""
    chart = section["charts"]["burndown"]["series"]
    ideal, remaining = points(chart["ideal"]), points(chart["remaining"])
    full, empty = ideal[0][1], ideal[-1][1]
    drawn = (remaining[-1][1] - empty) / (full - empty)
    want = number(section["remaining"])
    if abs(drawn - want) > 0.01:
        return [f"SLO {slo}: the burn-down ends at {drawn:.4f}, the SLO has {want} remaining"]
    return []


def check_team(report, slo, releases, prometheus):
    data, wrong = report["data"], []
    sections = [s for s in data["slos"] if s["slo"] == slo]
    if len(sections) != 1:
        return [f"{len(sections)} sections for SLO {slo} (sections: {[s['slo'] for s in data['slos']]}), want 1"]
    s = sections[0]
    if number(s["remaining"]) is None:
        wrong.append(f"SLO {slo}: empty data-remaining")
    # Minimum points per series: the burn-down runs from the period's start to now; the
    # burn rate over the last hours may have a single sample on a fresh cluster.
    for chart, series in (("burndown", {"remaining": 2, "ideal": 2}), ("burn", {"burn": 1})):
        c = s["charts"].get(chart)
        if c is None:
            wrong.append(f"SLO {slo}: no {chart} chart (charts: {sorted(s['charts'])})")
            continue
        if c["nodata"] and not prometheus:
            continue
        for name, least in series.items():
            try:
                n = len(points(c["series"].get(name)))
            except ValueError:
                wrong.append(f"{chart} chart: series {name} has points that are not numbers: {c['series'].get(name)!r}")
                continue
            if n < least:
                wrong.append(f"{chart} chart: series {name} has {n} point(s), want at least {least} "
                             f"(series {sorted(c['series'])}, nodata {c['nodata']})")
        if chart == "burn":
            got = {name: number(f) for name, f in c["thresholds"]}
            if len(got) != len(c["thresholds"]) or any(
                    not same(got.get(k), v) for k, v in PRODUCTION_THRESHOLDS.items()) or set(got) != set(PRODUCTION_THRESHOLDS):
                wrong.append(f"burn chart thresholds {c['thresholds']}, want {sorted(PRODUCTION_THRESHOLDS.items())}")
    if prometheus and not wrong:
        wrong += burndown_ends_at_remaining(slo, s)
    ledger = {f"{r['metadata']['namespace']}/{r['metadata']['name']}":
              (r.get("status", {}).get("phase"), r["spec"].get("band")) for r in releases["items"]}
    page = {r["release"]: (r["phase"], r["band"] or None) for r in data["releases"]}
    if page != ledger:
        wrong.append(f"release ledger {sorted(page.items())}, kubectl get releases {sorted(ledger.items())}")
    return wrong


def check_adoption(report, namespace, team):
    rows = [r for r in report["data"]["rows"] if r["namespace"] == namespace]
    if len(rows) != 1:
        return [f"{len(rows)} adoption rows for namespace {namespace} "
                f"(rows: {[r['namespace'] for r in report['data']['rows']]}), want 1"]
    r, wrong = rows[0], []
    if (r["team"], r["mode"]) != (team, "dryrun"):
        wrong.append(f"namespace {namespace}: team {r['team']} mode {r['mode']}, want {team} dryrun")
    for field in ("releases", "wouldDeny", "wouldSlow"):
        if not (r[field] or "").isdigit():
            wrong.append(f"namespace {namespace}: {field} {r[field]!r} is not a count")
    if (r["releases"] or "0").isdigit() and int(r["releases"] or 0) < 1:
        wrong.append(f"namespace {namespace}: {r['releases']} releases, want at least 1")
    return wrong


def main(argv):
    command = argv[1]
    if command == "extract":
        print(EXTRACT[argv[2]])
        return 0
    report = load(argv[2])
    if command == "clean":
        wrong = check_clean(report, argv[3])
    elif command == "platform":
        wrong = check_platform(report, load(argv[3]), argv[4].split(","), load(argv[5]) if len(argv) > 5 else None)
    elif command == "frozen":
        wrong = check_frozen(report, argv[3], argv[4])
    elif command == "team":
        wrong = check_team(report, argv[3], load(argv[4]), "--prometheus" in argv)
    elif command == "adoption":
        wrong = check_adoption(report, argv[3], argv[4])
    else:
        sys.exit(f"scoreboard.py: unknown command {command}")
    for line in wrong:
        print(line)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
