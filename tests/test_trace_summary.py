"""trace_summary: self time per op from a jax.profiler trace (nested spans taken out, device streams only)."""

import gzip
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import trace_summary  # noqa: E402


def _trace(events, procs):
    meta = [{"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}} for pid, name in procs.items()]
    return {"traceEvents": meta + events}


def _span(pid, tid, ts, dur, name):
    return {"ph": "X", "pid": pid, "tid": tid, "ts": ts, "dur": dur, "name": name}


def test_nested_spans_count_their_own_time_and_host_events_drop_when_a_device_streams():
    events = [_span(1, 7, 0, 100, "while.3"), _span(1, 7, 10, 30, "fusion.1"), _span(1, 7, 50, 20, "fusion.2"),
              _span(1, 8, 0, 40, "gemm"),  # another stream: not nested in while.3
              _span(2, 1, 0, 999, "PjitFunction(train_step)"), _span(1, 7, 80, 5, "$python")]
    times = trace_summary.op_times(_trace(events, {1: "/device:GPU:0", 2: "/host:CPU"}))
    assert times == {"while.3": 50, "fusion.1": 30, "fusion.2": 20, "gemm": 40}
    text = trace_summary.summary(times)
    assert "summed op time 0.1 ms" in text and "  35.7%  fusion\n" in text  # categories: fusion.1 + fusion.2


def test_a_cpu_trace_keeps_host_ops_but_not_idle_waits(tmp_path):
    events = [_span(2, 1, 0, 10, "ynn_fusion.3"), _span(2, 1, 20, 500, "ThunkExecutor::Execute (wait for completion)")]
    path = tmp_path / "plugins" / "profile" / "run" / "vm.trace.json.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as f:
        json.dump(_trace(events, {2: "/host:CPU"}), f)
    assert trace_summary.newest_trace(str(tmp_path)) == str(path)
    assert trace_summary.op_times(json.load(gzip.open(path, "rt"))) == {"ynn_fusion.3": 10}
    with pytest.raises(SystemExit, match="--profile"):
        trace_summary.newest_trace(str(tmp_path / "plugins" / "profile" / "none"))
