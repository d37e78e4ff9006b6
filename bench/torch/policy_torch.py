#!/usr/bin/python3
"""PyTorch eager reference for bench/suites/policy.js (case 1): the same clipped policy loss
(ratio clamp ±20, clip 0.2/0.28, k3 KL β=0.04, token-mean over a mask), forward + backward with
respect to logp, on [N, T] fp32. Prints one JSON line: {"ok": true, "ms": median, ...}.
Run with Debian's /usr/bin/python3 (python3-torch); exits with ok=false when torch is missing."""
import json
import sys
import time

try:
    import torch
except Exception as e:  # noqa: BLE001 - report any import failure as "not available"
    print(json.dumps({"ok": False, "reason": f"import torch failed: {e}"}))
    sys.exit(0)

N = int(sys.argv[1]) if len(sys.argv) > 1 else 256
T = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 50
torch.set_num_threads(2)
g = torch.Generator().manual_seed(0)
logp = (-torch.rand(N, T, generator=g) * 3).requires_grad_(True)
old = logp.detach() + 0.3 * torch.randn(N, T, generator=g)
ref = logp.detach() + 0.3 * torch.randn(N, T, generator=g)
mask = (torch.rand(N, T, generator=g) < 0.9).float()
adv = torch.randn(N, 1, generator=g)


def step():
    logp.grad = None
    d = torch.clamp(logp - old, -20, 20)
    r = torch.exp(d)
    pg = torch.maximum(-adv * r, -adv * torch.clamp(r, 0.8, 1.28))
    x = torch.clamp(ref - logp, -20, 20)
    kl = torch.exp(x) - x - 1
    loss = ((pg + 0.04 * kl) * mask).sum() / mask.sum()
    loss.backward()
    return loss


for _ in range(5):
    step()
ts = []
for _ in range(REPS):
    t0 = time.perf_counter()
    step()
    ts.append((time.perf_counter() - t0) * 1e3)
ts.sort()
print(json.dumps({"ok": True, "ms": ts[len(ts) // 2], "threads": torch.get_num_threads(), "torch": torch.__version__, "N": N, "T": T}))
