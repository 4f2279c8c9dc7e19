import numpy as np
import pytest
import torch
from scipy import stats

from monosemantic.errors import InputError
from monosemantic.toy.sampler import FeatureSampler, importance, probabilities


def test_probabilities_shapes_and_range():
    assert probabilities(0.9, 4).shape == (1, 4)
    assert torch.allclose(probabilities(0.9, 4), torch.full((1, 4), 0.1, dtype=probabilities(0.9, 4).dtype))
    p = probabilities([0.0, 0.5, 0.99], 3)
    assert p.shape == (3, 3)
    assert torch.allclose(p[:, 0], torch.tensor([1.0, 0.5, 0.01]))
    assert probabilities(torch.full((2, 3), 0.2), 3).shape == (2, 3)
    assert torch.allclose(probabilities(torch.full((2, 3), 0.2), 3).double(), torch.full((2, 3), 0.8).double())


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), 1.5])
def test_probabilities_reject_out_of_range(bad):
    with pytest.raises(InputError, match="sparsity"):
        probabilities([0.5, bad], 3)


def test_importance():
    assert torch.allclose(importance(3, 0.9), torch.tensor([1.0, 0.9, 0.81]))
    with pytest.raises(InputError):
        importance(0, 0.9)


def test_each_instance_sees_the_specified_distribution():
    # 200k draws per feature: the on-rate's standard error is sqrt(p(1-p)/N) < 0.0012; allow 5 SE.
    p = probabilities([0.0, 0.7, 0.97], 4)
    x = FeatureSampler(p, seed=1).sample(200_000)  # [batch, instances, n]
    assert x.shape == (200_000, 3, 4)
    for i, pi in enumerate([1.0, 0.3, 0.03]):
        on = x[:, i] > 0
        se = max(np.sqrt(pi * (1 - pi) / 200_000), 1e-9)
        assert abs(on.float().mean().item() - pi) < 5 * se + 1e-6
        mags = x[:, i][on].numpy()
        assert stats.kstest(mags, "uniform").pvalue > 1e-3  # magnitudes U(0,1) given on
        assert mags.max() <= 1.0


def test_seeded_and_reproducible():
    p = probabilities([0.5, 0.9], 5)
    a = FeatureSampler(p, seed=3).sample(64)
    b = FeatureSampler(p, seed=3).sample(64)
    c = FeatureSampler(p, seed=4).sample(64)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_correlated_and_anticorrelated_sets():
    p = probabilities([0.8], 6)  # p = 0.2
    x = FeatureSampler(p, seed=0, correlated_sets=1, anticorrelated_sets=1).sample(100_000)[:, 0]
    on = x > 0
    assert torch.equal(on[:, 0], on[:, 1])  # correlated: on together
    assert not (on[:, 2] & on[:, 3]).any()  # anti-correlated: never together
    rates = on.float().mean(0)
    assert torch.allclose(rates, torch.full((6,), 0.2), atol=0.01)  # each keeps its marginal p
    assert not torch.equal(x[:, 0], x[:, 1])  # magnitudes independent


def test_signed_features_are_symmetric():
    x = FeatureSampler(probabilities([0.5], 3), seed=0, signed=True).sample(50_000)
    assert x.min() >= -1 and x.max() <= 1
    nz = x[x != 0]
    assert abs((nz > 0).float().mean().item() - 0.5) < 0.01


def test_bad_sets_rejected():
    with pytest.raises(InputError):
        FeatureSampler(probabilities([0.2], 4), anticorrelated_sets=1)  # p = 0.8 > 1/2
    with pytest.raises(InputError):
        FeatureSampler(probabilities([0.9], 3), correlated_sets=2)
