"""1 vs 2 workers and Dask LocalCluster vs the local process pool on a large input: ``aemg rectify``,
``tokenize`` and ``prepare`` on every 3DC file as an int16 ``.npy`` copy (968 files, 49.8 M
channel-samples), interleaved rounds, medians; wall time and the CPU time of the client, its pool
workers and the cluster's workers. Not collected by pytest (minutes of work).

    python benchmarks/workers_scaling.py [WORKDIR]   # ROUNDS=3, ONLY=rectify,tokenize,prepare

Needs the shared data (``$AEMG_DATA_ROOT/3dc_armband``) and dask.distributed. Prints a Markdown
table and writes ``WORKDIR/workers_scaling.json``.
"""
import gzip
import itertools
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

WORKDIR = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/aemg-workers-scaling")
ROOT = WORKDIR / "3dc_npy"
WORK = WORKDIR / "work"
OPTS = {"pattern": "{subject}/3dc_EMG_gesture_{trial}_{label}.npy", "rate": 1000.0, "device": "3dc"}
ROUNDS = int(os.environ.get("ROUNDS", 3))
ONLY = os.environ.get("ONLY", "rectify,tokenize,prepare").split(",")
count = itertools.count()


def make_npy() -> None:
    """Every 3DC .txt.gz file as an int16 .npy copy under ROOT (once)."""
    import numpy as np

    from aemg.data.paths import default_data_root
    from aemg.data.readers import base, get_reader
    root3 = default_data_root() / "3dc_armband"
    for s in get_reader("3dc", root3).sources():
        part, split, _, name = s.split("/")
        out = ROOT / f"{part}_{split}" / name.replace(".txt.gz", ".npy")
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            table = base.parse_table(gzip.open(root3 / s, "rt").read(), root3 / s, delimiter=",")
            np.save(out, np.asarray(table).astype(np.int16))


def kids_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cpu() -> float:
    import psutil
    t = psutil.Process().cpu_times()
    return t.user + t.system


def worker_cpu(client) -> float:
    return sum(client.run(_cpu).values())


def main() -> None:
    from distributed import Client, LocalCluster

    from aemg.data.pipeline import rectify_dataset
    from aemg.data.prepare import prepare_dataset
    from aemg.tokenizer.corpus import tokenize_archive
    make_npy()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    base_arch = WORK / "base_archive"  # tokenize's input
    chan_in = 10 * rectify_dataset("generic", base_arch, root=ROOT, reader_options=OPTS, workers=2,
                                   progress=False).samples_in
    results: dict = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=50) as cluster, \
            Client(cluster.scheduler_address, set_as_default=False) as client:
        addr = cluster.scheduler_address

        def rect(w, s):
            rectify_dataset("generic", WORK / f"a{next(count)}", root=ROOT, reader_options=OPTS, workers=w,
                            progress=False, scheduler=s)

        def tok(w, s):
            tokenize_archive(base_arch, WORK / f"c{next(count)}", workers=w, progress=False, scheduler=s)

        def prep(w, s):
            prepare_dataset("generic", WORK / f"p{next(count)}", root=ROOT, reader_options=OPTS, workers=w,
                            progress=False, scheduler=s)

        cases = []
        for name, fn in (("rectify", rect), ("tokenize", tok), ("prepare", prep)):
            if name in ONLY:
                cases += [(name, "pool 1", lambda fn=fn: fn(1, None)),
                          (name, "pool 2", lambda fn=fn: fn(2, None)),
                          (name, "LocalCluster 2", lambda fn=fn: fn(2, addr))]
        for name, impl, fn in cases:  # warm-up: imports on the cluster's workers
            if impl == "LocalCluster 2":
                fn()
        for rnd in range(ROUNDS):
            for name, impl, fn in cases:
                load = os.getloadavg()[0]
                w0, c0, k0, d0 = time.perf_counter(), time.process_time(), kids_cpu(), worker_cpu(client)
                fn()
                wall = time.perf_counter() - w0
                cpu = (time.process_time() - c0) + (kids_cpu() - k0) + (worker_cpu(client) - d0)
                results.setdefault((name, impl), []).append((wall, cpu, load))
                print(f"round {rnd} {name:8s} {impl:15s} {wall:6.2f} s, CPU {cpu:6.2f} s, load {load:.2f}",
                      flush=True)
                for p in WORK.iterdir():
                    if p != base_arch:
                        shutil.rmtree(p, ignore_errors=True)
    rows = []
    for (name, impl), v in results.items():
        wall, cpu, load = (statistics.median(x[i] for x in v) for i in range(3))
        rows.append({"name": name, "impl": impl, "wall": wall, "cpu": cpu, "load": load,
                     "M_per_s": chan_in / wall / 1e6, "M_per_cpu_s": chan_in / cpu / 1e6})
    print(f"\nmedians of {ROUNDS} rounds, {chan_in:,} raw channel-samples in")
    print("| command | impl | wall s | CPU s | M/s | M per CPU-s | vs pool 1 | vs pool 2 | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        same = {x["impl"]: x["wall"] for x in rows if x["name"] == r["name"]}
        r["vs_pool1"], r["vs_pool2"] = same["pool 1"] / r["wall"], same["pool 2"] / r["wall"]
        print(f"| {r['name']} | {r['impl']} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['M_per_s']:.1f} | "
              f"{r['M_per_cpu_s']:.1f} | {r['vs_pool1']:.2f}x | {r['vs_pool2']:.2f}x | {r['load']:.1f} |")
    (WORKDIR / "workers_scaling.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
