#!/usr/bin/env python3
"""Where each millisecond of a step goes: the breakdown of a lockstep trace.json (output.trace: true).

    scripts/trace_summary.py RUN_DIR/trace.json [--skip-steps N]

Per rank and thread, per event name: count, total ms, mean ms per step, and share of step time,
over the "step" events after the first N (default 1: the first step pays for first-touch page
faults and warm-up). A name seen with several categories is shown as name:category ("wait:reduce",
"wait:update"). "(untraced)" is the part of the steps no main-thread event covers. Events on the
progress thread ("allreduce") overlap the main thread's, so their share is of the same step time
but is not part of the main thread's sum. Events outside the counted steps (loading, shuffle,
evaluation, epoch-end checkpoints) are listed after, with their totals.

A trace without steps (lockstep fit) gets one table per rank: count, total, mean per event, and
share of the rank's traced span.
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict


def load(path):
    with open(path) as f:
        d = json.load(f)
    events = [e for e in d["traceEvents"] if e.get("ph") == "X"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in d["traceEvents"]
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    return d, events, threads


def keyed(events):
    cats = defaultdict(set)
    for e in events:
        cats[e["name"]].add(e.get("cat", ""))
    return lambda e: e["name"] if len(cats[e["name"]]) == 1 else e["name"] + ":" + e.get("cat", "")


def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    out = ["  ".join(str(h).ljust(w) if i < 2 else str(h).rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    for r in rows:
        out.append("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def inside(e, spans, i):
    """Index of the step span containing e (spans sorted by start), searching from i; or None."""
    ts, end = e["ts"], e["ts"] + e["dur"]
    lo, hi = 0, len(spans)
    while lo < hi:  # last span starting at or before ts
        mid = (lo + hi) // 2
        if spans[mid][0] <= ts:
            lo = mid + 1
        else:
            hi = mid
    k = lo - 1
    if k >= 0 and end <= spans[k][1] + 1e-3:
        return k
    return None


def rank_steps(pid, events, threads, key, skip):
    steps = sorted((e for e in events if e["pid"] == pid and e["name"] == "step"), key=lambda e: e["ts"])
    kept = steps[skip:]
    if not kept:
        return None
    spans = [(s["ts"], s["ts"] + s["dur"]) for s in kept]
    skipped = [(s["ts"], s["ts"] + s["dur"]) for s in steps[:skip]]
    step_ms = [s["dur"] / 1000 for s in kept]
    total_step = sum(step_ms)
    main_tid = kept[0]["tid"]
    agg = defaultdict(lambda: [0, 0.0])
    outside = defaultdict(lambda: [0, 0.0])
    covered = 0.0
    for e in events:
        if e["pid"] != pid or e["name"] == "step":
            continue
        if inside(e, skipped, 0) is not None:
            continue  # part of a skipped step
        k = inside(e, spans, 0)
        thread = threads.get((pid, e["tid"]), str(e["tid"]))
        target = agg if k is not None else outside
        a = target[(thread, key(e))]
        a[0] += 1
        a[1] += e["dur"] / 1000
        if k is not None and e["tid"] == main_tid:
            covered += e["dur"] / 1000
    n = len(kept)
    rows = []
    for (thread, name), (count, ms) in sorted(agg.items(), key=lambda kv: (kv[0][0] != "main", -kv[1][1])):
        rows.append([thread, name, count, f"{ms:.1f}", f"{ms / n:.3f}", f"{100 * ms / total_step:.1f}%"])
    other = total_step - covered
    rows.append(["main", "(untraced)", "", f"{other:.1f}", f"{other / n:.3f}", f"{100 * other / total_step:.1f}%"])
    wait = sum(ms for (thread, name), (_, ms) in agg.items() if thread == "main" and name.split(":")[0] == "wait")
    return dict(steps=n, skipped=min(skip, len(steps)), step_ms=step_ms, total=total_step, rows=rows, wait=wait,
                outside=outside)


def summarize_steps(d, events, threads, skip):
    key = keyed(events)
    medians, waits = [], []
    for pid in sorted({e["pid"] for e in events}):
        r = rank_steps(pid, events, threads, key, skip)
        if r is None:
            print(f"rank {pid}: no steps after skipping {skip}")
            continue
        med = statistics.median(r["step_ms"])
        medians.append(med)
        waits.append(r["wait"] / r["total"])
        print(f"== rank {pid}: {r['steps']} steps (first {r['skipped']} skipped), {r['total']:.1f} ms; "
              f"step median {med:.3f} ms, mean {r['total'] / r['steps']:.3f} ms; wait {100 * r['wait'] / r['total']:.1f}% of step time")
        print(table(r["rows"], ["thread", "event", "count", "total ms", "ms/step", "% step"]))
        if r["outside"]:
            rows = [[t, n, c, f"{ms:.1f}"] for (t, n), (c, ms) in sorted(r["outside"].items(), key=lambda kv: -kv[1][1])]
            print("  outside the counted steps:")
            print(table(rows, ["thread", "event", "count", "total ms"]))
        print()
    if medians:
        print(f"all ranks: step median {statistics.median(medians):.3f} ms (per rank: "
              + ", ".join(f"{m:.3f}" for m in medians) + "); wait share "
              + ", ".join(f"{100 * w:.1f}%" for w in waits))
    dropped = d.get("otherData", {}).get("dropped_events", 0)
    if dropped:
        print(f"note: {dropped} events were dropped over the cap; the tail of the run is missing")


def summarize_flat(events, threads):
    key = keyed(events)
    for pid in sorted({e["pid"] for e in events}):
        mine = [e for e in events if e["pid"] == pid]
        span = (max(e["ts"] + e["dur"] for e in mine) - min(e["ts"] for e in mine)) / 1000
        agg = defaultdict(lambda: [0, 0.0])
        for e in mine:
            a = agg[(threads.get((pid, e["tid"]), str(e["tid"])), key(e))]
            a[0] += 1
            a[1] += e["dur"] / 1000
        rows = [[t, n, c, f"{ms:.1f}", f"{ms / c:.3f}", f"{100 * ms / span:.1f}%"]
                for (t, n), (c, ms) in sorted(agg.items(), key=lambda kv: -kv[1][1])]
        print(f"== rank {pid}: no step events; {span:.1f} ms traced (nested events count in their parents too)")
        print(table(rows, ["thread", "event", "count", "total ms", "ms/event", "% span"]))
        print()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace", help="trace.json written with output.trace: true")
    p.add_argument("--skip-steps", type=int, default=1, metavar="N", help="leave out the first N steps (default 1)")
    a = p.parse_args()
    if a.skip_steps < 0:
        p.error("--skip-steps: expected an integer >= 0")
    try:
        d, events, threads = load(a.trace)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"trace_summary: {a.trace}: not a readable Chrome trace JSON ({e})")
    if not events:
        sys.exit(f"trace_summary: {a.trace}: no events")
    if any(e["name"] == "step" for e in events):
        summarize_steps(d, events, threads, a.skip_steps)
    else:
        summarize_flat(events, threads)


if __name__ == "__main__":
    main()
