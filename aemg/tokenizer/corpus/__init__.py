"""The token corpus on disk (transition: the whole module moved to :mod:`.writer`, split next)."""
from .writer import *  # noqa: F401,F403
from .writer import (_ARCHIVES, _CorpusBase, _calibrates, _rest_level, _tokenize_group,  # noqa: F401
                     BATCH_BYTES, group_noise)
