"""aemg.eval: downstream evaluation (protocols, baselines, reports).

>>> from aemg.eval import load_trials, evaluate, write_report          # doctest: +SKIP
>>> trials = load_trials("coteallard", sessions=["training0"])
>>> res = evaluate(trials, ["lda-log", "lda-log-restnorm", "lda-log-subjnorm"], [], seeds=[0, 1],
...                regimes=["none", "rest", "online", "unlabelled", "fewshot"], shares=[0.25])
>>> write_report(res, "report/")
"""
from . import methods  # noqa: F401  (registers aemg-probe, aemg-finetune, aemg-scratch, ...)
from .baselines import (
    DEFAULT_METHODS,
    LDA,
    DannCNN,
    HudginsLDA,
    Method,
    Prediction,
    WindowCNN,
    get_method,
    list_methods,
    register_method,
    vote,
)
from .features import sliding_windows, td_features, windowed_features
from .protocols import (
    REGIMES,
    Adaptation,
    Fold,
    fewshot_folds,
    intra_folds,
    loso_folds,
    make_folds,
    min_fewshot_share,
    rest_class_id,
    rest_recordings,
)
from .report import regime_table, results_markdown, write_report
from .runner import Results, evaluate, fold_adaptation, run_fold
from .trials import TrialSet, load_trials

__all__ = ["DEFAULT_METHODS", "HudginsLDA", "LDA", "DannCNN", "Method", "Prediction", "WindowCNN",
           "get_method", "list_methods", "register_method", "vote", "sliding_windows", "td_features",
           "windowed_features", "REGIMES", "Adaptation", "Fold", "fewshot_folds", "intra_folds", "loso_folds",
           "make_folds", "min_fewshot_share", "rest_class_id", "rest_recordings", "regime_table",
           "results_markdown", "write_report", "Results", "evaluate", "fold_adaptation", "run_fold",
           "TrialSet", "load_trials"]
