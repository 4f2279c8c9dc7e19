"""CPU time and wall time of one CLI command with other CPU-bound processes running: OpenMP's default wait
policy (idle intra-op threads spin for a while before they sleep) against PASSIVE (they sleep at once), which the
CLI sets unless the user has set OMP_WAIT_POLICY.

Workload: `monosemantic sae train` (TopK, 512 latents, d = 128) with torch's default threads, in a fresh process,
once per policy, alternating, while `--burners` processes spin on the CPU. Spinning shows as CPU time that buys no
progress: CPU seconds per run rise with the default policy, and so does wall time when the cores are oversubscribed.

usage: python benchmarks/threads_under_load.py [--burners 3] [--repeat 2] [--samples 300000]
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

POLICIES = {"default": "", "PASSIVE": None}  # "" is no valid policy: OpenMP keeps its default; None: the CLI's


def run_once(policy: str, data: Path, out: Path, samples: int) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    if POLICIES[policy] is not None:
        env["OMP_WAIT_POLICY"] = POLICIES[policy]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "monosemantic.cli", "sae", "train", "--data", str(data), "--arch", "topk",
                    "--k", "5", "--latents", "512", "--samples", str(samples), "--no-progress", "--overwrite",
                    "--out", str(out)], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--burners", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--samples", type=int, default=300_000)
    a = ap.parse_args()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "d.npz"
        subprocess.run([sys.executable, "-m", "monosemantic.cli", "data", "synth", "--samples", "20000",
                        "--out", str(data)], check=True, capture_output=True)
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.burners)]
        rows = {p: [] for p in POLICIES}
        try:
            for _ in range(a.repeat):
                for policy in POLICIES:
                    rows[policy].append(run_once(policy, data, Path(tmp) / "sae", a.samples))
        finally:
            for b in burners:
                b.kill()
    print(f"sae train, {a.samples} samples, {a.burners} CPU-bound processes beside it, {a.repeat} runs each:")
    for policy, r in rows.items():
        walls, cpus = [w for w, _ in r], [c for _, c in r]
        print(f"  OMP_WAIT_POLICY {policy:8s} wall {min(walls):6.1f} s (runs {', '.join(f'{w:.1f}' for w in walls)})"
              f"   CPU {min(cpus):6.1f} s (runs {', '.join(f'{c:.1f}' for c in cpus)})")
    d, p = rows["default"], rows["PASSIVE"]
    print(f"default / PASSIVE: {min(w for w, _ in d) / min(w for w, _ in p):.2f}x wall, "
          f"{min(c for _, c in d) / min(c for _, c in p):.2f}x CPU time")


if __name__ == "__main__":
    main()
