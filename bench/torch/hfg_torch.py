"""PyTorch CPU baseline for bench/suites/hfg.js: the same masked multi-head attention composed from
torch ops (matmul -> scale -> additive mask -> softmax -> matmul), forward + backward, timed as the
median of `reps` runs after one warm-up. Prints one JSON object on stdout.

usage: python3 hfg_torch.py --sizes 10000,100000 --heads 4 --tokens 10 --dim 32 --threads 2 --reps 5
"""
import argparse
import json
import math
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=10)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    try:
        import torch
    except Exception as e:  # the bench reports "not available" and goes on
        print(json.dumps({"available": False, "reason": f"import torch failed: {e}"}))
        return 0
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = {"available": True, "version": torch.__version__, "threads": torch.get_num_threads(), "results": {}}
    H, T, d = a.heads, a.tokens, a.dim
    for n in [int(s) for s in a.sizes.split(",") if s]:
        q = torch.randn(n, H, T, d, requires_grad=True)
        k = torch.randn(n, H, T, d, requires_grad=True)
        v = torch.randn(n, H, T, d, requires_grad=True)
        g = torch.randn(n, H, T, d)
        keep = torch.rand(n, T) > 0.2
        keep[:, :2] = True  # context and item tokens are always present
        bias = torch.zeros(n, 1, 1, T).masked_fill(~keep.view(n, 1, 1, T), -1e9)
        scale = 1.0 / math.sqrt(d)

        def step():
            s = torch.matmul(q, k.transpose(-1, -2)) * scale + bias
            p = torch.softmax(s, dim=-1)
            o = torch.matmul(p, v)
            o.backward(g)
            q.grad = None
            k.grad = None
            v.grad = None

        step()
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        out["results"][str(n)] = times[len(times) // 2]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
