"""Pictures of the tokenizer at work: a recording with its envelope, thresholds, events and tokens."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._io import save_figure
from ..errors import DataError
from .tokens import TokenizerConfig, tokenize_recording


def plot_events(rec, out: str | os.PathLike, config: TokenizerConfig = TokenizerConfig(), *,
                noise: float | None = None, n_tokens: int = 6, backend: str | None = None) -> Path:
    """Draw ``rec`` with its energy envelope, on/off thresholds, detected events and example tokens.

    Panels: (1) the channels stacked, events shaded; (2) the envelope (mean square per
    channel-sample, log scale) with the noise level and the on/off thresholds; (3) up to
    ``n_tokens`` token payloads (C x L, z-scored), evenly picked from the sentence, each titled with
    its event, onset and dominant channel.

    Parameters
    ----------
    rec : aemg.data.Recording
    out : path
        PNG file to write (atomically).
    noise : float, optional
        Noise level for the detector (default: robust statistics of ``rec``).

    Returns
    -------
    Path
        ``out``.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .segment import detect_events, energy_envelope

    if rec.n_samples < 2:
        raise DataError(rec.source or rec.key, f"recording has {rec.n_samples} sample(s); nothing to plot")
    x = rec.data
    t = np.arange(rec.n_samples) / rec.rate
    env = np.asarray(energy_envelope(x, rec.rate, config.segment.window_s, backend=backend), np.float64)
    events = detect_events(x, rec.rate, config.segment, noise=noise, backend=backend)
    sentence = tokenize_recording(rec, config, noise=noise, backend=backend)
    k = min(n_tokens, sentence.n_tokens)
    pick = np.unique(np.linspace(0, sentence.n_tokens - 1, k).round().astype(int)) if k else np.zeros(0, int)

    fig = plt.figure(figsize=(12, 8), constrained_layout=True)
    grid = fig.add_gridspec(3, max(1, len(pick)), height_ratios=[2.2, 1.2, 1.2])
    ax = fig.add_subplot(grid[0, :])
    scale = float(np.percentile(np.abs(x), 99.5)) or 1.0
    for c in range(rec.n_channels):
        ax.plot(t, x[c] / (2.2 * scale) - c, lw=0.4, color="k")
    for s, e in zip(events.starts, events.ends):
        ax.axvspan(s / rec.rate, e / rec.rate, color="tab:orange", alpha=0.25, lw=0)
    ax.set_yticks(-np.arange(rec.n_channels))
    ax.set_yticklabels([str(c) for c in range(rec.n_channels)], fontsize=6)
    ax.set_ylabel("channel")
    ax.set_xlim(t[0], t[-1])
    title = f"{rec.key}  ({rec.n_channels} ch, {rec.rate:g} Hz"
    if rec.label is not None:
        title += f", class {rec.label}" + (f" {rec.classes[rec.label]}"
                                           if rec.label < len(rec.classes) else "")
    ax.set_title(title + f"): {len(events.starts)} events, {sentence.n_tokens} tokens")

    ax2 = fig.add_subplot(grid[1, :], sharex=ax)
    ax2.semilogy(t, np.maximum(env, 1e-12), lw=0.7, label="envelope")
    for level, name, style in ((events.noise_level, "noise", ":"), (events.on_level, "on", "--"),
                               (events.off_level, "off", "-.")):
        if level is not None and np.isfinite(level) and level > 0:
            ax2.axhline(level, ls=style, lw=1, color="tab:red" if name != "noise" else "gray", label=name)
    for s, e in zip(events.starts, events.ends):
        ax2.axvspan(s / rec.rate, e / rec.rate, color="tab:orange", alpha=0.25, lw=0)
    ax2.set_ylabel("mean square")
    ax2.set_xlabel("time (s)")
    ax2.legend(loc="upper right", fontsize=7, ncol=4)

    for j, i in enumerate(pick):
        a = fig.add_subplot(grid[2, j])
        a.imshow(sentence.payload[i], aspect="auto", cmap="RdBu_r", vmin=-3, vmax=3, interpolation="nearest")
        a.set_title(f"ev {sentence.event_index[i]} @ {sentence.onset_in_trial_s[i]:.2f} s\n"
                    f"dom ch {sentence.dominant_channel[i]}", fontsize=7)
        a.axhline(sentence.dominant_channel[i], color="k", lw=0.5)
        a.set_xticks([])
        a.set_yticks([])
    return save_figure(fig, out)
