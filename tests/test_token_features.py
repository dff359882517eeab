"""Classic features of NCT tokens (aemg.eval.features.token_features / pooled_token_features)."""
import numpy as np
import pytest

from aemg.errors import DataError
from aemg.eval.features import TOKEN_FEATURES, pooled_token_features, td_features, token_features
from aemg.tokenizer.sentence import Sentence


def _sentence(payload, energy, rate=500.0):
    n = len(payload)
    z = np.zeros(n, np.float32)
    return Sentence(payload=payload.astype(np.float32), energy=energy.astype(np.float32), onset_in_event_s=z,
                    onset_in_trial_s=z, duration_s=z, event_index=np.zeros(n, np.int32),
                    dominant_channel=np.zeros(n, np.int16), rate=rate)


def test_layout_matches_td_features_on_recording_units():
    rng = np.random.default_rng(0)
    payload, energy = rng.standard_normal((3, 5, 125)), rng.uniform(0.5, 4, (3, 5))
    f = token_features(payload, energy, 500.0)
    assert f.shape == (3, len(TOKEN_FEATURES) * 5)
    np.testing.assert_allclose(f[:, :20], td_features(payload * energy[..., None], log=True, eps=1e-6))


def test_band_shares_locate_a_tone():
    t = np.arange(125) / 500.0
    tone = np.sqrt(2) * np.sin(2 * np.pi * 80 * t)   # 80 Hz: the 60-120 Hz band
    f = token_features(tone[None, None], np.ones((1, 1)), 500.0)[0]
    bands = np.exp(f[4:])
    assert bands.argmax() == 1 and bands[1] > 0.95 and bands.sum() <= 1 + 1e-4


def test_gain_moves_only_the_log_amplitudes():
    rng = np.random.default_rng(1)
    payload, energy = rng.standard_normal((2, 3, 64)), rng.uniform(1, 2, (2, 3))
    a, b = token_features(payload, energy, 500.0), token_features(payload, 10 * energy, 500.0)
    np.testing.assert_allclose(b[:, :6] - a[:, :6], np.log(10), rtol=1e-6)  # log MAV, log WL
    np.testing.assert_allclose(b[:, 6:], a[:, 6:])


def test_edge_cases_empty_one_sample_bad_shape():
    assert token_features(np.zeros((0, 4, 10)), np.zeros((0, 4)), 500.0).shape == (0, 32)
    one = token_features(np.ones((1, 2, 1)), np.ones((1, 2)), 500.0)
    assert one.shape == (1, 16) and np.isfinite(one).all()
    with pytest.raises(DataError, match="energy"):
        token_features(np.zeros((2, 4, 10)), np.zeros((2, 3)), 500.0)
    with pytest.raises(DataError, match="payload"):
        token_features(np.zeros((4, 10)), np.zeros((4,)), 500.0)


def test_pooled_features_mean_and_std_and_empty_sentence():
    rng = np.random.default_rng(2)
    s = _sentence(rng.standard_normal((4, 3, 50)), rng.uniform(1, 2, (4, 3)))
    empty = _sentence(np.zeros((0, 3, 50)), np.zeros((0, 3)))
    out = pooled_token_features([s, empty], 3)
    f = token_features(s.payload, s.energy, s.rate)
    np.testing.assert_allclose(out[0], np.concatenate([f.mean(0), f.std(0)]))
    assert (out[1] == 0).all()


def test_token_row_columns_are_the_per_token_twin_of_the_pooled_sets():
    from aemg.eval.features import TOKEN_FEATURES, token_feature_columns, token_row_columns
    c = 5
    assert list(token_row_columns(c, "all")) == list(range(len(TOKEN_FEATURES) * c))
    assert list(token_row_columns(c, "td")) == list(token_feature_columns(c, "td"))  # the first 4 C
    with pytest.raises(DataError, match="token_set"):
        token_row_columns(c, "bands")
