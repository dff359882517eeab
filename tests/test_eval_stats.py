"""Paired comparisons (aemg.eval.stats, ``aemg compare``)."""
import json

import numpy as np
import pytest

from aemg.cli import main
from aemg.errors import ConfigError, DataError
from aemg.eval.stats import paired_comparison, parse_arm, pick, read_per_subject


def test_a_constant_gain_is_shown_and_its_interval_is_exact():
    rng = np.random.default_rng(0)
    b = {f"S{i}": float(v) for i, v in enumerate(rng.uniform(0.3, 0.8, 20))}
    a = {s: v + 0.05 for s, v in b.items()}
    r = paired_comparison(a, b, margin=3.0)
    assert r["diff"] == pytest.approx(5.0) and r["ci"] == pytest.approx((5.0, 5.0))
    assert r["wins"] == 20 and r["losses"] == 0 and r["shown"] and r["p_wilcoxon"] < 1e-3
    assert not paired_comparison(a, b, margin=5.5)["consistent"]


def test_noise_around_the_margin_is_consistent_but_not_shown():
    rng = np.random.default_rng(1)
    b = {f"S{i}": 0.5 for i in range(12)}
    a = {s: 0.5 + 0.035 + rng.normal(0, 0.05) for s in b}
    r = paired_comparison(a, b, margin=3.0, seed=3)
    low, high = r["ci"]
    assert low < r["diff"] < high and low < 3.0
    assert r["consistent"] == (r["diff"] > 3.0) and not r["shown"]
    assert paired_comparison(a, b, margin=3.0, seed=3)["ci"] == r["ci"]          # seeded


def test_equal_methods_and_unpaired_users():
    a = {"S1": 0.5, "S2": 0.7, "S3": 0.9}
    r = paired_comparison(a, {"S1": 0.5, "S2": 0.7, "S4": 0.1})
    assert r["users"] == 2 and r["only_a"] == ["S3"] and r["only_b"] == ["S4"]
    assert r["diff"] == 0 and r["p_wilcoxon"] == 1.0 and r["ties"] == 2 and not r["consistent"]
    with pytest.raises(ConfigError, match="no test user in common"):
        paired_comparison({"S1": 0.5}, {"S2": 0.5})


def test_arms_are_named_and_a_bad_name_lists_the_candidates():
    assert parse_arm("m") == ("m", None, None)
    assert parse_arm("m@fewshot:0.05") == ("m", "fewshot", 0.05)
    results = {("m", "rest", None): {"S1": 0.5}, ("m", "unlabelled", None): {"S1": 0.6},
               ("m", "fewshot", 0.05): {"S1": 0.7}}
    assert pick(results, "m@rest")[1] == {"S1": 0.5}
    assert pick(results, "m@fewshot:0.05")[0] == ("m", "fewshot", 0.05)
    with pytest.raises(ConfigError, match="ambiguous; name one of: m@fewshot:0.05, m@rest, m@unlabelled"):
        pick(results, "m")
    with pytest.raises(ConfigError, match="matches nothing"):
        pick(results, "x@rest")
    with pytest.raises(ConfigError, match="share after ':' must be a number"):
        parse_arm("m@fewshot:abc")


def _report(folder, rows):
    folder.mkdir()
    lines = ["method,protocol,regime,share,subject,trial_acc,window_acc,seeds"]
    lines += [f"{m},loso,{g},{s},{u},{acc},,1" for m, g, s, u, acc in rows]
    (folder / "per_subject.csv").write_text("\n".join(lines) + "\n")


def test_reports_are_read_merged_and_conflicts_refused(tmp_path):
    _report(tmp_path / "r1", [("a", "unlabelled", "", "S1", 0.9), ("a", "unlabelled", "", "S2", 0.8)])
    _report(tmp_path / "r2", [("b", "unlabelled", "", "S1", 0.7), ("b", "unlabelled", "", "S2", 0.8)])
    res = read_per_subject([tmp_path / "r1", tmp_path / "r2"])
    assert res[("b", "unlabelled", None)] == {"S1": 0.7, "S2": 0.8}
    _report(tmp_path / "r3", [("a", "unlabelled", "", "S1", 0.5)])
    with pytest.raises(DataError, match="also in another report folder"):
        read_per_subject([tmp_path / "r1", tmp_path / "r3"])
    with pytest.raises(DataError, match="not a report folder"):
        read_per_subject([tmp_path])


def test_cli_compare(tmp_path, capsys):
    _report(tmp_path / "r", [("a", "unlabelled", "", f"S{i}", 0.6 + 0.01 * i) for i in range(8)]
            + [("b", "unlabelled", "", f"S{i}", 0.5 + 0.01 * i) for i in range(8)])
    assert main(["compare", "a@unlabelled", "b", "--report", str(tmp_path / "r"), "--margin", "3"]) == 0
    out = capsys.readouterr().out
    assert "A - B = +10.0 points, 95 % bootstrap interval [+10.0, +10.0]" in out and "+ 3: shown" in out
    assert main(["compare", "a", "b", "--report", str(tmp_path / "r"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["wins"] == 8
    assert main(["compare", "c", "b", "--report", str(tmp_path / "r")]) == 2
    assert "'c' matches nothing; name one of: a, b" in capsys.readouterr().err
    _report(tmp_path / "r2", [("a", "unlabelled", "", f"S{i}", 0.5) for i in range(8)])  # other options
    r, r2 = str(tmp_path / "r"), str(tmp_path / "r2")
    assert main(["compare", "a", "b", "--report", r, "--a-report", r2]) == 2
    assert "also in another report folder" in capsys.readouterr().err
    assert main(["compare", "a", "b", "--a-report", r2, "--b-report", r]) == 0
    assert "A - B = -3.5 points" in capsys.readouterr().out          # 50 vs 50..57
    assert main(["compare", "a", "b"]) == 2
    assert "--report FOLDER (or --a-report and --b-report) is required" in capsys.readouterr().err
