import json
import math

import torch

import monosemantic.measures as measures


def _polygon(k, m=2):
    a = torch.arange(k) * 2 * math.pi / k
    return torch.stack([a.cos(), a.sin()])[None]  # [1, 2, k]


def test_pentagon():
    W = _polygon(5)
    D = measures.feature_dimensionality(W)
    # unit vectors of a regular pentagon are a tight frame: each feature has 2/5 of a dimension
    torch.testing.assert_close(D, torch.full((1, 5), 0.4), rtol=1e-5, atol=1e-6)
    assert abs(D.sum().item() - 2) < 1e-5  # and the D_i sum to m
    torch.testing.assert_close(measures.dims_per_feature(W), torch.tensor([0.4]))
    g = measures.geometry(W[0])
    assert g["polygon"] == 5 and g["label"] == "pentagon" and g["antipodal_pairs"] == []


def test_two_antipodal_pairs():
    W = torch.tensor([[[1.0, 0, -1, 0, 0.1], [0, 1, 0, -1, 0.0]]])  # feature 4 is not represented
    D = measures.feature_dimensionality(W)
    # an antipodal pair shares one dimension: D = 1/2, less the small feature's 0.1^2 on axis 0
    torch.testing.assert_close(D[0, :4], torch.tensor([1 / 2.01, 0.5, 1 / 2.01, 0.5]), rtol=1e-5, atol=1e-6)
    g = measures.geometry(W[0])
    assert g["represented"] == [0, 1, 2, 3]
    assert g["antipodal_pairs"] == [[0, 2], [1, 3]] and g["label"] == "2 antipodal pairs"
    sup = measures.superposition(W)
    assert abs(sup[0, 0].item() - 1.01) < 1e-6  # its antipode, cos^2 = 1, and 0.1^2 from feature 4


def test_orthogonal_and_dropped():
    W = torch.tensor([[[1.0, 0, 0], [0, 1, 0]]])
    assert measures.represented(W).tolist() == [[True, True, False]]
    D = measures.feature_dimensionality(W)
    assert D.tolist() == [[1.0, 1.0, 0.0]]
    assert measures.geometry(W[0])["label"] == "orthogonal"
    assert measures.superposition(W)[0, :2].abs().max() < 1e-7


def test_neuron_polysemanticity():
    W = torch.tensor([[[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]]])
    share = measures.neuron_top_share(W)
    torch.testing.assert_close(share, torch.tensor([[1.0, 0.64]]))
    assert measures.monosemantic_neurons(W).tolist() == [[True, False]]


def test_summarize_is_json_ready():
    rows = measures.summarize(_polygon(5), privileged=True)
    assert rows[0]["represented_features"] == 5 and len(rows[0]["neuron_top_share"]) == 2
    assert json.loads(json.dumps(rows)) == rows


def test_superposition_counts_represented_features_only():
    # n=5, m=2 at S=0: two features on their own axes, three dropped near zero. No superposition at all, but
    # a near-zero column's unit direction is noise: over all five features the mean was 0.6.
    W = torch.tensor([[[1.0, 0, 0.01, 0.02, 0.0], [0, 1.0, 0.01, 0.0, 0.03]]])
    assert measures.superposition(W)[0].mean() > 0.55  # what the old mean counted
    assert measures.mean_superposition(W)[0] < 1e-3
    row = measures.summarize(W, privileged=False)[0]
    assert row["superposition"][2:] == [None, None, None] and row["superposition"][0] < 1e-3
    assert row["mean_superposition"] < 1e-3 and row["represented_features"] == 2
    none = measures.summarize(torch.zeros(1, 2, 3), privileged=False)[0]
    assert none["mean_superposition"] is None and none["superposition"] == [None] * 3


def test_dims_per_feature_counts_live_neurons_only():
    # three neurons, one dead (its row zeroed, as used_weights does): two features on two live neurons
    W = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    assert measures.live_neurons(W).tolist() == [[True, True, False]]
    assert measures.dims_per_feature(W).tolist() == [1.0]  # 2 live / 2, not 3 / 2
    assert measures.summarize(W, privileged=True)[0]["live_neurons"] == 2
