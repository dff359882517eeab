"""Rectification throughput: :func:`aemg.data.rectify.rectify` vs the straightforward SciPy
pipeline a user would write, measured in the same run on the same recordings.

Throughput is in *input* samples/s (channels x time of the raw recording) and as a fraction of the
machine's memory-read rate. Inputs: real 3DC recordings (10 channels, 1 kHz -> 500 Hz, 16 virtual
channels) when the shared data is present, else synthetic 3DC-like trials; ``--quick`` uses a few
short trials. Both pipelines do the same work: band-pass 20-225 Hz (4th order, zero phase),
notches at 50/100/150/200 Hz (Q 30, zero phase), 1000 -> 500 Hz polyphase, 16 output channels.

Guard: ours must be at least ``MIN_SPEEDUP`` x the straightforward pipeline's throughput.
"""
import itertools

import harness
import numpy as np
import pytest
from scipy import signal

from aemg.data.paths import default_data_root
from aemg.data.rectify import StandardSpace, rectify
from aemg.data.synthetic import SyntheticConfig, generate_unit

#: Measured 3.9x (full) and 4.0x (--quick) on the development machine (docs/notes/rectify.md);
#: guarded with margin for noisy shared CI machines.
MIN_SPEEDUP = 2.0
LINES = (50.0, 100.0, 150.0, 200.0)
SPACE = StandardSpace(notch=(50.0,), notch_mode="all", amplitude="none")   # same work as the naive one


def straightforward(x: np.ndarray, rate: float, out_rate: float = 500.0, n_out: int = 16) -> np.ndarray:
    """What a user would write: per-channel filtfilt with butter and iirnotch, resample_poly, then
    repeat channels up to 16 (the published implementation's "fewer channels are repeated")."""
    y = np.empty(x.shape, dtype=np.float64)
    b, a = signal.butter(4, [20.0, 225.0], "bandpass", fs=rate)
    for c in range(x.shape[0]):
        y[c] = signal.filtfilt(b, a, x[c])
    for f in LINES:
        bn, an = signal.iirnotch(f, 30.0, fs=rate)
        for c in range(x.shape[0]):
            y[c] = signal.filtfilt(bn, an, y[c])
    y = signal.resample_poly(y, int(out_rate), int(rate), axis=1)
    return y[np.arange(n_out) % x.shape[0]].astype(np.float32)


def load_inputs(quick: bool):
    root = default_data_root() / "3dc_armband"
    if root.is_dir():
        from aemg.data.readers import get_reader

        reader = get_reader("3dc", root)
        recs = []
        for source in reader.sources()[: 4 if quick else 44]:
            recs.extend(reader.read(source))
        if quick:
            recs = [r.with_data(r.data[:, :1000], labels=None) for r in recs]
        return "3dc", recs
    cfg = SyntheticConfig(n_subjects=2, devices=("3dc",), repetitions=1 if quick else 4,
                          trial_s=1.5 if quick else 5.0)
    return "synthetic-3dc", generate_unit(cfg, "s00")


@pytest.fixture(scope="module")
def inputs(quick):
    return load_inputs(quick)


