"""CPU time and wall time of toy training with other CPU-bound processes running: OpenMP's default wait policy
(idle intra-op threads spin before they sleep) against PASSIVE (they sleep at once), which the CLI sets unless the
user has set OMP_WAIT_POLICY.

Workload: 16 toy models (n=20, m=5) trained together for 300 steps with torch's default threads, in a fresh
process per run (the policy is read when OpenMP loads), alternating the policies, while `--burners` processes spin
on the CPU. Spinning shows as CPU time that buys no progress, and on oversubscribed cores as wall time too.

usage: python benchmarks/threads_under_load.py [--burners 3] [--repeat 2]
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

POLICIES = {"default": "", "PASSIVE": "PASSIVE"}  # "" is no valid policy: OpenMP keeps its default
WORK = """
import resource, time
from monosemantic.experiments.toy import train
t = time.perf_counter()
train(n=20, m=5, sparsity=[0.9] * 8, steps=300, eval_batch=1024, seeds=2)
r = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t, r.ru_utime + r.ru_stime)
"""


def run_once(policy: str) -> tuple[float, float]:
    """(wall seconds of the training, CPU seconds of the whole process) in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["OMP_WAIT_POLICY"] = POLICIES[policy]
    out = subprocess.run([sys.executable, "-c", WORK], env=env, check=True, capture_output=True, text=True)
    wall, cpu = map(float, out.stdout.split())
    return wall, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--burners", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.burners)]
    rows = {p: [] for p in POLICIES}
    try:
        for _ in range(a.repeat):
            for policy in POLICIES:
                rows[policy].append(run_once(policy))
    finally:
        for b in burners:
            b.kill()
    print(f"toy training (16 models, 300 steps), {a.burners} CPU-bound processes beside it, {a.repeat} runs each:")
    for policy, r in rows.items():
        walls, cpus = [w for w, _ in r], [c for _, c in r]
        print(f"  OMP_WAIT_POLICY {policy:8s} wall {min(walls):6.1f} s (runs {', '.join(f'{w:.1f}' for w in walls)})"
              f"   CPU {min(cpus):6.1f} s (runs {', '.join(f'{c:.1f}' for c in cpus)})")
    d, p = rows["default"], rows["PASSIVE"]
    print(f"default / PASSIVE: {min(w for w, _ in d) / min(w for w, _ in p):.2f}x wall, "
          f"{min(c for _, c in d) / min(c for _, c in p):.2f}x CPU time")


if __name__ == "__main__":
    main()
