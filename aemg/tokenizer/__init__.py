"""aemg.tokenizer: the Neuromuscular Contraction Tokenizer (NCT).

Energy envelope -> contraction events (:mod:`.segment`, :mod:`.stream`) -> tokens and sentences
(:mod:`.tokens`) -> token corpus on disk (:mod:`.corpus`).
"""
from .corpus import ConcatCorpus, TokenCorpus, TokenizeReport, open_corpus, tokenize_archive
from .tokens import (Sentence, StreamingTokenizer, TokenizerConfig, is_rest_class, tokenize_recording,
                     tokenize_signal)

__all__ = ["ConcatCorpus", "Sentence", "StreamingTokenizer", "TokenCorpus", "TokenizeReport",
           "TokenizerConfig", "is_rest_class", "open_corpus", "tokenize_archive", "tokenize_recording",
           "tokenize_signal"]
