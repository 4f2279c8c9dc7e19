"""SAELens both ways: the files we write against SAELens 6's documented format, SAELens-format directories read
with SAELens's own inference maths (apply_b_dec_to_input, rescale_acts_by_decoder_norm), refusals of settings we
cannot reproduce, and a round trip through SAELens itself when it is installed."""
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from monosemantic.cli import main
from monosemantic.data import save_data, synth_uniform
from monosemantic.dictionary import SparseAutoencoder, load
from monosemantic.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks/common.py")
bench_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_common)
D_IN, D_SAE = 12, 40

# SAELens 6's cfg.json keys (SAEConfig's fields, "architecture" and "metadata"), and each architecture's own
COMMON_KEYS = {"architecture", "d_in", "d_sae", "dtype", "device", "apply_b_dec_to_input", "normalize_activations",
               "reshape_activations", "metadata"}
ARCH_KEYS = {"standard": set(), "topk": {"k", "rescale_acts_by_decoder_norm"}, "jumprelu": set()}
SAELENS_ARCH = {"relu": "standard", "topk": "topk", "batchtopk": "jumprelu", "jumprelu": "jumprelu"}


@pytest.fixture(scope="module")
def X():
    return synth_uniform(64, D_IN, 3, 3000, seed=5).X


@pytest.fixture(scope="module")
def fitted(X):
    return {arch: SparseAutoencoder(arch, D_SAE, 3, samples=3000, batch=256, seed=0).fit(X)
            for arch in SAELENS_ARCH}


