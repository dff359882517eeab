"""End-to-end ``aemg tokenize``: read an archive, segment, make tokens, write shards.

Throughput in channel-samples/s (C x T values of the standard space) per core, with 1 and 2
worker processes, and the 2-worker speed-up, best of interleaved rounds (1, 2, 1, 2, ...) so that
load from other processes hits both alike. ``--quick``: a small synthetic archive, and only the
ratio is guarded (2 workers must not be slower than 1). Full run: a large archive made of the real
3DC recordings (rectified here from the shared data, or ``AEMG_BENCH_ARCHIVE``) repeated
``AEMG_BENCH_COPIES`` times (default 8: 319 M channel-samples, 1.2 GB) as distinct subjects, so the
~30 ms a worker spends starting up is small next to its work (on the 3DC archive alone, a 0.2 s
job with 2 workers, it is not); the corpus is written under ``AEMG_BENCH_OUT`` (default: pytest's
temporary folder; a tmpfs such as /dev/shm leaves disk writeback out of the measurement).
"""
import hashlib
import os
import shutil
import time
from pathlib import Path

import harness
import numpy as np
import pytest

from aemg._pool import default_workers
from aemg.data import Recording
from aemg.data.archive import ArchiveWriter
from aemg.tokenizer.corpus import tokenize_archive
from aemg.tokenizer.tokens import TokenizerConfig

CLASSES = ("rest", "a", "b", "c")


def synthetic_archive(path: Path, subjects: int, trials: int, n: int, rate: float = 500.0) -> Path:
    rng = np.random.default_rng(0)
    w = ArchiveWriter(path, {"space": {"rate": rate, "channels": 16}})
    for s in range(subjects):
        recs = []
        for t in range(trials):
            label = t % len(CLASSES)
            x = 0.05 * rng.standard_normal((16, n), dtype=np.float32)
            if label:
                for start in range(n // 10, n - n // 5, n // 4):
                    x[:, start:start + n // 8] += rng.standard_normal((16, n // 8), dtype=np.float32)
            recs.append(Recording(x, rate, "standard16", units="standard", dataset="bench",
                                  subject=str(s), trial=str(t), label=label, classes=CLASSES))
        w.add(f"s{s}", recs)
    w.finish()
    return path


def real_archive(tmp: Path) -> Path | None:
    env = os.environ.get("AEMG_BENCH_ARCHIVE")
    if env:
        return Path(env)
    from aemg.data.paths import default_data_root
    src = default_data_root() / "3dc_armband"
    if not src.is_dir():
        return None
    from aemg.data.pipeline import rectify_dataset
    from aemg.data.rectify import StandardSpace
    rectify_dataset("3dc", tmp / "3dc", StandardSpace(), root=src, workers=None, progress=False)
    return tmp / "3dc"


def tiled_archive(src: Path, path: Path, copies: int) -> Path:
    """``copies`` of every recording of ``src``, copy ``k`` of subject ``s`` as subject ``s"c{k}"``."""
    import dataclasses

    from aemg.data.archive import open_archive
    archive = open_archive(src)
    manifest = {k: v for k, v in archive.manifest.items() if k not in ("format", "version", "aemg_version")}
    w = ArchiveWriter(path, {**manifest, "source_root": f"{archive.manifest.get('source_root')} x{copies}"})
    recordings = archive.read_many(range(len(archive)))
    for k in range(copies):
        by_subject: dict[str, list] = {}
        for r in recordings:
            by_subject.setdefault(r.subject, []).append(dataclasses.replace(r, subject=f"{r.subject}c{k}"))
        for subject, recs in by_subject.items():
            w.add(f"{subject}c{k}", recs)
    w.finish()
    return path


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_tokenize_end_to_end(tmp_path_factory, quick):
    tmp = tmp_path_factory.mktemp("bench_tokenize")
    if quick:
        archive, name = synthetic_archive(tmp / "syn", subjects=16, trials=12, n=12_000), "synthetic"
        rounds = 3
    else:
        archive = real_archive(tmp)
        if archive is None:
            pytest.skip("3DC data not found (set AEMG_DATA_ROOT or AEMG_BENCH_ARCHIVE)")
        copies = int(os.environ.get("AEMG_BENCH_COPIES", "8"))
        archive, name = tiled_archive(archive, tmp / "tiled", copies), f"3dc x{copies}"
        rounds = 4
    out_root = Path(os.environ.get("AEMG_BENCH_OUT") or tmp)
    cfg = TokenizerConfig()
    cores = default_workers()
    # warm-up (kernel loading, page cache)
    tokenize_archive(archive, out_root / "bench_tok_warm", cfg, workers=1, progress=False)
    shutil.rmtree(out_root / "bench_tok_warm")
    best = {1: (float("inf"), None), 2: (float("inf"), None)}
    digests: dict[int, str] = {}
    load_before = os.getloadavg()[0]
    for r in range(rounds):
        for workers in (1, 2):
            out = out_root / f"bench_tok_w{workers}"
            if hasattr(os, "sync"):
                os.sync()  # earlier rounds' writeback must not throttle this one
            t0 = time.perf_counter()
            report = tokenize_archive(archive, out, cfg, workers=workers, progress=False)
            seconds = time.perf_counter() - t0
            if seconds < best[workers][0]:
                best[workers] = (seconds, report)
            digests[workers] = digest(out)
            shutil.rmtree(out)
    for workers, (seconds, report) in best.items():
        rate = report.channel_samples / seconds
        # per busy core: samples over the CPU time of all processes (robust to a loaded machine);
        # parent_cpu_share: the serial part in the parent (with 2 workers) -> Amdahl bound
        harness.record("tokenize", archive=name, workers=report.workers, cores=cores, load=os.getloadavg()[0],
                       msamples=report.channel_samples / 1e6, tokens=report.tokens,
                       sentences=report.sentences,
                       seconds=seconds, msamples_per_s=rate / 1e6,
                       msamples_per_s_per_worker=rate / workers / 1e6,
                       cpu_seconds=report.cpu_seconds,
                       msamples_per_cpu_s=report.channel_samples_per_cpu_s / 1e6,
                       parent_cpu_share=report.parent_cpu_seconds / report.cpu_seconds,
                       tokens_per_s=report.tokens / seconds)
    speedup = best[1][0] / best[2][0]
    harness.record("tokenize", archive=name, workers="2 vs 1", cores=cores, speedup=speedup)
    # correctness: the same corpus bytes for any worker count
    assert digests[1] == digests[2]
    assert best[1][1].tokens > 0
    # the ratio means something only when a second core is free: the 1-minute load average counts
    # this run itself (~1), so above ~1.5 another process is competing (shared machines)
    if cores >= 2 and load_before < 1.5:
        assert speedup > 0.9, f"2 workers slower than 1: {best[1][0]:.3f} s vs {best[2][0]:.3f} s"
