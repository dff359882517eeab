"""aemg.train: two-stage pre-training, checkpoints, batching, multi-process (torchrun) support."""
from .checkpoint import load_checkpoint, load_model, save_checkpoint
from .data import ArrayCorpus, mix_corpora, synthetic_corpus
from .pretrain import NonFiniteLoss, PretrainResult, pretrain

__all__ = ["ArrayCorpus", "NonFiniteLoss", "PretrainResult", "load_checkpoint", "load_model", "mix_corpora",
           "pretrain", "save_checkpoint", "synthetic_corpus"]