def test_rectify_vs_straightforward(benchmark, inputs, quick, memory_read_rate):
    name, recs = inputs
    n_in = sum(r.data.size for r in recs)

    # correctness first: same band, notches and rate. Virtual electrodes 0 and 8 sit exactly on
    # 3DC electrodes 0 and 5, and the naive pipeline repeats channels, so compare those. Our filters
    # run at 500 Hz after decimation (bilinear designs differ slightly from 1 kHz ones) and pad
    # differently: compare the middle half, relative RMS difference.
    for r in recs[:3]:
        ours = rectify(r, SPACE).data
        ref = straightforward(r.data, r.rate)
        assert ours.shape == ref.shape
        mid = slice(ours.shape[1] // 4, 3 * ours.shape[1] // 4)
        for v, c in ((0, 0), (8, 5)):
            err = np.sqrt(np.mean((ours[v, mid] - ref[c, mid]) ** 2) / np.mean(ref[c, mid] ** 2))
            assert err < 0.1, f"{r.source}: virtual {v} differs from channel {c} by {err:.1%} RMS"

    def run_ours():
        for r in recs:
            rectify(r, SPACE)

    def run_naive():
        for r in recs:
            straightforward(r.data, r.rate)

    repeat = 2 if quick else 5
    t_naive = harness.best_time(run_naive, repeat=repeat, min_time=0.05 if quick else 0.5)
    t_ours = harness.best_time(run_ours, repeat=repeat, min_time=0.05 if quick else 0.5)
    benchmark.pedantic(run_ours, rounds=repeat, iterations=1)
    t_default = harness.best_time(lambda: [rectify(r) for r in recs], repeat=repeat,
                                  min_time=0.05 if quick else 0.5)
    speedup = t_naive / t_ours
    for impl, t in (("straightforward scipy", t_naive), ("aemg rectify (same work)", t_ours),
                    ("aemg rectify (default space)", t_default)):
        harness.record("rectify", input=name, recordings=len(recs), input_samples=n_in, impl=impl,
                       seconds=t, samples_per_s=n_in / t, fraction_of_memory_read=n_in / t / memory_read_rate,
                       speedup_vs_straightforward=t_naive / t)
    assert speedup >= MIN_SPEEDUP, (f"rectify is {speedup:.2f}x the straightforward SciPy pipeline "
                                    f"(floor {MIN_SPEEDUP}x)")


# -- the float32 path's kernels against the float64 ones, same run -----------------------------------
#
# The compiled zero-phase cascade (band-pass 20-225 Hz + notches 60/120/180 Hz at 500 Hz) and the
# polyphase resampler (1000 -> 500 Hz, 200 -> 500 Hz) in float32 (8 lanes) and float64 (4 lanes,
# bit-identical to SciPy's float64), and SciPy's own float32 computation that the float32 kernels
# equal bit for bit; interleaved rounds, best CPU time per round set. Guard: the float32 kernels
# together at least MIN_FLOAT32_RATIO x the float64 ones on 8 channels (a full register).

#: measured 1.6x (cascade) and 1.9-2.0x (resamplers) on 8 channels, 1.2-1.5x on 10, on the loaded
#: 2-core box (docs/notes/rectify.md, Session 6); floored for noise
MIN_FLOAT32_RATIO = 1.2


def test_float32_kernels_vs_float64(quick):
    import time

    from aemg import backends
    from aemg.data.rectify import _band_sos, _notch_sos, _sos_design

    for name in ("sosfiltfilt32", "resample_poly32"):
        if "cython" not in backends.available(name):
            pytest.skip("compiled kernels not built (AEMG_NO_EXT=1?)")
    rng = np.random.default_rng(0)
    sos = np.vstack([_band_sos(500.0, 20.0, 225.0, 4), _notch_sos(500.0, (60.0, 120.0, 180.0), 30.0)])
    zi, ntaps = _sos_design(sos)
    T = 5_000 if quick else 50_000
    rows = {}
    for C in (8, 10):
        x = np.round(rng.normal(0, 300, (C, T))).astype(np.int16)
        xf = x.astype(np.float32)
        f64, f32 = backends.get("sosfiltfilt", "cython"), backends.get("sosfiltfilt32", "cython")
        r64, r32 = backends.get("resample_poly", "cython"), backends.get("resample_poly32", "cython")
        s32 = backends.get("sosfiltfilt32", "scipy")
        fns = {("cascade", "float64"): lambda: f64(sos, xf, 3 * ntaps, zi),
               ("cascade", "float32"): lambda: f32(sos, xf, 3 * ntaps),
               ("cascade", "scipy float32"): lambda: s32(sos, xf, 3 * ntaps),
               ("resample 1000->500", "float64"): lambda: r64(x, 1, 2),
               ("resample 1000->500", "float32"): lambda: r32(x, 1, 2),
               ("resample 200->500", "float64"): lambda: r64(xf, 5, 2),
               ("resample 200->500", "float32"): lambda: r32(xf, 5, 2)}
        best = {k: float("inf") for k in fns}
        for _ in range(5 if quick else 9):
            for k, fn in fns.items():
                c0 = time.process_time()
                fn()
                best[k] = min(best[k], time.process_time() - c0)
        for (kernel, impl), t in best.items():
            harness.record("rectify_kernels", kernel=kernel, impl=impl, channels=C, samples=T, seconds=t,
                           M_per_cpu_s=x.size / t / 1e6, vs_float64=best[(kernel, "float64")] / t)
        rows[C] = best
    b = rows[8]
    ratio = (sum(t for (k, i), t in b.items() if i == "float64")
             / sum(t for (k, i), t in b.items() if i == "float32"))
    print(f"float32 kernels vs float64, 8 channels: {ratio:.2f}x")
    assert ratio >= MIN_FLOAT32_RATIO, \
        f"float32 kernels are {ratio:.2f}x the float64 ones (floor {MIN_FLOAT32_RATIO}x)"


# -- files to archive: `aemg rectify` (one worker) against the plain SciPy pipeline, same run ---------
#
# The plain pipeline is what a new user writes for one file: np.loadtxt / np.load / np.frombuffer,
# sosfiltfilt band-pass 20-450 Hz (upper edge <= 0.45 x rate), filtfilt notches at 60 Hz and its
# harmonics, resample_poly to 500 Hz. Ours is the whole command path (rectify_dataset, one worker:
# amplitude-scale pass, line detection, topology, archive writing). Both run in interleaved rounds
# (plain, ours, parser, plain, ours, ...); the figures are medians, in raw channel-samples per
# second of wall time and per CPU-second of this process (= per core: one worker, one thread).
# Guards: MIN_RATIO x the plain pipeline in the same run, per input.

#: floors per input (ratios to the plain pipeline in the same run). Measured on the loaded 2-core
#: box (docs/notes/rectify.md, Session 3): 3DC .txt.gz 4.4-4.5x, 3DC int16 .npy 2.3-2.7x,
#: Cote-Allard int16 .dat.gz 1.3-1.6x (per-recording overheads of its 1,000-sample recordings);
#: Session 5 (H1): 5.5x, 3.3x, 2.3x
MIN_RATIO = {"3dc .txt.gz": 2.0, "3dc .npy (int16)": 1.5, "coteallard .dat.gz (int16)": 1.0}
#: prepare against rectify + tokenize: about 1x measured (0.8-1.1x on the loaded box), guarded
#: against a regression such as reading everything twice
MIN_PREPARE_RATIO = 0.7
#: prepare with 2 pool workers against 1 (full mode: hundreds of files). Measured on the idle 2-core
#: box in session 8: 0.78x before its pool fix (one pool task per file, results through pipes),
#: 1.25-1.43x after it, 1.09x once the one-worker run also got the background shard writer
#: (docs/notes/rectify.md, Session 8). A floor against the pipe-bound pool, not the 1.8x target:
#: on 2 vCPUs the parent shares the cores with both workers
MIN_TWO_WORKERS_RATIO = 0.85
#: rectify on a LocalCluster against the local pool, 2 workers each (full, quick). Measured on the
#: loaded 2-core box (docs/notes/rectify.md, Session 5 H2): on all 968 3DC .npy files 0.64-0.89x in
#: wall time (runs ranged 8-17 s at load 9-10) and 1.02-1.06x the pool's CPU time; quick mode (24
#: files, 0.36 s of work) 0.52x, the per-run connection and checks (~0.3 s) dominating
MIN_CLUSTER_RATIO = {False: 0.5, True: 0.35}
_FOLDERS = itertools.count()  # a new output folder per call, over every case


def plain_scipy(table: np.ndarray, rate: float, out_rate: int = 500) -> np.ndarray:
    """The plain pipeline on one loaded (T, C) table; returns (C, T') float32."""
    import math
    x = np.asarray(table, dtype=np.float64).T
    hi = min(450.0, 0.45 * rate)
    sos = signal.butter(4, [20.0, hi], "bandpass", fs=rate, output="sos")
    y = signal.sosfiltfilt(sos, x, axis=-1)
    f = 60.0
    while f < hi:
        b, a = signal.iirnotch(f, 30.0, fs=rate)
        y = signal.filtfilt(b, a, y, axis=-1)
        f += 60.0
    g = math.gcd(out_rate, int(rate))
    return signal.resample_poly(y, out_rate // g, int(rate) // g, axis=-1).astype(np.float32)


def _link_subset(src_root, rel_paths, dst_root):
    for rel in rel_paths:
        p = dst_root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(src_root / rel)
    return dst_root


def file_inputs(tmp, quick: bool):
    """``{name: (reader, root, options, files, load, rate)}`` for the shared-data cases present:
    3DC ``.txt.gz`` (text), the same files as int16 ``.npy`` (binary) and Cote-Allard int16
    ``.dat.gz`` (binary)."""
    import gzip
    data = default_data_root()
    cases = {}
    n3, nca = (24, 64) if quick else (88, 352)
    root3 = data / "3dc_armband"
    if root3.is_dir():
        from aemg.data.readers import get_reader
        srcs = get_reader("3dc", root3).sources()
        pick = srcs[:: max(1, len(srcs) // n3)][:n3]
        txt = _link_subset(root3, pick, tmp / "3dc_txt")
        cases["3dc .txt.gz"] = ("3dc", txt, {}, [txt / s for s in pick],
                                lambda p: np.loadtxt(gzip.open(p, "rt"), delimiter=","), 1000.0)
        npy = tmp / "3dc_npy"
        files = []
        for s in pick:
            part, split, _, name = s.split("/")
            out = npy / f"{part}_{split}" / name.replace(".txt.gz", ".npy")
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, np.loadtxt(gzip.open(root3 / s, "rt"), delimiter=",").astype(np.int16))
            files.append(out)
        cases["3dc .npy (int16)"] = ("generic", npy,
                                     {"pattern": "{subject}/3dc_EMG_gesture_{trial}_{label}.npy",
                                      "rate": 1000.0, "device": "3dc"},
                                     files, np.load, 1000.0)
    rootca = data / "coteallard_myoarmband"
    if rootca.is_dir():
        from aemg.data.readers import get_reader
        srcs = get_reader("coteallard", rootca).sources()
        pick = srcs[:: max(1, len(srcs) // nca)][:nca]
        ca = _link_subset(rootca, pick, tmp / "coteallard")
        cases["coteallard .dat.gz (int16)"] = (
            "coteallard", ca, {}, [ca / s for s in pick],
            lambda p: np.frombuffer(gzip.decompress(p.read_bytes()), "<i2").reshape(-1, 8), 200.0)
    return cases


def _median_rounds(fns: dict, rounds: int) -> dict:
    """``{name: (median wall s, median CPU s)}`` of each function, in interleaved rounds."""
    import statistics
    import time
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[k].append((time.perf_counter() - w0, time.process_time() - c0))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for k, v in times.items()}


def test_rectify_files_vs_plain_scipy(tmp_path, quick):
    import gzip

    from aemg.data.pipeline import rectify_dataset
    from aemg.data.readers import base

    cases = file_inputs(tmp_path, quick)
    if not cases:
        pytest.skip("shared data not found")
    for name, (reader, root, options, files, load, rate) in cases.items():
        n_in = sum(load(p).size for p in files)
        outs = _FOLDERS

        def ours():  # a new folder each call: deleting the last one is not part of the work
            rectify_dataset(reader, tmp_path / f"archive{next(outs)}", root=root, reader_options=options,
                            workers=1, progress=False)

        def plain():
            for p in files:
                plain_scipy(load(p), rate)

        fns = {"plain scipy": plain, "aemg rectify": ours}
        if name.endswith(".txt.gz") and base._FAST_PARSER is not None:
            def parser():  # the text path's own ceiling: gunzip + the compiled number parser
                for p in files:
                    base._parse_fast_table(gzip.open(p, "rb").read(), ",", 0, 10)
            fns["gunzip + parser"] = parser
        ours()  # warm-up: imports, kernels, page cache
        plain()
        med = _median_rounds(fns, rounds=3 if quick else 5)
        ratio = med["plain scipy"][0] / med["aemg rectify"][0]
        for impl, (wall, cpu) in med.items():
            harness.record("rectify_files", input=name, files=len(files), channel_samples=n_in, impl=impl,
                           seconds=wall, M_per_s=n_in / wall / 1e6, M_per_cpu_s=n_in / cpu / 1e6,
                           vs_plain=med["plain scipy"][0] / wall)
        floor = MIN_RATIO[name]
        assert ratio >= floor, (f"{name}: aemg rectify is {ratio:.2f}x the plain SciPy pipeline "
                                f"(floor {floor}x)")


# -- text tables: the compiled number parser against np.loadtxt, same run --------------------------
#
# What a text reader spends per file after decompression: ``parse_table`` (compiled parser, the
# values of np.loadtxt bit for bit) against np.loadtxt itself, on real shared files of three
# number forms: integer counts (3DC), short decimals (suguru's pre-scaled floats, ``0.78384``) and
# NumPy's ``%.18e`` export (multiday_4ch: 19 significant digits, the 128-bit path). Texts are
# decoded once beforehand; interleaved rounds, medians, values per CPU-second.

#: floors per number form, same run. Measured: integers 12x, short decimals 6x, ``%.18e`` 6.5x on
#: the idle AMD EPYC 2-core box (session 9); 2.8-2.9x, 2.3-2.4x, 2.7x on the Intel Xeon 2-core box
#: of session 10, whose np.loadtxt is 4x faster (docs/notes/rectify.md, Session 10). The floors
#: catch the fast path being lost (a fall-back to np.loadtxt is 1x) on either machine
MIN_PARSER_RATIO = {"integer": 1.8, "decimal": 1.5, "%.18e": 1.5}


def parser_inputs(quick: bool) -> dict:
    """``{form: (delimiter, texts)}`` from the shared files present (a synthetic table otherwise)."""
    from aemg.data.readers import base
    data = default_data_root()
    n = 2 if quick else 8
    globs = {"integer": ("3dc_armband", "**/*.txt.gz", ","),
             "decimal": ("suguru_longterm_armband", "data/sub1/day1/*.csv.gz", ","),
             "%.18e": ("multiday_4ch", "*.csv.gz", None)}
    out = {}
    for form, (folder, pattern, delimiter) in globs.items():
        files = sorted((data / folder).glob(pattern))[: n * (20 if form == "decimal" else 1)]
        if files:
            out[form] = (delimiter, [base.read_text(f) for f in files])
    if not out:
        x = np.random.default_rng(0).standard_normal((20000 if quick else 200000, 8))
        out["decimal"] = (",", ["\n".join(",".join("%.5g" % v for v in row) for row in x) + "\n"])
    return out


def test_text_parser_vs_loadtxt(quick):
    import io

    from aemg.data.readers import base
    if base._FAST_PARSER is None:
        pytest.skip("aemg._ext.parse_cy not built")
    for form, (delimiter, texts) in parser_inputs(quick).items():
        n_values = sum(base.parse_table(t, "f", delimiter=delimiter).size for t in texts)

        def ours():
            for t in texts:
                base.parse_table(t, "f", delimiter=delimiter)

        def reference():
            for t in texts:
                np.loadtxt(io.StringIO(t), delimiter=delimiter, ndmin=2, comments=None)

        med = _median_rounds({"parse_table": ours, "np.loadtxt": reference}, rounds=3 if quick else 5)
        for impl, (wall, cpu) in med.items():
            harness.record("text_parser", form=form, files=len(texts), values=n_values, impl=impl,
                           seconds=wall, M_values_per_cpu_s=n_values / cpu / 1e6)
        ratio = med["np.loadtxt"][1] / med["parse_table"][1]
        assert ratio >= MIN_PARSER_RATIO[form], (f"{form}: parse_table is {ratio:.2f}x np.loadtxt "
                                                 f"(floor {MIN_PARSER_RATIO[form]}x)")


def test_prepare_vs_rectify_then_tokenize(tmp_path, quick):
    """``aemg prepare`` (one worker, two workers) against ``rectify`` then ``tokenize`` on binary
    input, and (full mode) ``aemg rectify`` with one and two workers; guards: ``MIN_PREPARE_RATIO``
    and (full mode) ``MIN_TWO_WORKERS_RATIO``."""
    from aemg.data.pipeline import rectify_dataset
    from aemg.data.prepare import prepare_dataset
    from aemg.tokenizer.corpus import tokenize_archive

    cases = {k: v for k, v in file_inputs(tmp_path, quick).items() if "int16" in k}
    if not cases:
        pytest.skip("shared data not found")
    for name, (reader, root, options, files, load, rate) in cases.items():
        n_in = sum(load(p).size for p in files)
        outs = _FOLDERS

        def two_commands():  # new folders each call: deleting old ones is not part of the work
            k = next(outs)
            rectify_dataset(reader, tmp_path / f"a{k}", root=root, reader_options=options, workers=1,
                            progress=False)
            tokenize_archive(tmp_path / f"a{k}", tmp_path / f"c{k}", workers=1, progress=False)

        def prepare(workers=1):
            prepare_dataset(reader, tmp_path / f"c{next(outs)}", root=root, reader_options=options,
                            workers=workers, progress=False)

        def rectify(workers):
            rectify_dataset(reader, tmp_path / f"a{next(outs)}", root=root, reader_options=options,
                            workers=workers, progress=False)

        fns = {"rectify + tokenize": two_commands, "aemg prepare": prepare,
               "aemg prepare, 2 workers": lambda: prepare(2)}
        if not quick:  # worker scaling of rectify alone (prepare's is above)
            fns.update({"aemg rectify": lambda: rectify(1), "aemg rectify, 2 workers": lambda: rectify(2)})
        prepare()
        med = _median_rounds(fns, rounds=3 if quick else 5)
        for impl, (wall, cpu) in med.items():
            harness.record("prepare", input=name, files=len(files), channel_samples=n_in, impl=impl,
                           seconds=wall, M_per_s=n_in / wall / 1e6,
                           vs_one_worker=(med["aemg rectify"][0] if impl.startswith("aemg rectify")
                                          else med["aemg prepare"][0]) / wall,
                           vs_two_commands=med["rectify + tokenize"][0] / wall)
        ratio = med["rectify + tokenize"][0] / med["aemg prepare"][0]
        assert ratio >= MIN_PREPARE_RATIO, \
            f"{name}: prepare is {ratio:.2f}x rectify + tokenize (floor {MIN_PREPARE_RATIO}x)"
        if not quick:
            two = med["aemg prepare"][0] / med["aemg prepare, 2 workers"][0]
            assert two >= MIN_TWO_WORKERS_RATIO, (f"{name}: prepare with 2 workers is {two:.2f}x one "
                                                  f"worker (floor {MIN_TWO_WORKERS_RATIO}x)")


def test_rectify_localcluster_vs_pool(tmp_path, quick):
    """``aemg rectify`` and ``aemg tokenize`` with 2 local pool workers against a Dask LocalCluster
    of 2 worker processes (loopback), same files, interleaved rounds; reports ``vs_pool`` (pool
    wall time / cluster wall time); guard: rectify on the cluster at least ``MIN_CLUSTER_RATIO`` of
    the pool's speed (the issue's target, within 15 %, is reported, not asserted, on a shared box)."""
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    from aemg.data.pipeline import rectify_dataset
    from aemg.tokenizer.corpus import tokenize_archive

    cases = {k: v for k, v in file_inputs(tmp_path, quick).items() if k.startswith("3dc .npy")}
    if not cases:
        pytest.skip("shared data not found")
    (name, (reader, root, options, files, load, rate)), = cases.items()
    n_in = sum(load(p).size for p in files)
    archive = tmp_path / "archive"
    rectify_dataset(reader, archive, root=root, reader_options=options, workers=2, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=50) as cluster:
        def rect(scheduler=None):
            rectify_dataset(reader, tmp_path / f"a{next(_FOLDERS)}", root=root, reader_options=options,
                            workers=2, progress=False, scheduler=scheduler)

        def tok(scheduler=None):
            tokenize_archive(archive, tmp_path / f"c{next(_FOLDERS)}", workers=2, progress=False,
                             min_channel_samples_per_worker=0, scheduler=scheduler)

        fns = {("rectify", "process pool, 2 workers"): rect,
               ("rectify", "Dask LocalCluster, 2 workers"): lambda: rect(cluster.scheduler_address),
               ("tokenize", "process pool, 2 workers"): tok,
               ("tokenize", "Dask LocalCluster, 2 workers"): lambda: tok(cluster.scheduler_address)}
        for fn in fns.values():  # warm-up: imports on the workers, page cache
            fn()
        med = _median_rounds(fns, rounds=3 if quick else 5)
    ratios = {}
    for (command, impl), (wall, _) in med.items():
        pool = med[(command, "process pool, 2 workers")][0]
        ratios[command] = pool / med[(command, "Dask LocalCluster, 2 workers")][0]
        harness.record("rectify_cluster", command=command, input=name, files=len(files), channel_samples=n_in,
                       impl=impl, seconds=wall, M_per_s=n_in / wall / 1e6, vs_pool=pool / wall)
    print(f"LocalCluster vs process pool (2 workers, {name}): rectify {ratios['rectify']:.2f}x, "
          f"tokenize {ratios['tokenize']:.2f}x")
    floor = MIN_CLUSTER_RATIO[bool(quick)]
    assert ratios["rectify"] >= floor, \
        f"LocalCluster rectify is {ratios['rectify']:.2f}x the process pool (floor {floor}x)"


# -- `aemg rectify` against LibEMG's offline path, same files, same run --------------------------------
#
# LibEMG (2.0.3) reads a folder with ``OfflineDataHandler.get_data`` (regex filters over the file names;
# only ``*.csv`` / ``*.txt`` through ``np.genfromtxt`` and WFDB ``*.hea``: not .gz, not .npy, not
# Cote-Allard's int16 .dat) and filters with ``libemg.filtering.Filter`` (``filtfilt`` of each
# installed filter over the whole (T, C) array). So the files are the 3DC recordings of the cases
# above (the same selection), gunzipped to the layout LibEMG's own ``_3DCDataset`` reads
# (``Participant<n>/<split>/EMG/3dc_EMG_gesture_<rep>_<class>.txt``), with that class's four regex
# filters. Contenders, in interleaved rounds (medians, wall and CPU time):
#   - "LibEMG, common filters (1 kHz)": get_data, then ``Filter.install_common_filters()`` (band-pass
#     20-450 Hz order 4, notch 60 Hz bandwidth 3, at the native 1 kHz) and ``Filter.filter(odh)``;
#   - "LibEMG, same processing (500 Hz)": get_data(downsampling_factor=2) (scipy ``decimate``: order-8
#     Chebyshev, zero phase), then band-pass 20-225 Hz order 4 and notches at 60/120/180 Hz, Q 30: the
#     rate, band and notches aemg applies to 3DC (its band edge is 0.9 x Nyquist; 3DC's line is 60 Hz);
#   - "aemg rectify" on the same .txt files: the whole command, one worker (amplitude-scale pass, line
#     detection, band-pass + notches + 1000 -> 500 Hz, 16-electrode topology, archive written and
#     fsynced): more work than LibEMG's, which keeps float64 arrays in memory;
#   - "aemg rectify (.txt.gz originals)": the shared files as they are (LibEMG cannot read them).
# Ratio = LibEMG's time / aemg's on the .txt files; guard (full mode only): the faster LibEMG row.

#: issue 10's target is 5x (reported); measured 7.2-9.0x wall, 7.8-10.7x per CPU-second on the loaded
#: 2-core box (docs/notes/rectify.md, Session 5): floored lower for wall-time noise on a shared machine
MIN_LIBEMG_RATIO = 4.0
_3DC_REGEX = (("/", "/EMG", ("train", "test"), "sets"),
              ("_", ".txt", tuple(str(i) for i in range(11)), "classes"),
              ("EMG_gesture_", "_", ("0", "1", "2", "3"), "reps"),
              ("Participant", "/", tuple(str(i) for i in range(1, 23)), "subjects"))


def _libemg_offline():
    """LibEMG's offline modules ``(data_handler, filtering)``; skips the test when absent.

    ``import libemg`` runs a package ``__init__`` that imports every module (GUI, streamers, animator:
    dearpygui, pygame, opencv, bleak, ...); the offline path needs none of them, so when the package has
    not been imported already only its offline modules are loaded (the same code, under the same names).
    """
    import importlib
    import importlib.util
    import sys
    spec = importlib.util.find_spec("libemg")
    if spec is None:
        pytest.skip("libemg not installed (pip install -e '.[bench]' && pip install --no-deps libemg==2.0.3)")
    if "libemg" not in sys.modules:
        sys.modules["libemg"] = importlib.util.module_from_spec(spec)   # the package, __init__ not run
    try:
        return importlib.import_module("libemg.data_handler"), importlib.import_module("libemg.filtering")
    except ImportError as e:
        pytest.skip(f"libemg's offline path cannot be imported: {e} (pip install -e '.[bench]')")


def test_rectify_vs_libemg(tmp_path, quick):
    import contextlib
    import gzip
    import io

    from aemg.data.pipeline import rectify_dataset
    from aemg.data.readers import get_reader

    dh, filtering = _libemg_offline()
    root3 = default_data_root() / "3dc_armband"
    if not root3.is_dir():
        pytest.skip("shared data not found (3dc_armband)")
    n3 = 8 if quick else 88
    srcs = get_reader("3dc", root3).sources()
    pick = srcs[:: max(1, len(srcs) // n3)][:n3]            # the selection of file_inputs (quick: fewer)
    gz = _link_subset(root3, pick, tmp_path / "3dc_txt_gz")
    txt = tmp_path / "3dc_txt"
    for s in pick:
        out = txt / s.removesuffix(".gz")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(gzip.decompress((root3 / s).read_bytes()))
    n_in = sum(np.loadtxt(txt / s.removesuffix(".gz"), delimiter=",").size for s in pick)
    regex = [dh.RegexFilter(left_bound=lb, right_bound=rb, values=list(v), description=d)
             for lb, rb, v, d in _3DC_REGEX]

    def libemg_read(**kw):
        odh = dh.OfflineDataHandler()
        with contextlib.redirect_stdout(io.StringIO()):      # it prints "N data files fetched ..."
            odh.get_data(folder_location=str(txt) + "/", regex_filters=regex, delimiter=",", **kw)
        assert len(odh.data) == len(pick)
        return odh

    def libemg_common():
        odh = libemg_read()
        fi = filtering.Filter(sampling_frequency=1000)
        fi.install_common_filters()
        fi.filter(odh)
        return odh

    def libemg_same():
        odh = libemg_read(downsampling_factor=2)
        fi = filtering.Filter(sampling_frequency=500)
        fi.install_filters({"name": "bandpass", "cutoff": [20, 225], "order": 4})
        for f in (60, 120, 180):
            fi.install_filters({"name": "notch", "cutoff": f, "bandwidth": f / 30.0})
        fi.filter(odh)
        return odh

    # the same processing, checked: LibEMG's decimate (Chebyshev, passband to 200 Hz) and our polyphase
    # resampler differ only near the band edge, so compare below 180 Hz. Virtual electrodes 0 and 8 sit
    # on 3DC electrodes 0 and 5; middle half, relative RMS difference (measured < 1 %).
    odh = libemg_same()
    reader = get_reader("3dc", txt)
    space = StandardSpace(notch=(60.0,), notch_mode="all", amplitude="none")
    lp = signal.butter(8, 180.0, fs=500.0, output="sos")
    for k in range(min(3, len(pick))):
        meta = {d: int(getattr(odh, d)[k][0, 0]) for *_, d in _3DC_REGEX}
        src = (f"Participant{_3DC_REGEX[3][2][meta['subjects']]}/{_3DC_REGEX[0][2][meta['sets']]}/EMG/"
               f"3dc_EMG_gesture_{meta['reps']}_{meta['classes']}.txt")
        ours = signal.sosfiltfilt(lp, rectify(reader.read(src)[0], space).data, axis=1)
        theirs = signal.sosfiltfilt(lp, odh.data[k].T, axis=1)
        assert ours.shape[1] == theirs.shape[1], src
        mid = slice(ours.shape[1] // 4, 3 * ours.shape[1] // 4)
        for v, c in ((0, 0), (8, 5)):
            err = np.sqrt(np.mean((ours[v, mid] - theirs[c, mid]) ** 2) / np.mean(theirs[c, mid] ** 2))
            assert err < 0.03, f"{src}: virtual {v} differs from LibEMG's channel {c} by {err:.1%} RMS"

    outs = _FOLDERS

    def ours(root=txt):  # a new folder each call: deleting the last one is not part of the work
        rectify_dataset("3dc", tmp_path / f"archive{next(outs)}", root=root, workers=1, progress=False)

    fns = {"LibEMG, common filters (1 kHz)": libemg_common, "LibEMG, same processing (500 Hz)": libemg_same,
           "aemg rectify": ours, "aemg rectify (.txt.gz originals)": lambda: ours(gz)}
    for fn in fns.values():  # warm-up: imports, kernels, page cache
        fn()
    med = _median_rounds(fns, rounds=3 if quick else 5)
    base, base_cpu = med["aemg rectify"]
    for impl, (wall, cpu) in med.items():
        harness.record("rectify_libemg", input="3dc .txt (gunzipped shared files)", files=len(pick),
                       channel_samples=n_in, impl=impl, seconds=wall, M_per_s=n_in / wall / 1e6,
                       M_per_cpu_s=n_in / cpu / 1e6, aemg_speedup=wall / base,
                       aemg_speedup_cpu=cpu / base_cpu)
    ratio = min(med[k][0] for k in fns if k.startswith("LibEMG")) / base
    if not quick:
        assert ratio >= MIN_LIBEMG_RATIO, (f"aemg rectify is {ratio:.2f}x LibEMG's offline path "
                                           f"(floor {MIN_LIBEMG_RATIO}x)")


# -- a whole `aemg rectify` command on a small dataset: the design cache (aemg.data.designs) ----------
#
# A fresh process with the filter designs on disk never imports scipy.signal (about 1-1.3 s of
# CPU here, more than rectifying a small dataset); with the cache turned off it computes them, as
# every process did before. Same files, same output bytes; interleaved rounds, medians of wall s.

#: floor, same run. Measured on the development box (docs/notes/rectify.md, Session 11)
MIN_DESIGN_CACHE_RATIO = 1.3


def test_rectify_command_with_warm_design_cache(tmp_path):
    import os
    import subprocess
    import sys

    root = default_data_root() / "libemg_sdist_one_subject_myo"
    if not root.is_dir():
        pytest.skip("shared data not found")
    cache = tmp_path / "cache"
    outs = _FOLDERS

    def command(cache_dir):
        def run():
            subprocess.run([sys.executable, "-m", "aemg", "rectify", "libemg_myo", str(root),
                            str(tmp_path / f"archive{next(outs)}"), "--workers", "1", "--no-progress"],
                           env={**os.environ, "AEMG_CACHE_DIR": cache_dir, "OMP_NUM_THREADS": "1"},
                           check=True, capture_output=True)
        return run

    command(str(cache))()   # fills the cache
    med = _median_rounds({"cache off": command(""), "warm cache": command(str(cache))}, rounds=3)
    ratio = med["cache off"][0] / med["warm cache"][0]
    for impl, (wall, _) in med.items():
        harness.record("rectify_command", input="libemg_myo (20 files)", impl=impl, seconds=wall,
                       vs_cache_off=med["cache off"][0] / wall)
    assert ratio >= MIN_DESIGN_CACHE_RATIO, (f"aemg rectify with a warm design cache is {ratio:.2f}x "
                                             f"the cache turned off (floor {MIN_DESIGN_CACHE_RATIO}x)")
