#!/usr/bin/env python3
"""A month of request history for the demo's Deployments, as OpenMetrics for
`promtool tsdb create-blocks-from openmetrics` (e2e/cluster up with E2E_PROMETHEUS_HISTORY).

    history.py --end UNIX_SECONDS [--days 30] [--step 60] NS/DEPLOYMENT:RATE:OBJECTIVE:REMAINING...

Each NS/DEPLOYMENT serves RATE requests per second on average, in a diurnal and weekly
pattern (busiest at 15:00 UTC on weekdays, a third quieter at weekends), counted in the
traffic simulator's series http_requests_total{namespace, deployment, pod, code} with
pod="history" (the month's pods, long gone). Errors (code 500) spend 1 - REMAINING of the
30-day budget by END (errors / requests = (1 - REMAINING) * (1 - OBJECTIVE / 100)): half as a
steady background, half in two incidents (19 and 8 days before END, 3 and 2 hours). Nothing happens in the last four days, so no burn
alert of a standard tier fires when the demo starts. Prints the totals to stderr.
"""
import argparse
import math
import sys


def rate_at(mean: float, t: float) -> float:
    hour = (t % 86400) / 3600
    weekday = int(t // 86400 + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Saturday, Sunday
    daily = 1 + 0.45 * math.sin(2 * math.pi * (hour - 9) / 24)
    return mean * daily * (0.67 if weekday >= 5 else 1.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--end", type=int, required=True, help="the last sample's time (unix seconds)")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--step", type=int, default=60, help="seconds between samples")
    p.add_argument("services", nargs="+", help="NS/DEPLOYMENT:RATE:OBJECTIVE:REMAINING")
    a = p.parse_args()
    if a.days < 20 or not 0 < a.step <= 3600:
        p.error("--days must be at least 20 (the incidents are 19 and 8 days back) and --step 1..3600")
    start = a.end - a.days * 86400
    times = range(start, a.end + 1, a.step)
    out = sys.stdout
    out.write("# HELP http_requests requests served, by status code\n# TYPE http_requests counter\n")
    for spec in a.services:
        try:
            name, rate, objective, remaining = spec.split(":")
            ns, deployment = name.split("/")
            rate, objective, remaining = float(rate), float(objective), float(remaining)
            if not (rate > 0 and 0 < objective < 100 and 0 < remaining <= 1):
                raise ValueError
        except ValueError:
            p.error(f"{spec!r} is not NS/DEPLOYMENT:RATE:OBJECTIVE:REMAINING "
                    "(e.g. checkout/checkout:60:99:0.62: RATE > 0, 0 < OBJECTIVE < 100, 0 < REMAINING <= 1)")
        allowed = 1 - objective / 100
        requests = [rate_at(rate, t) * a.step for t in times]
        background = (1 - remaining) * allowed / 2
        incidents = [(a.end - 19 * 86400 + 13 * 3600, 3 * 3600), (a.end - 8 * 86400 + 2 * 3600, 2 * 3600)]
        in_incident = [any(s <= t < s + d for s, d in incidents) for t in times]
        total = sum(requests)
        wanted = (1 - remaining) * allowed * total
        incident_requests = sum(r for r, i in zip(requests, in_incident) if i)
        base_errors = background * (total - incident_requests)
        ratio = (wanted - base_errors) / incident_requests
        if not 0 <= ratio <= 1:
            print(f"history.py: {name}: remaining {remaining} cannot be reached", file=sys.stderr)
            return 2
        labels = f'namespace="{ns}",deployment="{deployment}",pod="history"'
        ok = err = 0.0
        lines_ok, lines_err = [], []
        for t, r, i in zip(times, requests, in_incident):
            e = r * (ratio if i else background)
            ok += r - e
            err += e
            lines_ok.append(f'http_requests_total{{{labels},code="200"}} {round(ok)} {t}\n')
            lines_err.append(f'http_requests_total{{{labels},code="500"}} {round(err)} {t}\n')
        out.writelines(lines_ok)
        out.writelines(lines_err)
        print(
            f"  {name}: {round(ok + err)} requests, {round(err)} errors over {a.days} days "
            f"({err / (ok + err):.4%}; {1 - err / (ok + err) / allowed:.1%} of the budget left)",
            file=sys.stderr,
        )
    out.write("# EOF\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
