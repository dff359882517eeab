"""aemg.tokenizer: the Neuromuscular Contraction Tokenizer (NCT).

Energy envelope -> contraction events (:mod:`.segment`) -> tokens (:mod:`.tokens`) -> sentences
(:mod:`.sentence`: the sentence and the one table of per-token fields) -> token corpus on disk
(:mod:`.corpus`: format, writer, reader). Which noise level each trial gets: :mod:`.calibration`.
Live signals, chunk by chunk: :mod:`.stream` (segmenter and tokenizer).
"""
from .calibration import is_rest_class
from .corpus import ConcatCorpus, Corpus, TokenCorpus, TokenizeReport, open_corpus, tokenize_archive
from .sentence import Sentence
from .stream import StreamingTokenizer
from .tokens import TokenizerConfig, tokenize_recording, tokenize_signal

__all__ = ["ConcatCorpus", "Corpus", "Sentence", "StreamingTokenizer", "TokenCorpus", "TokenizeReport",
           "TokenizerConfig", "is_rest_class", "open_corpus", "tokenize_archive", "tokenize_recording",
           "tokenize_signal"]
