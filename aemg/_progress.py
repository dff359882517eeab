"""Progress bars of the long commands (``aemg rectify``, ``tokenize``, ``prepare``, ``pretrain``).

One set-up for every bar (:func:`progress_bar`: tqdm on stderr, width following the terminal) and
log lines routed through the bar while it is shown (:class:`logging_redirect`), so that a warning
never tears a bar.
"""
from __future__ import annotations

import sys
from typing import Any


def progress_bar(enabled: bool, *, total: float, desc: str, unit: str, initial: float = 0, **options: Any):
    """A tqdm bar (``tqdm.auto``) on stderr, or None when not ``enabled``.

    ``total`` and ``initial`` count ``unit`` (e.g. ``"file"``, ``"sample"``, ``"step"``); ``options``
    go to tqdm (e.g. ``unit_scale=True``, ``smoothing=0.1``).
    """
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True,
                **options)


class logging_redirect:
    """Route log lines through ``tqdm.write`` while ``bar`` is shown (no torn bars); nothing
    when ``bar`` is None. ``with logging_redirect(bar): ...``"""

    def __init__(self, bar):
        self.bar = bar
        self.ctx = None

    def __enter__(self):
        if self.bar is not None:
            from tqdm.contrib.logging import logging_redirect_tqdm
            self.ctx = logging_redirect_tqdm()
            self.ctx.__enter__()
        return self

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)
