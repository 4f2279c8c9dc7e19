# %% [markdown]
# # Toy models of superposition
#
# Elhage et al. (2022), [Toy Models of Superposition](https://transformer-circuits.pub/2022/toy_model/index.html):
# a model with m hidden dimensions stores n > m sparse features as non-orthogonal directions once they are sparse
# enough. Here: n = 20 features with importance 0.7^i in m = 5 dimensions, at several sparsities S (a feature is
# zero with probability S, else uniform on [0, 1]).
#
# Open this file as a notebook with jupytext (`jupytext --to notebook toy_models.py`), or run it as a script.
# `MONOSEMANTIC_QUICK=1` trains for 100 steps instead of 10,000.

# %%
import os

import matplotlib.pyplot as plt

import monosemantic as ms

QUICK = os.environ.get("MONOSEMANTIC_QUICK") == "1"
STEPS, SEEDS = (100, 1) if QUICK else (10_000, 3)

# %% [markdown]
# ## Train one ReLU-output model per sparsity (best of 3 seeds each), and the linear model beside it

# %%
sparsities = [0.0, 0.7, 0.9, 0.97, 0.99, 0.997]
cfg = ms.ToyTrainConfig(n=20, m=5, importance_decay=0.7, sparsity=sparsities, steps=STEPS, seeds=SEEDS)
relu = ms.train(cfg)
linear = ms.train(cfg, model="linear", seeds=1)
print("W:", tuple(relu.W.shape), "[sparsities, m, n]; eval loss per sparsity:", [round(v, 4) for v in relu.loss])

# %% [markdown]
# ## Measures: how many features are represented, and how much they interfere

# %%
for name, toy in (("relu-output", relu), ("linear", linear)):
    for row in toy.measures():
        print(f"{name:12s} S={row['sparsity']:<6} represented {row['represented_features']:2d}  "
              f"dims per feature D* {row['dims_per_feature']:.3f}")

# %% [markdown]
# ## Feature norms ||W_i|| per sparsity: the ReLU model packs more features as they get sparser

# %%
fig, axes = plt.subplots(1, len(sparsities), figsize=(2.2 * len(sparsities), 3), sharey=True)
for ax, row in zip(axes, relu.measures()):
    ax.bar(range(20), row["feature_norm"], color="tab:blue")
    ax.set_title(f"S = {row['sparsity']}", fontsize=11)
    ax.set_xlabel("feature i")
axes[0].set_ylabel("||W_i||")
fig.tight_layout()

# %% [markdown]
# ## The loss during training, per sparsity

# %%
log = relu.result["train_loss_log"]
fig, ax = plt.subplots(figsize=(5, 3))
for j, s in enumerate(sparsities):
    ax.plot(log["steps"], [row[j] for row in log["loss"]], label=f"S = {s}")
ax.set(xlabel="step", ylabel="training loss", yscale="log")
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1, 1))
fig.tight_layout()

# %% [markdown]
# ## Save as a run directory: the CLI (`monosemantic toy measure runs/toy`) and `ms.load_run` read it back

# %%
path = relu.save("runs/toy_n20m5", overwrite=True)
assert ms.load_run(path).loss == relu.loss
