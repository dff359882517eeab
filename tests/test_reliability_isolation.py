"""Fault injection: per-file isolation in rectify (any exception in one file is that file's
problem), the amplitude scale from passing files only, implausible time columns refused early."""
import json

import numpy as np
import pytest
from test_archive import SPACE, FakeReader

from aemg.data import Recording
from aemg.data.archive import open_archive
from aemg.data.pipeline import check_time_span, rectify_dataset
from aemg.data.rectify import estimate_amplitude_scale
from aemg.errors import DataError, shorten


class FaultyReader(FakeReader):
    """FakeReader whose ``faults`` map a source to what goes wrong in it: ``"bug"`` (a RuntimeError,
    not aemg's own), ``"silent"`` (all-zero samples), ``"jump"`` (irregular times with one +1e6 s
    jump), ``"nul"`` (a DataError quoting a 50 KB field)."""

    def __init__(self, root=None, n=6, faults=None, **kw):
        super().__init__(root, n=n, **kw)
        self.faults = dict(faults or {})

    def read(self, source):
        recs = super().read(source)
        fault = self.faults.get(source)
        if fault == "bug":
            raise RuntimeError("boom")
        if fault == "nul":
            raise DataError(source, f"row 2: {chr(0) * 50_000!r} is not a number")
        if fault == "silent":
            return [Recording(np.zeros_like(r.data), **{**r.header(), "device": r.device}) for r in recs]
        if fault == "jump":
            r = recs[1]
            times = np.arange(r.n_samples) / r.rate
            times[r.n_samples // 2:] += 1e6
            return [Recording(r.data, times=times, **{**r.header(), "device": r.device})]
        return recs


def _errors(out):
    return {e["source"]: e["problem"]
            for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("workers", [1, 2])
def test_any_exception_in_one_file_is_reported_and_skipped(tmp_path, workers, caplog):
    faults = {"s01": "bug", "s02": "jump", "s04": "nul"}
    report = rectify_dataset(FaultyReader(n=6, faults=faults), tmp_path / "a", SPACE, workers=workers,
                             progress=False)
    assert report.complete and sorted(e["source"] for e in report.errors) == ["s01", "s02", "s04"]
    errors = _errors(tmp_path / "a")
    assert errors["s01"] == "RuntimeError: boom"
    assert errors["s02"].startswith("time column spans 1e+06 s, but its 307 samples at 200 Hz last 1.535 s")
    assert "from sample 153 to 154" in errors["s02"]
    assert len(errors["s04"]) < 400 and "more characters" in errors["s04"]
    assert all(len(r.getMessage()) < 600 for r in caplog.records)
    archive = open_archive(tmp_path / "a")
    assert sorted({r["source"] for r in archive.index}) == ["s00", "s03", "s05"]
    # the scale comes from the passing files only
    good = [rec for s in ("s00", "s03", "s05") for rec in FakeReader(n=6).read(s)]
    assert archive.amplitude_scale == pytest.approx(estimate_amplitude_scale(good, SPACE))


def test_a_bad_file_in_the_scale_sample_does_not_abort(tmp_path):
    # a silent file is archived (it is valid data) but leaves the amplitude scale alone
    report = rectify_dataset(FaultyReader(n=4, faults={"s00": "silent", "s01": "bug"}), tmp_path / "a",
                             SPACE, workers=1, progress=False)
    assert report.complete and [e["source"] for e in report.errors] == ["s01"]
    good = [rec for s in ("s02", "s03") for rec in FakeReader(n=4).read(s)]
    assert report.amplitude_scale == pytest.approx(estimate_amplitude_scale(good, SPACE))
    assert len(open_archive(tmp_path / "a")) == 6


def test_stop_on_error_names_the_file_of_any_exception(tmp_path):
    with pytest.raises(DataError, match="s01: RuntimeError: boom"):
        rectify_dataset(FaultyReader(n=4, faults={"s01": "bug"}), tmp_path / "a", SPACE, workers=1,
                        progress=False, on_error="stop")
    assert len(open_archive(tmp_path / "a", allow_partial=True)) == 2


def test_every_scale_sample_bad_names_the_first_problem(tmp_path):
    with pytest.raises(DataError, match="none of the 2 sources sampled.*s00: RuntimeError: boom"):
        rectify_dataset(FaultyReader(n=2, faults={"s00": "bug", "s01": "bug"}), tmp_path / "a", SPACE,
                        workers=1, progress=False)


def test_time_span_check_before_allocation():
    data = np.zeros((2, 1000), np.float32)
    ok = Recording(data, rate=1000.0, device="ring:2", times=np.arange(1000) / 800.0)  # a slow clock
    check_time_span(ok, "f.csv")
    ns = Recording(data, rate=1000.0, device="ring:2", times=np.arange(1000) * 1e6)  # nanoseconds as s
    with pytest.raises(DataError, match="f.csv: time column spans 9.99e\\+08 s.*check the time column"):
        check_time_span(ns, "f.csv")


def test_shorten():
    assert shorten("abc") == "abc"
    assert shorten("x" * 500, 10) == "xxxxxxxxxx... (490 more characters)"
