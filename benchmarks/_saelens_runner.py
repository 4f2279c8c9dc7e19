"""Runs SAELens (a peer, installed by the `bench` extra or in its own venv) on a data file and scores held-out data every few hundred steps.

Called by benchmarks/dictionary.py with a Python that has sae-lens installed:
    python _saelens_runner.py DATA.npz --arch topk|standard --epochs 20 --batch 1024 --lr 1e-3 --l1 0.1 --k 5
            --eval-every 200 --n-eval 10000 --seed 0
It prints one JSON line: the trajectory [(step, samples, train seconds, mmcs, recovered, fvu, l0)] and the
final scores. The metrics are computed the way monosemantic.recovery does (tests/reference_peers.py).
Training time excludes the evaluations: the data iterator evaluates between two steps with the clock paused.
The SAELens calls follow SAELens 6's documented training API (SAETrainer with a TrainingSAE).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm reads it at import
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

import sae_lens  # noqa: E402
from sae_lens import (SAETrainer, StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE,  # noqa: E402
                      TopKTrainingSAEConfig)
from sae_lens.config import LoggingConfig, SAETrainerConfig  # noqa: E402


def scores(F, W_dec, X_eval, f, x_hat):
    A = W_dec / np.maximum(np.linalg.norm(W_dec, axis=1, keepdims=True), 1e-12)
    cos = F.astype(np.float64) @ A.T.astype(np.float64)
    best = cos.max(1)
    r, c = linear_sum_assignment(-cos)
    X = X_eval.astype(np.float64)
    return dict(mmcs=float(best.mean()), recovered=float((best > 0.9).mean()), mcc_hungarian=float(cos[r, c].mean()),
                fvu=float(((X - x_hat) ** 2).sum() / ((X - X.mean(0)) ** 2).sum()),
                l0=float((f != 0).sum(1).mean()), dead=int((~(f != 0).any(0)).sum()))


class Batches:
    """Shuffled [batch, d] batches; every eval_every steps it scores the SAE with the training clock paused."""

    def __init__(self, X, batch, seed, eval_every, on_eval):
        self.X, self.batch, self.eval_every, self.on_eval = torch.as_tensor(X), batch, eval_every, on_eval
        self.g = torch.Generator().manual_seed(seed)
        self.perm, self.pos, self.steps, self.paused = torch.randperm(len(self.X), generator=self.g), 0, 0, 0.0

    def __iter__(self):
        return self

    def __next__(self):
        if self.steps and self.steps % self.eval_every == 0:
            t = time.perf_counter()
            self.on_eval(self.steps)
            self.paused += time.perf_counter() - t
        if self.pos + self.batch > len(self.X):
            self.perm, self.pos = torch.randperm(len(self.X), generator=self.g), 0
        idx = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        self.steps += 1
        return self.X[idx]


def scale(steps=20, warm=3):
    """samples/s and max RSS of SAELens's TopK trainer at d_in 768, d_sae 16,384, k 32, batch 1024."""
    import resource

    d, n, k, B = 768, 16384, 32, 1024
    torch.manual_seed(0)
    X = torch.randn(B * 8, d)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=n, k=k, device="cpu"))
    cfg = SAETrainerConfig(total_training_samples=(steps + warm) * B, train_batch_size_samples=B, lr=1e-3, lr_end=1e-3,
                           lr_scheduler_name="constant", device="cpu", logger=LoggingConfig(log_to_wandb=False),
                           n_checkpoints=0, save_final_checkpoint=False)
    stamps = []

    def batches():
        i = 0
        while True:
            stamps.append(time.perf_counter())
            yield X[(i % 8) * B:(i % 8 + 1) * B]
            i += 1

    SAETrainer(cfg=cfg, sae=sae, data_provider=batches()).fit()
    stamps.append(time.perf_counter())
    wall = stamps[steps + warm] - stamps[warm]
    print(json.dumps(dict(samples_per_s=steps * B / wall,
                          peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?")
    ap.add_argument("--scale", action="store_true", help="only time TopK at 16,384 latents on d = 768 (k 32)")
    ap.add_argument("--arch", default="topk")
    ap.add_argument("--epochs", type=float, default=20)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--l1", type=float, default=0.1)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--n-eval", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.scale:
        return scale()
    with np.load(a.data, allow_pickle=False) as z:
        X, F = z["X"], z["F"]
    X_train, X_eval = X[:-a.n_eval], X[-a.n_eval:]
    d, n = X.shape[1], F.shape[0]
    torch.manual_seed(a.seed)
    if a.arch == "standard":
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d, d_sae=n, l1_coefficient=a.l1, device="cpu"))
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=n, k=a.k, device="cpu"))
    n_samples = int(a.epochs * (len(X_train) // a.batch)) * a.batch
    cfg = SAETrainerConfig(total_training_samples=n_samples, train_batch_size_samples=a.batch, lr=a.lr, lr_end=a.lr,
                           lr_scheduler_name="constant", device="cpu", logger=LoggingConfig(log_to_wandb=False),
                           n_checkpoints=0, save_final_checkpoint=False)
    traj = []
    xe = torch.from_numpy(X_eval)
    clock = {}

    def evaluate(step):
        was = sae.training
        sae.eval()
        with torch.no_grad():
            f = sae.encode(xe)
            f = f.to_dense() if f.is_sparse else f
            xh = sae.decode(f)
        sae.train(was)
        s = scores(F, sae.W_dec.detach().numpy(), X_eval, f.numpy(), xh.double().numpy())
        traj.append(dict(step=step, samples=step * a.batch,
                         train_s=time.perf_counter() - clock["t0"] - batches.paused, **s))
        print(f"[sae_lens {a.arch}] step {step} t {traj[-1]['train_s']:.1f}s rec {s['recovered']:.3f} "
              f"mmcs {s['mmcs']:.4f} fvu {s['fvu']:.4f}", file=sys.stderr, flush=True)

    batches = Batches(X_train, a.batch, a.seed, a.eval_every, evaluate)
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=batches)
    clock["t0"] = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - clock["t0"] - batches.paused
    evaluate(batches.steps)
    print(json.dumps(dict(peer="sae_lens", version=sae_lens.__version__, arch=a.arch, train_s=wall,
                          samples=batches.steps * a.batch, samples_per_s=batches.steps * a.batch / wall,
                          threads=torch.get_num_threads(), trajectory=traj)))


if __name__ == "__main__":
    main()
