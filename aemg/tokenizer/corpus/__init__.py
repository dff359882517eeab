"""The token corpus on disk: :mod:`.format` (layout, plan, shard records, index lines, checks),
:mod:`.writer` (:func:`tokenize_archive`: archive -> corpus) and :mod:`.reader`
(:class:`TokenCorpus`, :class:`ConcatCorpus` and their public base :class:`Corpus`)."""
from .format import CORPUS, FORMAT, INDEX, PLAN, READ_VERSIONS, SHARDS, VERSION
from .reader import ConcatCorpus, Corpus, SubsetCorpus, TokenCorpus, open_corpus, verify_corpus
from .writer import (
    MIN_CHANNEL_SAMPLES_PER_WORKER,
    TokenizeReport,
    tokenize_archive,
    tokenize_group,
    work_chunks,
)

__all__ = ["CORPUS", "FORMAT", "INDEX", "PLAN", "READ_VERSIONS", "SHARDS", "VERSION", "ConcatCorpus",
           "Corpus", "MIN_CHANNEL_SAMPLES_PER_WORKER", "SubsetCorpus", "TokenCorpus", "TokenizeReport",
           "open_corpus", "tokenize_archive", "tokenize_group", "verify_corpus", "work_chunks"]
