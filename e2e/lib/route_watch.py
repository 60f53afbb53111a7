#!/usr/bin/env python3
"""Watches one HTTPRoute, the EndpointSlices and the canary Deployment of a namespace, the
way a gateway sees them, and writes what happens to OUT, one line per change:

    <seconds> weights <rule>:<service>=<weight>,<service>=<weight> ...   (managed rules)
    <seconds> canary replicas=<n> deleting=<true|false>
    <seconds> canary gone
    <seconds> empty <rule> <service> weight=<w> ready=0     (a weighted backend without a
                                                              ready endpoint: a gateway
                                                              would answer 503)

usage: route_watch.py KUBECTL NAMESPACE ROUTE STABLE_SERVICE OUT

Three `kubectl get --raw ...?watch=1` streams (the route, the namespace's EndpointSlices,
the canary Deployment); each event re-evaluates every rule that names STABLE_SERVICE.
Runs until terminated; it writes `<seconds> watching` once all three streams are open and
have delivered their first events.
"""
import json
import signal
import subprocess
import sys
import threading
import time

kubectl, ns, route_name, stable, out_path = sys.argv[1:6]
lock = threading.Lock()
route = {}
slices = {}  # name -> (service, ready count)
canary = {"state": None}
last = {"weights": None, "canary": None, "empty": set()}
out = open(out_path, "a", buffering=1)
# Backends without endpoints are reported once every stream has delivered its first list
# (before that, a route seen ahead of its EndpointSlices would look empty).
judging = {"on": False}
seen = {"events": 0}
procs = []
t0 = time.time()


def say(text):
    out.write(f"{time.time() - t0:.3f} {text}\n")


def refs_of(rule):
    return [r for r in rule.get("backendRefs") or [] if r.get("kind", "Service") == "Service" and not r.get("group")]


def evaluate():
    rules = (route.get("spec") or {}).get("rules") or []
    managed = [(i, rule) for i, rule in enumerate(rules) if any(r.get("name") == stable for r in refs_of(rule))]
    weights = " ".join(
        f"{i}:" + ",".join(f"{r['name']}={r.get('weight', 1)}" for r in refs_of(rule)) for i, rule in managed
    )
    if route and weights != last["weights"]:
        last["weights"] = weights
        say(f"weights {weights}")
    ready = {}
    for service, n in slices.values():
        ready[service] = ready.get(service, 0) + n
    empty = set()
    for i, rule in managed:
        for r in refs_of(rule):
            w = r.get("weight", 1)
            if w > 0 and ready.get(r["name"], 0) == 0:
                empty.add((i, r["name"], w))
    if judging["on"]:
        for i, name, w in sorted(empty - last["empty"]):
            say(f"empty {i} {name} weight={w} ready=0")
        last["empty"] = empty
    if canary["state"] != last["canary"]:
        last["canary"] = canary["state"]
        if canary["state"] is not None:
            say(f"canary {canary['state']}")


def stream(path, handle, opened):
    proc = subprocess.Popen([kubectl, "get", "--raw", path], stdout=subprocess.PIPE, text=True)
    procs.append(proc)
    opened.set()
    buf = ""
    decoder = json.JSONDecoder()
    for chunk in iter(lambda: proc.stdout.readline(), ""):
        buf += chunk
        while buf.strip():
            try:
                event, end = decoder.raw_decode(buf.lstrip())
            except ValueError:
                break
            buf = buf.lstrip()[end:]
            with lock:
                handle(event.get("type"), event.get("object") or {})
                seen["events"] += 1
                evaluate()


def on_route(kind, obj):
    if obj.get("metadata", {}).get("name") != route_name:
        return
    route.clear()
    if kind != "DELETED":
        route.update(obj)


def on_slice(kind, obj):
    name = obj.get("metadata", {}).get("name")
    service = (obj.get("metadata", {}).get("labels") or {}).get("kubernetes.io/service-name")
    if kind == "DELETED" or not service:
        slices.pop(name, None)
        return
    n = 0
    for e in obj.get("endpoints") or []:
        c = e.get("conditions") or {}
        if c.get("ready") is not False and c.get("terminating") is not True:
            n += 1
    slices[name] = (service, n)


def on_deployment(kind, obj):
    meta = obj.get("metadata", {})
    if not meta.get("name", "").endswith("-canary"):
        return
    if kind == "DELETED":
        canary["state"] = "gone"
        return
    deleting = "true" if meta.get("deletionTimestamp") else "false"
    canary["state"] = f"replicas={(obj.get('spec') or {}).get('replicas', 1)} deleting={deleting}"


streams = [
    (f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes?watch=1", on_route),
    (f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?watch=1", on_slice),
    (f"/apis/apps/v1/namespaces/{ns}/deployments?watch=1", on_deployment),
]
threads = []
for path, handle in streams:
    opened = threading.Event()
    t = threading.Thread(target=stream, args=(path, handle, opened), daemon=True)
    t.start()
    opened.wait()
    threads.append(t)
def stop(*_):
    with lock:
        say(f"stopped after {seen['events']} watch events")
    for p in procs:
        p.terminate()
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
time.sleep(1)  # the initial ADDED events of each stream
with lock:
    say("watching")
    judging["on"] = True
    evaluate()
while True:
    time.sleep(3600)
