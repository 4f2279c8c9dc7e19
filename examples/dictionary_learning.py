# %% [markdown]
# # Dictionary learning against the true features
#
# A sparse autoencoder (and the classical learners) on the hidden activations h = W x of a toy model, where the
# true feature directions are known: the columns of W that the model represents. Each learned dictionary is scored
# against them (MMCS: mean over true features of the best cosine with a learned atom; recovered: the share with
# cosine > 0.9).
#
# `MONOSEMANTIC_QUICK=1` runs on small settings.

# %%
import os

import monosemantic as ms

QUICK = os.environ.get("MONOSEMANTIC_QUICK") == "1"

# %% [markdown]
# ## A toy model in superposition, and its activations with the ground truth

# %%
toy = ms.train(n=20, m=5, importance_decay=0.7, sparsity=[0.9], steps=100 if QUICK else 10_000, seeds=3)
path = toy.save("runs/toy_s09", overwrite=True)
data = ms.toy_activations(path, samples=2_000 if QUICK else 50_000)  # X: [samples, 5], F: [represented, 5]
print(f"{data.F.shape[0]} features represented in d = {data.X.shape[1]}; mean L0 {ms.l0(data.codes):.2f}")

# %% [markdown]
# ## A TopK sparse autoencoder, fitted like a scikit-learn estimator

# %%
sae = ms.SparseAutoencoder(arch="topk", n_latents=2 * data.F.shape[0], k=2, samples=10_000 if QUICK else 500_000)
sae.fit(data.X)
print("SAE:", ms.dictionary_scores(data.F, sae.components_), "FVU", round(1 - sae.score(data.X), 4))

# %% [markdown]
# ## Its training curves: objective, FVU, L0 and dead latents (`sae.history_`, about 200 records per fit)

# %%
from monosemantic.report.figures.dictionary import training_curves  # noqa: E402

fig = training_curves({"TopK": sae.history_})
print(f"FVU over training: {sae.history_['fvu'][0]:.3f} -> {sae.history_['fvu'][-1]:.3f}")

# %% [markdown]
# ## Classical learners on the same data: PCA finds at most d directions

# %%
for est in (ms.MiniBatchDictionary(2 * data.F.shape[0], alpha=0.1, samples=4_000 if QUICK else 200_000),
            ms.PCADictionary(data.X.shape[1])):
    est.fit(data.X)
    print(type(est).__name__, ms.dictionary_scores(data.F, est.components_, absolute=True))

# %% [markdown]
# ## Save and reload (SAELens's layout: cfg.json and sae_weights.safetensors)

# %%
sae.save("runs/sae_s09", overwrite=True)
again = ms.load_dictionary("runs/sae_s09")
assert (again.components_ == sae.components_).all()
