"""How much of a sentence embedder's function survives when a site is replaced by a reconstruction.

The sentence embedding is all-MiniLM-L6-v2's: the mean of the last hidden states over the text's tokens,
normalised. With cos the mean cosine between the clean and the modified embeddings of the same texts,

    embedding_recovered = (cos_splice - cos_ablate) / (1 - cos_ablate)

against zero-ablation (the site's activations set to 0) and against mean-ablation (set to `mean`, the site's
mean over the training rows): 1 when the reconstruction changes nothing, 0 when it is no better than ablating.
Only the text's tokens are replaced: the special tokens ([CLS], [SEP]) keep their activations, as the store
keeps none of theirs for a dictionary to learn from.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from monosemantic.errors import InputError
from monosemantic.real import model as model_mod


def sentence_embeddings(last_hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the attention mask, L2-normalised: [batch, seq, d], [batch, seq] -> [batch, d]."""
    m = mask.unsqueeze(-1).to(last_hidden.dtype)
    return F.normalize((last_hidden * m).sum(1) / m.sum(1).clamp_min(1), dim=-1)


@torch.no_grad()
def embedding_recovered(loaded: model_mod.Loaded, site: str, texts: list[str],
                        reconstruct: Callable[[torch.Tensor], torch.Tensor], mean: torch.Tensor,
                        context: int = 128, batch: int = 64) -> dict:
    """Mean cosines to the clean embeddings (splice, zero- and mean-ablation) and the two recovered scores.

    reconstruct: [rows, d] -> [rows, d] (the dictionary's reconstruction); mean: [d]."""
    if not texts:
        raise InputError("embedding_recovered needs at least one text")
    net, tok = loaded.model, loaded.tokenizer
    model_mod.site(net, site)
    sums = {"splice": 0.0, "zero": 0.0, "mean": 0.0}
    for s in range(0, len(texts), batch):
        enc = tok(texts[s:s + batch], return_tensors="pt", padding=True, truncation=True, max_length=context + 2,
                  return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask").bool()
        content = enc["attention_mask"].bool() & ~special  # [batch, seq]
        clean = sentence_embeddings(net(**enc).last_hidden_state, enc["attention_mask"])
        edits = {"splice": lambda a: reconstruct(a[content]).to(a.dtype),
                 "zero": lambda a: torch.zeros_like(a[content]),
                 "mean": lambda a: mean.to(a.dtype).expand(int(content.sum()), -1)}
        for name, new_rows in edits.items():
            def edit(acts, new_rows=new_rows):
                acts = acts.clone()
                acts[content] = new_rows(acts)
                return acts
            with model_mod.replace(net, site, edit):
                out = sentence_embeddings(net(**enc).last_hidden_state, enc["attention_mask"])
            sums[name] += float((out * clean).sum(-1).sum())
    cos = {k: v / len(texts) for k, v in sums.items()}

    def recovered(ablate: float) -> float:
        return (cos["splice"] - ablate) / (1 - ablate) if ablate < 1 else float("nan")

    return {"texts": len(texts), "cos_splice": cos["splice"], "cos_zero_ablation": cos["zero"],
            "cos_mean_ablation": cos["mean"], "embedding_recovered": recovered(cos["zero"]),
            "embedding_recovered_mean": recovered(cos["mean"])}
