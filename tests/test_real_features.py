import numpy as np
import pytest
import torch

from monosemantic.real.features import monosemanticity, top_rows, unit_monosemanticity


def test_top_rows_streamed_equals_whole():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(500, 7, generator=g)
    v, r = top_rows([A[:123], A[123:400], A[400:]], k=5)
    v2, r2 = A.T.topk(5, dim=1)
    assert torch.equal(v, v2) and torch.equal(r, r2)


def test_top_rows_pads_when_few_rows():
    v, r = top_rows([torch.ones(3, 2)], k=5)
    assert v.shape == (2, 5) and (r[:, 3:] == -1).all() and torch.isinf(v[:, 3:]).all()


def test_monosemanticity_extremes():
    tokens = np.array([[4, 4, 4, 4], [1, 2, 3, 4], [1, 1, 2, 2], [9, 9, 9, 9]])
    values = torch.tensor([[1.0] * 4, [1.0] * 4, [1.0] * 4, [1.0, 0, 0, 0]])
    m = monosemanticity(values, tokens)
    assert m[0] == pytest.approx(1.0) and m[1] == pytest.approx(0.0)
    assert m[2] == pytest.approx(0.5)  # two tokens, equal counts: H = log 2 = log(4) / 2
    assert np.isnan(m[3])  # one positive row: no value


def test_unit_monosemanticity_neuron_vs_token_detector():
    # unit 0 fires on token 7 only; unit 1 fires on random rows
    g = np.random.default_rng(0)
    tok = g.integers(0, 50, 2000)
    A = np.zeros((2000, 2), np.float32)
    A[:, 0] = (tok == 7) * (1 + g.random(2000))
    A[:, 1] = g.random(2000)
    m = unit_monosemanticity([A[:1000], A[1000:]], tok)
    assert m[0] == pytest.approx(1.0) and m[1] < 0.3
