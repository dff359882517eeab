"""aemg.eval: downstream evaluation (protocols, baselines, reports).

>>> from aemg.eval import load_trials, evaluate, write_report          # doctest: +SKIP
>>> trials = load_trials("coteallard", sessions=["training0"])
>>> res = evaluate(trials, ["lda-log", "lda-log-restnorm", "lda-log-subjnorm"], [], seeds=[0, 1],
...                regimes=["none", "rest", "online", "unlabelled", "fewshot"], shares=[0.25])
>>> write_report(res, "report/")
>>> days = load_trials("/tmp/arch/multiday_4ch")                     # one person, 12 days
>>> res = evaluate(days, ["lda-log", "lda-log-subjnorm"], [], regimes=["none", "unlabelled"],
...                grouping=Grouping("session"))                       # test one day, train on the rest
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
    Grouping,
    fewshot_folds,
    intra_folds,
    loso_folds,
    make_folds,
    min_fewshot_share,
    rest_class_id,
    rest_recordings,
    user_view,
)
from .report import regime_table, results_markdown, write_report
from .runner import Results, evaluate, fold_adaptation, run_fold
from .trials import TrialSet, load_trials

__all__ = ["DEFAULT_METHODS", "HudginsLDA", "LDA", "DannCNN", "Method", "Prediction", "WindowCNN",
           "get_method", "list_methods", "register_method", "vote", "sliding_windows", "td_features",
           "windowed_features", "REGIMES", "Adaptation", "Fold", "Grouping", "fewshot_folds", "intra_folds",
           "loso_folds", "make_folds", "min_fewshot_share", "rest_class_id", "rest_recordings", "user_view",
           "regime_table", "results_markdown", "write_report", "Results", "evaluate", "fold_adaptation",
           "run_fold", "TrialSet", "load_trials"]
