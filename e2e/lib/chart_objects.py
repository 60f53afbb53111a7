#!/usr/bin/env python3
"""Objects of a rendered chart or kustomization, for e2e/lib/chart.sh.

  chart_objects.py list FILE                      "Kind namespace/name" per object, sorted
  chart_objects.py field FILE KIND NAME PATH      one field (PATH: a.b.0.c); strings raw, the rest JSON
  chart_objects.py compare CHART KUSTOMIZE        every object equal, except that the chart may add
                                                  Helm's standard labels to metadata.labels
  chart_objects.py rules FILE                     spec of the PrometheusRule as a rules file (for promtool)
  chart_objects.py without FILE GROUP...          the objects whose apiVersion is in none of the GROUPs
"""
import json
import sys

import yaml

# What Helm's conventions add; any other label difference is a real one.
CHART_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def key(obj):
    meta = obj.get("metadata", {})
    ns = meta.get("namespace", "")
    return f"{obj['kind']} {ns + '/' if ns else ''}{meta.get('name', meta.get('generateName', '?'))}"


def index(objs):
    out = {}
    for o in objs:
        k = key(o)
        if k in out:
            sys.exit(f"chart_objects: {k} appears twice")
        out[k] = o
    return out


def diff(path, a, b, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{path}.{k}: only in the kustomization: {json.dumps(b[k])}")
            elif k not in b:
                out.append(f"{path}.{k}: only in the chart: {json.dumps(a[k])}")
            else:
                diff(f"{path}.{k}", a[k], b[k], out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(f"{path}.{i}", x, y, out)
    elif a != b:
        out.append(f"{path}: chart {json.dumps(a)}, kustomization {json.dumps(b)}")


def compare(chart_path, kust_path):
    chart, kust = index(load(chart_path)), index(load(kust_path))
    problems = []
    for k in sorted(set(chart) | set(kust)):
        if k not in chart:
            problems.append(f"{k}: only in the kustomization")
            continue
        if k not in kust:
            problems.append(f"{k}: only in the chart")
            continue
        a, b = chart[k], kust[k]
        la = a.get("metadata", {}).pop("labels", None) or {}
        lb = b.get("metadata", {}).pop("labels", None) or {}
        for name in sorted(set(la) | set(lb)):
            if la.get(name) == lb.get(name):
                continue
            if name not in lb and name in CHART_LABELS:
                continue
            problems.append(f"{k}: label {name}: chart {la.get(name)!r}, kustomization {lb.get(name)!r}")
        out = []
        diff("", a, b, out)
        problems += [f"{k}: {d}" for d in out]
    for p in problems:
        print(p)
    return 1 if problems else 0


def field(path, kind, name, dotted):
    for o in load(path):
        if o["kind"] == kind and o["metadata"].get("name") == name:
            v = o
            for part in dotted.split("."):
                v = v[int(part)] if isinstance(v, list) else v[part]
            print(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
            return 0
    sys.exit(f"chart_objects: no {kind} {name} in {path}")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "list":
        print("\n".join(sorted(key(o) for o in load(args[0]))))
        return 0
    if cmd == "field":
        return field(*args)
    if cmd == "compare":
        return compare(*args)
    if cmd == "rules":
        rule = [o for o in load(args[0]) if o["kind"] == "PrometheusRule"]
        print(yaml.safe_dump({"groups": rule[0]["spec"]["groups"]}, sort_keys=False))
        return 0
    if cmd == "without":
        keep = [o for o in load(args[0]) if o["apiVersion"].split("/")[0] not in args[1:]]
        print(yaml.safe_dump_all(keep, sort_keys=False), end="")
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
