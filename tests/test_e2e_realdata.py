"""End to end on a real-data subset, through the command line, as a user runs it.

Three Cote-Allard pre-training subjects (Myo, 200 Hz, 7 gestures x 4 cycles each) are copied to a
temporary folder, rectified, tokenized, used to pre-train the tiny model for a few steps and
evaluated leave-one-subject-out with a classic baseline and the AEMG linear probe. The accuracies
of such a short run say nothing about AEMG; the test checks that every stage hands the next what
it needs and that the report is complete and sane.
"""
import csv
import json
import shutil

import pytest

from aemg.cli import main

SUBJECTS = ("Female0", "Male0", "Male1")


@pytest.mark.realdata
@pytest.mark.slow
def test_rectify_tokenize_pretrain_evaluate_on_coteallard_subset(data_root, tmp_path, one_torch_thread):
    src = data_root / "coteallard_myoarmband" / "PreTrainingDataset"
    if not all((src / s).is_dir() for s in SUBJECTS):
        pytest.skip("Cote-Allard pre-training subjects not found")
    raw = tmp_path / "raw"
    for s in SUBJECTS:
        shutil.copytree(src / s, raw / "PreTrainingDataset" / s)
    archive, corpus, run, report = (tmp_path / n for n in ("archive", "corpus", "run", "report"))

    assert main(["rectify", "coteallard", str(raw), str(archive), "--option", "split=pretraining",
                 "--workers", "1", "--no-progress"]) == 0
    assert main(["tokenize", str(archive), str(corpus), "--workers", "1", "--no-progress"]) == 0
    assert main(["pretrain", str(corpus), "--out", str(run), "--preset", "tiny", "--steps", "6",
                 "--batch-size", "8", "--seed", "0", "--device", "cpu", "--no-progress"]) == 0
    assert main(["evaluate", str(archive), "--out", str(report), "--methods", "lda-log,aemg-probe",
                 "--protocols", "loso", "--checkpoint", str(run), "--no-plots"]) == 0

    summary = json.loads((report / "results.json").read_text())
    text = json.dumps(summary)
    assert "lda-log" in text and "aemg-probe" in text
    with open(report / "per_subject.csv") as f:
        rows = list(csv.DictReader(f))
    tested = {r["subject"] for r in rows}
    assert len(tested) == len(SUBJECTS), tested
    by_method = {}
    for r in rows:
        acc = float(r["trial_acc"])
        assert 0.0 <= acc <= 1.0
        by_method.setdefault(r["method"], []).append(acc)
    # 7 classes (chance 14 %): the log-feature LDA on 2 training subjects is far above chance
    assert sum(by_method["lda-log"]) / len(SUBJECTS) > 0.4, by_method
    assert len(by_method["aemg-probe"]) == len(SUBJECTS)
