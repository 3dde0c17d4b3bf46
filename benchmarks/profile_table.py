"""Where the table flow's time goes: per-task times by kind, and a cProfile of the kernels.

Scratch profiling script for #14 (results in ``benchmarks/PROFILE.md``). The same graph as
``bench_table.py``'s ``dask`` method (read -> dedup -> lookahead 30 s -> write) on data made by
``bench_table.generate``:

- ``--mode stream``: on a LocalCluster (``--workers`` x 1 thread, dask-flows' worker
  environment; ``--threads``: one worker of ``--workers`` threads in this process, the table
  flow's default; ``--scans hold|recompute``: the scans' memory policy), the distributed task stream, summed by task kind (the key's prefix: read,
  dedup's last-rows / carry / kernel, lookahead's tail / carry / kernel, write), as shares of
  the summed task time; plus the wall time and the workers' pids (for ``py-spy``).
  With ``--py-spy``, ``py-spy record`` samples each worker process during the runs (collapsed
  stacks under ``--py-spy-dir``), summarized as the top functions by own samples and by
  samples including callees (``py-spy`` must be installed: ``pip install py-spy``).
- ``--mode cprofile``: the whole graph with the synchronous scheduler under cProfile (one
  process), top functions by own time and cumulative time.

    python benchmarks/profile_table.py --rows 4e6 --files 8 --layout folder --mode stream
    python benchmarks/profile_table.py --rows 4e6 --files 8 --layout file --mode cprofile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_table as bt  # noqa: E402


def build(data: Path, out: Path, layout: str, hold: bool = True) -> Any:
    """The benchmark's graph, not computed: the write as a Dask scalar (``hold``: the scans'
    memory policy, :mod:`pipelines.partitions`)."""
    from pipelines.partitions import with_hold_partitions

    ddf = bt.read_dask(data, layout)
    ddf = bt.drop_consecutive_duplicates(ddf, subset=bt.SUBSET, by=bt.KEY, time=bt.TIME)
    ddf = bt.future_features(ddf, bt.HORIZON, bt.COLUMNS, bt.FEATURES, by=bt.KEY, time=bt.TIME)
    (ddf,) = with_hold_partitions(ddf, hold=hold)
    return ddf.to_parquet(str(out), write_index=False, compute=False)


def kind(key: Any) -> str:
    """A task key's kind: its name without tokens and indices."""
    name = key[0] if isinstance(key, tuple) else key
    name = re.sub(r"-[0-9a-f]{8,}.*$", "", str(name))
    return re.sub(r"-\d+$", "", name)


def start_py_spy(pids: list[int], folder: Path) -> list[Any]:
    """``py-spy record`` on each pid (collapsed stacks, 200 samples/s), until interrupted."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "200",
                              "--format", "raw", "-o", str(folder / f"worker-{pid}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid in pids]


def stop_py_spy(processes: list[Any], folder: Path, top: int) -> None:
    """Stop the recorders and print the top functions by own and by inclusive samples."""
    import signal

    for process in processes:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    own: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    for path in folder.glob("worker-*.txt"):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = [re.sub(r" \(/.*/(site-packages|wt-[^/]+)/", " (", f) for f in stack.split(";")]
            frames = [f for f in frames if f]
            if not count.isdigit() or not any(f.startswith("Task.__call__") for f in frames):
                continue  # only the samples of running tasks (not the event loop, not idle pipes)
            total += int(count)
            own[frames[-1]] += int(count)
            for function in {re.sub(r":\d+\)$", ")", f) for f in frames}:  # by function
                inclusive[function] += int(count)
    print(f"\npy-spy: {total} samples inside running tasks (collapsed stacks in {folder})")
    for title, table in (("own (by line)", own), ("inclusive (by function)", inclusive)):
        print(f"top {top} by {title} samples:")
        for frame, count in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {100 * count / max(total, 1):5.1f}%  {frame[:130]}")


def stream_profile(data: Path, out: Path, layout: str, workers: int, repeat: int,
                   py_spy: Path | None = None, top: int = 25, hold: bool = True,
                   threads: bool = False) -> None:
    from distributed import Client, LocalCluster, get_task_stream

    if threads:  # the table flow's default cluster: one worker in this process
        cluster = LocalCluster(n_workers=1, threads_per_worker=workers, processes=False,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        cluster, client = bt.start_warm_cluster(workers)
    pids = client.run(lambda: __import__("os").getpid())
    print(f"worker pids (py-spy record --pid PID): {sorted(pids.values())}", flush=True)
    spies = start_py_spy(sorted(pids.values()), py_spy) if py_spy else []
    try:
        for r in range(repeat):
            bt._wait_until_idle(client)
            write = build(data, out / f"run-{r}", layout, hold)
            start = time.perf_counter()
            with get_task_stream(client) as ts:
                client.compute(write).result()
            wall = time.perf_counter() - start
            totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
            for task in ts.data:
                for phase in task["startstops"]:
                    slot = 0 if phase["action"] == "compute" else 1
                    totals[kind(task["key"])][slot] += phase["stop"] - phase["start"]
                totals[kind(task["key"])][2] += 1
            busy = sum(v[0] + v[1] for v in totals.values())
            print(f"\nrun {r + 1}: wall {wall:.2f} s; summed task time {busy:.2f} s "
                  f"(x{busy / wall / workers:.2f} of {workers} workers' wall)")
            print(f"{'task kind':<44}{'tasks':>6}{'compute s':>10}{'transfer s':>11}{'share':>7}")
            for name, (comp, other, count) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
                print(f"{name:<44}{count:>6}{comp:>10.2f}{other:>11.2f}"
                      f"{100 * (comp + other) / busy:>6.1f}%")
    finally:
        if spies:
            stop_py_spy(spies, py_spy, top)
        client.close()
        cluster.close()


def cprofile(data: Path, out: Path, layout: str, top: int) -> None:
    import dask

    write = build(data, out / "cprofile", layout)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    with dask.config.set(scheduler="sync"):
        profiler.enable()
        dask.compute(write)
        profiler.disable()
    print(f"synchronous scheduler, one process: {time.perf_counter() - start:.2f} s under cProfile")
    for order in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats(order).print_stats(top)
        text = buffer.getvalue()
        print(text[text.index("ncalls") - 2:] if "ncalls" in text else text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=lambda s: int(float(s)), default=4_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--layout", choices=["folder", "file"], default="folder")
    parser.add_argument("--shape", choices=["default", "issue"], default="issue")
    parser.add_argument("--mode", choices=["stream", "cprofile"], default="stream")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--py-spy", action="store_true", help="stream mode: py-spy the workers")
    parser.add_argument("--py-spy-dir", type=Path, default=Path("bench-data/py-spy"))
    parser.add_argument("--scans", choices=["hold", "recompute"], default="hold",
                        help="the scans' memory policy (pipelines.partitions)")
    parser.add_argument("--threads", action="store_true",
                        help="stream mode: one worker of --workers threads in this process")
    args = parser.parse_args(argv)
    data = (args.data or Path(f"bench-data/profile-{args.shape}-{args.layout}-{args.rows}")).resolve()
    part_rows = -(-args.rows // args.files)
    bt.generate(data, args.rows, 10, part_rows, min(100_000, part_rows), 0, args.shape, args.layout)
    out = data.with_name(data.name + "-out")
    if args.mode == "stream":
        stream_profile(data, out, args.layout, args.workers, args.repeat,
                       args.py_spy_dir.resolve() if args.py_spy else None, args.top,
                       args.scans == "hold", args.threads)
    else:
        cprofile(data, out, args.layout, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
