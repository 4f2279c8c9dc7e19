"""The toy-model figures draw what their labels say."""
import numpy as np
import torch

from monosemantic.report.figures.road1 import l1_front
from monosemantic.report.figures.toy import norm_bars, wtw_heatmaps


def test_norm_bars_put_feature_0_on_top_in_every_panel():
    Ws = [torch.randn(2, 5) for _ in range(3)]  # shared y axes: an inversion per panel used to cancel out
    fig = norm_bars(Ws, ["a", "b", "c"])
    for ax in fig.axes:
        bottom, top = ax.get_ylim()
        assert bottom > top  # y grows downwards: feature 0 at the top


def test_wtw_heatmaps_have_a_colorbar_and_the_bias_column():
    W, b = torch.randn(2, 4), torch.randn(4)
    fig = wtw_heatmaps([W, W], ["x", "y"], [b, b])
    assert len(fig.axes) == 3  # two panels and one colorbar
    M = fig.axes[0].images[0].get_array()
    assert M.shape == (4, 6)  # W^T W, a blank column, b
    np.testing.assert_allclose(np.asarray(M[:, 5]), b.numpy(), rtol=1e-6)


def test_road1_threshold_title_follows_the_data():
    sweep = {"lambda": [0.0, 0.01, 0.1, 1.0], "loss": [0.1, 0.12, 0.2, 0.3], "mean_top_share": [0.5, 0.7, 0.9, 1.0],
             "mean_excitatory_share": [0.6, 0.8, 0.9, 1.0], "represented_features": [8, 6, 4, 3]}
    rising = l1_front({**sweep, "importance_threshold": [0.1, 0.2, 0.3, 0.5]})
    assert rising.axes[1].get_title() == "the threshold rises with lambda"
    dip = l1_front({**sweep, "importance_threshold": [0.1, 0.3, 0.2, 0.5]})
    assert "dips at lambda = 0.1" in dip.axes[1].get_title()
