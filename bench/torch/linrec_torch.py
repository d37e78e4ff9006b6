#!/usr/bin/python3
"""PyTorch CPU baseline for bench/suites/linrec.js: the same chunked causal linear recurrence
(per-head decay, chunk 64, intra-chunk tril(QKᵀ ⊙ decay) V plus the carried fp32 state) and HSTU's
quadratic pointwise attention, forward + backward through autograd, 2 threads.

Usage: /usr/bin/python3 bench/torch/linrec_torch.py '{"B":32,"H":4,"D":64,"Ls":[256,1024],"reps":3}'
Prints one JSON object {"torch": "<version>", "rows": [{"L":..,"linear_ms":..,"hstu_ms":..}]}.
Exits with status 3 when torch cannot be imported (the bench then leaves the column out).
"""
import json
import sys
import time

try:
    import torch
except Exception as e:  # noqa: BLE001 - any import failure means "no torch here"
    print(json.dumps({"error": f"import torch failed: {e}"}))
    sys.exit(3)

torch.set_num_threads(2)


def chunked_linear(q, k, v, gamma, scale, C=64):
    """q, k, v: [B, H, L, D]; gamma: [H] in (0, 1]. Same algorithm as native/cpu/linrec.cpp."""
    B, H, L, D = q.shape
    Dv = v.shape[-1]
    lg = torch.log(gamma).view(1, H, 1)  # log-space decays
    S = torch.zeros(B, H, D, Dv, dtype=q.dtype)
    outs = []
    for c0 in range(0, L, C):
        n = min(C, L - c0)
        qc, kc, vc = q[:, :, c0:c0 + n], k[:, :, c0:c0 + n], v[:, :, c0:c0 + n]
        pos = torch.arange(1, n + 1, dtype=q.dtype).view(1, 1, n)
        A = lg * pos  # inclusive cumulative log decay [1, H, n]
        M = torch.exp(A.unsqueeze(-1) - A.unsqueeze(-2)).tril()  # [1, H, n, n]
        P = (qc @ kc.transpose(-1, -2)) * M
        o = (qc * torch.exp(A).unsqueeze(-1)) @ S + P @ vc
        outs.append(o * scale)
        F = torch.exp(A[..., -1:] - A).unsqueeze(-1)  # decay to chunk end
        S = torch.exp(A[..., -1]).view(1, H, 1, 1) * S + (kc * F).transpose(-1, -2) @ vc
    return torch.cat(outs, dim=2)


def hstu_attention(q, k, v, scale):
    L = q.shape[2]
    mask = torch.ones(L, L, dtype=torch.bool).tril()
    a = torch.nn.functional.silu(q @ k.transpose(-1, -2)) * scale
    return (a.masked_fill(~mask, 0.0)) @ v


def timed(fn, reps):
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return ts[len(ts) // 2]


def main():
    cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    B, H, D = cfg.get("B", 32), cfg.get("H", 4), cfg.get("D", 64)
    reps = cfg.get("reps", 3)
    hstu_max = cfg.get("hstuMaxL", 1024)
    rows = []
    g = torch.Generator().manual_seed(0)
    for L in cfg.get("Ls", [256, 1024]):
        q, k, v = (torch.randn(B, H, L, D, generator=g, requires_grad=True) for _ in range(3))
        a = torch.full((H,), 2.5, requires_grad=True)
        gy = torch.randn(B, H, L, D, generator=g)

        def lin():
            for t in (q, k, v, a):
                t.grad = None
            chunked_linear(q, k, v, torch.sigmoid(a), 1.0 / L).backward(gy)

        def quad():
            for t in (q, k, v):
                t.grad = None
            hstu_attention(q, k, v, 1.0 / L).backward(gy)

        row = {"L": L, "linear_ms": timed(lin, reps)}
        row["hstu_ms"] = timed(quad, max(1, reps // 2)) if L <= hstu_max else None
        rows.append(row)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}))


if __name__ == "__main__":
    main()
