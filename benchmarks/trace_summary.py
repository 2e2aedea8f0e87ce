"""What dominates a jax.profiler trace: device time per op, the largest first.

    python benchmarks/trace_summary.py /tmp/gpu_check/trace [--top 25]

reads the newest `*.trace.json.gz` under the directory (`bench_train_step.py --profile DIR` writes one) and
sums the self time (nested events taken out) of each op on the accelerator's streams (processes named
`/device:...`), or, in a CPU trace, on XLA's host threads (the Python tracer's `$...` events and the threads'
idle waits left out). One row per op name: total ms, share of the summed time; then the same summed by op
category (the name's stem: `fusion.12` -> `fusion`).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re


def newest_trace(path: str) -> str:
    """The newest `*.trace.json.gz` at or under `path` (a file is returned as it is)."""
    if os.path.isfile(path):
        return path
    found = glob.glob(os.path.join(path, "**", "*.trace.json.gz"), recursive=True)
    if not found:
        raise SystemExit(f"no *.trace.json.gz under {path}: run bench_train_step.py with --profile {path} first")
    return max(found, key=os.path.getmtime)


def op_times(trace: dict) -> collections.Counter:
    """Self time (microseconds, nested events' time taken out) per op name on the device streams, or on XLA's
    CPU threads when the trace has no device."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    procs = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    device = {pid for pid, name in procs.items() if name.startswith("/device:")}
    spans = sorted((e for e in events if e.get("ph") == "X" and "dur" in e and not e["name"].startswith("$")
                    and "(wait for completion)" not in e["name"] and (not device or e["pid"] in device)),
                   key=lambda e: (e["pid"], e["tid"], e["ts"], -e["dur"]))
    times = collections.Counter()
    stack = []  # the open spans of the current thread: [end, name]
    thread = None
    for e in spans:
        if (e["pid"], e["tid"]) != thread:
            thread, stack = (e["pid"], e["tid"]), []
        while stack and stack[-1][0] <= e["ts"]:
            stack.pop()
        if stack:  # nested: its time is not its parent's own
            times[stack[-1][1]] -= e["dur"]
        times[e["name"]] += e["dur"]
        stack.append([e["ts"] + e["dur"], e["name"]])
    return times


def stem(name: str) -> str:
    """An op's category: its name without the numeric suffix XLA adds (`fusion.12` -> `fusion`)."""
    return re.sub(r"[._]\d+$", "", name)


def summary(times: collections.Counter, top: int = 25) -> str:
    """The table: ops, then categories, each with total ms and share."""
    total = sum(times.values()) or 1
    lines = [f"summed op time {total / 1e3:.1f} ms", "", f"{'ms':>10} {'share':>6}  op"]
    lines += [f"{us / 1e3:10.2f} {us / total:6.1%}  {name}" for name, us in times.most_common(top)]
    cats = collections.Counter()
    for name, us in times.items():
        cats[stem(name)] += us
    lines += ["", f"{'ms':>10} {'share':>6}  category"]
    lines += [f"{us / 1e3:10.2f} {us / total:6.1%}  {name}" for name, us in cats.most_common(top)]
    return "\n".join(lines)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", help="a --profile directory or one *.trace.json.gz")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    path = newest_trace(args.path)
    with gzip.open(path, "rt") as f:
        text = summary(op_times(json.load(f)), args.top)
    print(path, text, sep="\n")
    return text


if __name__ == "__main__":
    main()