@pytest.mark.parametrize("arch", list(SAELENS_ARCH))
def test_saved_files_follow_saelens_format(fitted, tmp_path, arch):
    path = fitted[arch].save(tmp_path / arch)
    assert sorted(p.name for p in path.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    cfg = json.loads((path / "cfg.json").read_text())
    sl = SAELENS_ARCH[arch]
    # every key SAELens reads, plus ours (its loader drops keys that are not its config's fields)
    assert set(cfg) - {"monosemantic"} == COMMON_KEYS | ARCH_KEYS[sl] | ({"k"} if arch == "batchtopk" else set())
    assert cfg["architecture"] == sl and cfg["d_in"] == D_IN and cfg["d_sae"] == D_SAE and cfg["dtype"] == "float32"
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert cfg["reshape_activations"] == "none" and int(cfg["metadata"]["sae_lens_version"].split(".")[0]) >= 6
    if sl == "topk":
        assert cfg["k"] == 3 and cfg["rescale_acts_by_decoder_norm"] is False
    with safe_open(str(path / "sae_weights.safetensors"), framework="np") as f:
        shapes = {k: (f.get_tensor(k).shape, f.get_tensor(k).dtype) for k in f.keys()}
    want = {"W_enc": (D_IN, D_SAE), "b_enc": (D_SAE,), "W_dec": (D_SAE, D_IN), "b_dec": (D_IN,)}
    if sl == "jumprelu":
        want["threshold"] = (D_SAE,)
    assert shapes == {k: (s, np.float32) for k, s in want.items()}
    back = load(path)
    assert back.arch == arch and (abs(back.transform(np.asarray(fitted[arch].components_)) -
                                      fitted[arch].transform(fitted[arch].components_))).max() < 1e-6


def _weights(seed=0, d=D_IN, n=D_SAE):
    g = torch.Generator().manual_seed(seed)
    return {"W_enc": torch.randn(d, n, generator=g) / d ** 0.5, "b_enc": 0.1 * torch.randn(n, generator=g),
            "W_dec": torch.randn(n, d, generator=g) * (0.5 + torch.rand(n, 1, generator=g)),
            "b_dec": torch.randn(d, generator=g)}


def _write(path: Path, cfg: dict, w: dict) -> Path:
    """A directory as SAELens's `save_model` writes it, by hand."""
    path.mkdir(parents=True)
    (path / "cfg.json").write_text(json.dumps({"d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu",
                                               "metadata": {"sae_lens_version": "6.54.12"}, **cfg}))
    save_file({k: v.contiguous() for k, v in w.items()}, str(path / "sae_weights.safetensors"))
    return path


def _reference(x, w, architecture, apply_b_dec, k=3, rescale=False):
    """SAELens's inference written out in numpy (float64): codes and reconstruction."""
    W_enc, b_enc, W_dec, b_dec = (w[n].double().numpy() for n in ("W_enc", "b_enc", "W_dec", "b_dec"))
    norms = np.linalg.norm(W_dec, axis=1)
    pre = (x - b_dec * apply_b_dec) @ W_enc + b_enc
    if rescale:
        pre = pre * norms
    if architecture == "topk":
        f = np.zeros_like(pre)
        top = np.argsort(-pre, axis=1)[:, :k]
        np.put_along_axis(f, top, np.maximum(np.take_along_axis(pre, top, 1), 0), 1)
    elif architecture == "jumprelu":
        f = np.maximum(pre, 0) * (pre > w["threshold"].double().numpy())
    else:
        f = np.maximum(pre, 0)
    return f, (f / norms if rescale else f) @ W_dec + b_dec


@pytest.mark.parametrize("architecture, apply_b_dec, rescale", [
    ("topk", False, False), ("topk", True, False), ("topk", False, True), ("topk", True, True),
    ("standard", False, False), ("standard", True, False), ("jumprelu", False, False), ("jumprelu", True, False)])
def test_saelens_directories_give_saelens_codes(X, tmp_path, architecture, apply_b_dec, rescale):
    w = _weights()
    cfg = {"architecture": architecture, "apply_b_dec_to_input": apply_b_dec, "normalize_activations": "none"}
    if architecture == "topk":
        cfg.update(k=3, rescale_acts_by_decoder_norm=rescale)
    if architecture == "jumprelu":
        w["threshold"] = 0.2 * torch.rand(D_SAE, generator=torch.Generator().manual_seed(1))
    sae = load(_write(tmp_path / "sae", cfg, w))
    x = X[:300].astype(np.float64)
    f, x_hat = _reference(x, w, architecture, apply_b_dec, rescale=rescale)
    codes = sae.transform(X[:300])
    assert 0 < codes.nnz < codes.shape[0] * D_SAE  # some latents fire, not all
    np.testing.assert_allclose(codes.toarray(), f, atol=2e-5)
    np.testing.assert_allclose(sae.inverse_transform(codes), x_hat, atol=2e-5)
    # the other setting gives other codes: the field is read, not ignored
    f_other, _ = _reference(x, w, architecture, not apply_b_dec, rescale=rescale)
    assert np.abs(f_other - f).max() > 0.1


def test_pre_6_topk_config_reads_as_saelens_does(X, tmp_path):
    w = _weights()
    path = tmp_path / "old"
    path.mkdir()
    (path / "cfg.json").write_text(json.dumps({"d_in": D_IN, "d_sae": D_SAE, "dtype": "float32",
                                               "activation_fn": "topk", "activation_fn_kwargs": {"k": 4},
                                               "normalize_activations": False, "apply_b_dec_to_input": False}))
    save_file(w, str(path / "sae_weights.safetensors"))
    sae = load(path)
    assert sae.arch == "topk" and sae.k == 4
    np.testing.assert_allclose(sae.transform(X[:50]).toarray(), _reference(X[:50], w, "topk", False, k=4)[0],
                               atol=2e-5)


def _refused_cfg(**change):
    return {"architecture": "topk", "k": 3, "apply_b_dec_to_input": True, "normalize_activations": "none", **change}


@pytest.mark.parametrize("cfg, extra, words", [
    (_refused_cfg(normalize_activations="expected_average_only_in"), {}, "normalize_activations 'expected_average_only_in'"),
    (_refused_cfg(normalize_activations="layer_norm"), {}, "normalize_activations 'layer_norm'"),
    (_refused_cfg(normalize_activations="constant_norm_rescale"), {}, "normalize_activations 'constant_norm_rescale'"),
    (_refused_cfg(normalize_activations="covariance_whitening"), {}, "normalize_activations 'covariance_whitening'"),
    (_refused_cfg(reshape_activations="hook_z"), {}, "reshape_activations 'hook_z'"),
    (_refused_cfg(apply_b_dec_to_input="yes"), {}, "apply_b_dec_to_input must be true or false, got 'yes'"),
    (_refused_cfg(rescale_acts_by_decoder_norm=1), {}, "rescale_acts_by_decoder_norm must be true or false"),
    (_refused_cfg(architecture="gated"), {}, "architecture 'gated' is not supported"),
    (_refused_cfg(architecture="transcoder"), {}, "architecture 'transcoder' is not supported"),
    (_refused_cfg(), {"b_gate": torch.zeros(D_SAE)}, "holds b_gate"),
    (_refused_cfg(), {"scaling_factor": 2 * torch.ones(D_SAE)}, "holds scaling_factor"),
    (_refused_cfg(architecture="jumprelu"), {}, "lacks threshold"),
    (_refused_cfg(rescale_acts_by_decoder_norm=True), {"W_dec": torch.zeros(D_SAE, D_IN)}, "W_dec has a zero row")])
def test_unsupported_settings_are_one_error_line(tmp_path, capsys, cfg, extra, words):
    path = _write(tmp_path / "sae", cfg, {**_weights(), **extra})
    with pytest.raises(InputError, match="cfg.json|sae_weights") as e:
        load(path)
    assert words in str(e.value) and "\n" not in str(e.value)
    save_data(tmp_path / "x.npz", synth_uniform(64, D_IN, 3, 100, seed=0))
    with pytest.raises(SystemExit) as e:
        main(["sae", "score", str(path), "--truth", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0]


def test_an_all_ones_scaling_factor_is_dropped_as_saelens_does(X, tmp_path):
    w = _weights()
    sae = load(_write(tmp_path / "sae", _refused_cfg(), {**w, "scaling_factor": torch.ones(D_SAE)}))
    np.testing.assert_allclose(sae.transform(X[:50]).toarray(), _reference(X[:50], w, "topk", True)[0], atol=2e-5)


# ---- through SAELens itself

SAELENS_SCRIPT = r"""
import json, sys
import numpy as np, torch
from sae_lens import SAE, TopKSAE, TopKSAEConfig, JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig
root = sys.argv[1]
x = torch.from_numpy(np.load(root + "/x.npy"))
codes = {}
for name in json.loads(sys.argv[2]):  # our saved SAEs, read by SAELens
    s = SAE.load_from_disk(root + "/ours/" + name, device="cpu")
    codes["ours-" + name] = s.encode(x).detach().numpy()
    codes["ours-" + name + "-recon"] = s.decode(s.encode(x)).detach().numpy()
torch.manual_seed(0)
made = {"topk-rescaled": TopKSAE(TopKSAEConfig(d_in=x.shape[1], d_sae=40, k=3, apply_b_dec_to_input=False,
                                               rescale_acts_by_decoder_norm=True)),
        "jumprelu": JumpReLUSAE(JumpReLUSAEConfig(d_in=x.shape[1], d_sae=40, apply_b_dec_to_input=False)),
        "standard": StandardSAE(StandardSAEConfig(d_in=x.shape[1], d_sae=40))}
for name, s in made.items():  # SAELens's own SAEs with random weights, saved by SAELens
    with torch.no_grad():
        for p in s.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        if hasattr(s, "threshold"):
            s.threshold.copy_(torch.rand_like(s.threshold) * 0.2)
    s.save_model(root + "/theirs/" + name)
    codes["theirs-" + name] = s.encode(x).detach().numpy()
    codes["theirs-" + name + "-recon"] = s.decode(s.encode(x)).detach().numpy()
np.savez(root + "/codes.npz", **codes)
"""


@pytest.mark.slow
def test_round_trip_through_saelens(fitted, X, tmp_path):
    py = bench_common.saelens_python()
    if py is None:
        pytest.skip("SAELens is not installed: " + bench_common.SAELENS_INSTALL)
    np.save(tmp_path / "x.npy", X[:200])
    for arch, sae in fitted.items():
        sae.save(tmp_path / "ours" / arch)
    out = subprocess.run([py, "-c", SAELENS_SCRIPT, str(tmp_path), json.dumps(list(fitted))], capture_output=True,
                         text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    with np.load(tmp_path / "codes.npz") as z:
        theirs = dict(z)
    for arch, sae in fitted.items():  # ours, opened by SAELens: the same codes and reconstructions
        C = sae.transform(X[:200])
        np.testing.assert_allclose(theirs[f"ours-{arch}"], C.toarray(), atol=1e-5, err_msg=arch)
        np.testing.assert_allclose(theirs[f"ours-{arch}-recon"], sae.inverse_transform(C), atol=1e-5, err_msg=arch)
    for name in ("topk-rescaled", "jumprelu", "standard"):  # SAELens's, opened by us
        sae = load(tmp_path / "theirs" / name)
        C = sae.transform(X[:200])
        assert C.nnz > 0
        np.testing.assert_allclose(C.toarray(), theirs[f"theirs-{name}"], atol=1e-4, err_msg=name)
        np.testing.assert_allclose(sae.inverse_transform(C), theirs[f"theirs-{name}-recon"], atol=1e-4, err_msg=name)
