"""The SAE's training history (`history_`): what it records, that it changes no training, and that a loaded SAE
keeps its spacing."""

import numpy as np
import pytest

import monosemantic.recovery as R
from monosemantic.data import split, synth_uniform
from monosemantic.dictionary import SparseAutoencoder
from monosemantic.dictionary.estimator import HISTORY_KEYS
from monosemantic.errors import InputError


@pytest.fixture(scope="module")
def data():
    return split(synth_uniform(64, 32, 3, 12_000, seed=0), 2000)


def test_history_records_the_training_and_changes_nothing(data):
    tr, _ = data
    kw = dict(arch="topk", n_latents=64, k=3, samples=120 * 256, seed=2, dead_after=2000)
    sae = SparseAutoencoder(**kw, history_every=10).fit(tr.X)
    h = sae.history_
    assert list(h) == list(HISTORY_KEYS)
    assert h["resampled"] == sorted(h["resampled"]) and h["resampled"][-1] == sae.n_resampled_
    assert h["step"] == list(range(10, 121, 10)) and h["samples"] == [s * 256 for s in h["step"]]
    assert all(len(v) == 12 for v in h.values())
    assert all(v == pytest.approx(3.0) for v in h["l0"])  # TopK: exactly k latents per sample while training
    assert h["fvu"][-1] < 0.5 * h["fvu"][0]  # it learns
    # the last window's mean batch FVU is the FVU of the trained SAE on its training data, up to the drift
    # within the window (10 steps) and batch noise
    assert h["fvu"][-1] == pytest.approx(1 - sae.score(tr.X), rel=0.15)
    assert all(lo >= m for lo, m in zip(h["loss"], h["mse"]))  # the objective adds the AuxK term to the MSE
    assert all(0 <= d <= 64 for d in h["dead"])
    off = SparseAutoencoder(**kw, history_every=0).fit(tr.X)
    assert all(v == [] for v in off.history_.values())
    np.testing.assert_array_equal(off.components_, sae.components_)  # bookkeeping only: the same weights


def test_history_default_cadence_and_relu(data):
    tr, _ = data
    sae = SparseAutoencoder("relu", 64, samples=400 * 256, seed=1).fit(tr.X)
    h = sae.history_
    assert len(h["step"]) == 200 and h["step"][-1] == 400  # about HISTORY_POINTS records, the last at the end
    assert all(lo > m for lo, m in zip(h["loss"], h["mse"]))  # ReLU+L1: the penalty is part of the objective
    C = sae.transform(tr.X[:2000])
    assert h["l0"][-1] == pytest.approx(R.l0(C), rel=0.25)


def test_a_loaded_sae_starts_a_history_of_its_own(data, tmp_path):
    # (that the history survives a checkpoint is checked with the checkpoint, in test_dictionary.py)
    tr, _ = data
    full = SparseAutoencoder("topk", 64, k=3, samples=40 * 256, resample_every=10, seed=4, history_every=5).fit(tr.X)
    back = SparseAutoencoder.load(full.save(tmp_path / "sae"))
    back.partial_fit(tr.X[:2560])
    assert back.history_["step"] == [full.step_ + 5, full.step_ + 10]  # history_every=5 was saved with it


def test_history_every_is_checked():
    with pytest.raises(InputError, match="history_every"):
        SparseAutoencoder(history_every=-1).fit(np.zeros((300, 4), np.float32))
