#!/usr/bin/env python3
"""Writes the BudgetSnapshot the e2e controller reads: one SLO's counts at a time.

snapshot.py FILE set NAMESPACE SLO OBJECTIVE REMAINING [--paging | --missing-windows]
    sets the SLO's period counts so that its remaining budget is REMAINING (a fraction,
    may be negative), with quiet burn windows, page-level burn with --paging, or no data
    for any burn window (the series went missing) with --missing-windows.
snapshot.py FILE touch
    refreshes evaluatedAt (budgets older than the tier's staleAfter count as stale); a
    file that does not parse is left as it is.
Writes atomically (rename), evaluatedAt = now.
"""
import datetime
import fcntl
import json
import os
import sys

WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv):
    path, command = argv[1], argv[2]
    # One writer at a time: scenarios and the background `touch` loop share the file.
    lock = open(path + ".lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with open(path) as f:
            snapshot = json.load(f)
    except FileNotFoundError:
        snapshot = {"slos": []}
    if command == "set":
        namespace, name, objective, remaining = argv[3], argv[4], float(argv[5]), float(argv[6])
        paging = "--paging" in argv
        missing = "--missing-windows" in argv
        budget = (100.0 - objective) / 100.0
        total = 1_000_000
        # remaining = 1 - bad / (budget * total)
        bad = round((1.0 - remaining) * budget * total)
        burn = 20.0 if paging else 0.5
        windows = {w: None if missing else {"bad": round(burn * budget * 100_000), "total": 100_000}
                   for w in WINDOWS}
        entry = {"namespace": namespace, "name": name, "objective": objective,
                 "period": {"bad": bad, "total": total}, "windows": windows}
        snapshot["slos"] = [s for s in snapshot["slos"] if (s["namespace"], s["name"]) != (namespace, name)]
        snapshot["slos"].append(entry)
    elif command != "touch":
        sys.exit(f"snapshot.py: unknown command {command}")
    snapshot["evaluatedAt"] = now()
    with open(path + ".tmp", "w") as f:
        json.dump(snapshot, f, indent=1)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main(sys.argv)
