# %% [markdown]
# # Unfolding: sparse codes from a dictionary (compressed sensing)
#
# Given a dictionary F: [atoms, d], unfolding finds for every activation x a sparse code c with x ~ c F: the
# activation of a larger model without superposition. With the true features as F, this is compressed sensing;
# with a learned dictionary, it replaces the SAE's encoder. Codes are scored against the true codes (support F1:
# were the right features found active).
#
# `MONOSEMANTIC_QUICK=1` runs on small settings.

# %%
import os

import monosemantic as ms

QUICK = os.environ.get("MONOSEMANTIC_QUICK") == "1"

# %% [markdown]
# ## Synthetic data with a known answer: 512 random unit features in d = 128, about 5 active per sample

# %%
data = ms.synth_uniform(n_features=512, d=128, k=5, samples=1_000 if QUICK else 50_000, seed=0)
print("X:", data.X.shape, "F:", data.F.shape, "codes:", data.codes.shape)

# %% [markdown]
# ## Two solvers with the true dictionary: OMP, and exact L1 (an active-set method; `method="fista"` solves the
# same problem, slower)

# %%
for method, kw in (("omp", dict(tol=1e-6)), ("l1", dict(alpha=0.01, positive=True))):
    codes = ms.unfold(data.X, data.F, method=method, **kw)  # [samples, 512] sparse (scipy CSR)
    s = ms.code_scores(data.codes, codes)
    print(f"{method:6s} support F1 {s['support_f1']:.4f}  code error {s['code_rel_err']:.2e}  L0 {ms.l0(codes):.2f}")

# %% [markdown]
# ## With a learned dictionary: fit a sparse autoencoder, then unfold with its atoms and offset (OMP, 5 atoms)

# %%
sae = ms.SparseAutoencoder(n_latents=512, k=5, samples=50_000 if QUICK else 2_000_000).fit(data.X)
F, offset = ms.atoms_of(sae)
codes = ms.unfold(data.X, F, method="omp", k=5, offset=offset)
print("SAE dictionary:", ms.dictionary_scores(data.F, F))
print("codes:", ms.code_scores(data.codes, codes, data.F, F))
