#!/usr/bin/env python3
"""events.py EVENTS_JSONL START END: where one `provision apply` run's time went, from its
event log (`--run-dir DIR` writes DIR/events.jsonl), START and END being the run's wall
clock (epoch seconds) around the command. One line:

  before (connect, lock, read, plan) | host preparation | step 1 .. N | after (record, exit)

The first phase begins when its first host action began (an event's time minus its
duration). A phase ends at its last event (an event is stamped when its host's work for the phase
is done; `extra.step` 0 is host preparation); a phase's time is the gap from the
previous phase's end. Per step: containers acted on, the slowest host (a host starts
its step's containers all at once, then polls their healthchecks together: its longest
podman action + its longest healthcheck wait) and the sum of every podman action's
duration (more than the wall time: they overlap).
"""
import json
import sys
from collections import defaultdict

path, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
events = [json.loads(line) for line in open(path) if line.strip()]
phases = defaultdict(list)
for e in events:
    x = e["extra"]
    if x.get("host") is None or x.get("step") is None:
        continue
    phases[x["step"]].append(e)

parts = []
prev = start
if phases:
    # The first phase began when its first host action began (stamped at its end, minus
    # its duration): before that, connect, lock, read every host, plan.
    first = min(phases)
    begin = min(e["created"] - e["extra"]["duration"] for e in phases[first])
    parts.append(f"before (connect, lock, read every host, plan) {begin - start:.2f} s")
    prev = begin
for step in sorted(phases):
    evs = phases[step]
    stop = max(e["created"] for e in evs)
    took = stop - prev
    prev = stop
    if step == 0:
        files = [e for e in evs if e["extra"]["action"] == "write file"]
        batch = {}
        for e in files:
            batch[e["extra"]["host"]] = e["extra"]["duration"]
        dirs = sum(1 for e in evs if e["extra"]["action"] == "directory")
        what = f"{len(files)} files in {len(batch)} batches"
        if batch:
            what += f", slowest batch {max(batch.values()):.2f} s"
        if dirs:
            what += f", {dirs} directories"
        parts.append(f"host preparation {took:.2f} s ({what})")
        continue
    acts = defaultdict(int)
    per_host = defaultdict(float)
    health = defaultdict(float)
    podman = 0.0
    failed = 0
    for e in evs:
        x = e["extra"]
        if x["result"] == "failed":
            failed += 1
        if x["action"].endswith(" container"):
            acts[x["action"].split()[0]] += 1
            per_host[x["host"]] = max(per_host[x["host"]], x["duration"])
            podman += x["duration"]
        elif x["action"] == "health":
            health[x["host"]] = max(health[x["host"]], x["duration"])
    slowest = max((per_host[h] + health[h] for h in set(per_host) | set(health)), default=0.0)
    verbs = {"create": "created", "recreate": "recreated", "start": "started"}
    what = ", ".join(f"{n} {verbs.get(a, a)}" for a, n in sorted(acts.items())) or "nothing"
    extra = f"; {failed} FAILED" if failed else ""
    parts.append(
        f"step {step} {took:.2f} s ({what} on {len(per_host)} hosts, slowest host {slowest:.2f} s,"
        f" podman calls {podman:.1f} s summed{extra})"
    )
parts.append(f"after (record, exit) {end - prev:.2f} s")
print(f"total {end - start:.2f} s: " + "; ".join(parts))
