// Linear recurrence suite (issue 3): fwd+bwd of ops.linearRecurrence for B=32, H=4, dk=dv=64,
// L ∈ {256, 1024, 4096} and a long-tailed jagged batch, against, in the same run:
//  - ops.hstuAttention (the quadratic HSTU baseline; the crossover),
//  - a naive TypeScript token scan (L = 256 only),
//  - tfjs composed ops (masked quadratic form with the decay matrix, tf.grads; L = 256 only),
//  - PyTorch CPU running the same chunked algorithm (bench/torch/linrec_torch.py, 2 threads) when
//    /usr/bin/python3 can import torch.
// Prints ms per fwd+bwd, ratios (baseline ms / ours ms: > 1 = ours faster) and achieved GFLOP/s
// next to the machine's own sgemm rate. BENCH_QUICK=1 shrinks everything to a smoke run.
'use strict';
const path = require('path');
const { spawnSync } = require('child_process');
const { data, medianMs, printTable, saveRows, loadTf, quick } = require('../lib');
const q = require('../../dist');

const H = 4;
const D = 64;
const C = 64; // kernel chunk
const B = quick ? 4 : 32;
const Ls = quick ? [256] : [256, 1024, 4096];


// FLOPs the chunked kernel executes per token·head (fwd: inter 4·dk·dv + triangular intra C·(dk+dv);
// bwd: 10·dk·dv + 2.5·C·(dk+dv), state recompute included).
const linFlops = (tokens) => tokens * H * (14 * D * D + 3.5 * C * 2 * D);
// Quadratic HSTU: causal pairs × (fwd 4d + bwd 10d).
const hstuFlops = (pairs) => pairs * H * 14 * D;

// One fwd+bwd of ours. `lead` is [B, L] (padded) or [ΣL] (packed with offsets).
function makeOurs(lead, opts, op) {
  const n = lead.reduce((a, b) => a * b, 1) * H * D;
  const t = (seed) => q.tensor(data(n, seed), [...lead, H, D], { requiresGrad: true });
  const qq = t(1);
  const kk = t(2);
  const vv = t(3);
  const logit = q.tensor(new Float32Array(H).fill(2.5), [H], { requiresGrad: true });
  const g = q.tensor(data(n, 4), [...lead, H, D]);
  const fn = () =>
    q.scope(() => {
      const y = op === 'linear'
        ? q.ops.linearRecurrence(qq, kk, vv, { ...opts, decay: q.ops.sigmoid(logit) })
        : q.ops.hstuAttention(qq, kk, vv, opts);
      y.backward(g);
      for (const x of [qq, kk, vv, logit]) x.grad = null;
    });
  return { fn, dispose: () => [qq, kk, vv, logit, g].forEach((x) => x.dispose()) };
}

// Naive TypeScript: token-by-token scan forward + reverse scan backward (per-head decay), what a user
// writes without kernels. Float32 storage like ours.
function naiveScan(Bn, L) {
  const n = Bn * L * H * D;
  const qv = data(n, 1);
  const kv = data(n, 2);
  const vv = data(n, 3);
  const gv = data(n, 4);
  const gamma = 1 / (1 + Math.exp(-2.5));
  const c = 1 / L;
  return () => {
    const out = new Float32Array(n);
    const dq = new Float32Array(n);
    const dk = new Float32Array(n);
    const dv = new Float32Array(n);
    const S = new Float32Array(D * D);
    const R = new Float32Array(D * D);
    const states = new Float32Array((L + 1) * D * D);
    for (let b = 0; b < Bn; b++) {
      for (let h = 0; h < H; h++) {
        S.fill(0);
        for (let t = 0; t < L; t++) {
          const o = ((b * L + t) * H + h) * D;
          for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) S[i * D + j] = gamma * S[i * D + j] + kv[o + i] * vv[o + j];
          states.set(S, (t + 1) * D * D);
          for (let j = 0; j < D; j++) {
            let a = 0;
            for (let i = 0; i < D; i++) a += qv[o + i] * S[i * D + j];
            out[o + j] = c * a;
          }
        }
        R.fill(0);
        for (let t = L - 1; t >= 0; t--) {
          const o = ((b * L + t) * H + h) * D;
          for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) R[i * D + j] += qv[o + i] * c * gv[o + j];
          const St = (t + 1) * D * D;
          for (let i = 0; i < D; i++) {
            let a = 0;
            let bb = 0;
            for (let j = 0; j < D; j++) {
              a += states[St + i * D + j] * c * gv[o + j];
              bb += R[i * D + j] * vv[o + j];
            }
            dq[o + i] = a;
            dk[o + i] = bb;
          }
          for (let j = 0; j < D; j++) {
            let a = 0;
            for (let i = 0; i < D; i++) a += R[i * D + j] * kv[o + i];
            dv[o + j] = a;
          }
          for (let i = 0; i < D * D; i++) R[i] *= gamma;
        }
      }
    }
    return out;
  };
}

// tfjs composed ops: O = ((Q Kᵀ) ⊙ Γ) V · c with Γ_ts = γ^{t−s}·[s ≤ t], gradients through tf.grads.
function tfjsCase(tf, Bn, L) {
  const shape = [Bn * H, L, D];
  const n = Bn * H * L * D;
  const qq = tf.tensor3d(data(n, 1), shape);
  const kk = tf.tensor3d(data(n, 2), shape);
  const vv = tf.tensor3d(data(n, 3), shape);
  const gy = tf.tensor3d(data(n, 4), shape);
  const gamma = 1 / (1 + Math.exp(-2.5));
  const G = new Float32Array(L * L);
  for (let t = 0; t < L; t++) for (let s = 0; s <= t; s++) G[t * L + s] = gamma ** (t - s) / L;
  const gam = tf.tensor2d(G, [L, L]);
  const f = (a, b, c) => tf.matMul(tf.mul(tf.matMul(a, b, false, true), gam), c);
  const grads = tf.grads(f);
  return {
    fn: () => tf.tidy(() => grads([qq, kk, vv], gy).forEach((t) => t.dataSync())),
    dispose: () => [qq, kk, vv, gy, gam].forEach((t) => t.dispose()),
  };
}

function runTorch(Lsel) {
  const script = path.join(__dirname, '..', 'torch', 'linrec_torch.py');
  const r = spawnSync('/usr/bin/python3', [script, JSON.stringify({ B, H, D, Ls: Lsel, reps: quick ? 1 : 3, hstuMaxL: 1024 })], {
    encoding: 'utf8',
    timeout: quick ? 120000 : 900000,
  });
  if (r.status !== 0 || !r.stdout) return { available: false, why: r.status === 3 ? 'torch not importable by /usr/bin/python3' : `exit ${r.status} ${r.error ?? ''}` };
  try {
    return { available: true, ...JSON.parse(r.stdout.trim().split('\n').pop()) };
  } catch (e) {
    return { available: false, why: `bad output: ${String(e)}` };
  }
}

// Long-tailed lengths (Pareto-like, α ≈ 1.2), clipped to [1, 4096]; fixed seed.
function longTailed(n, seed) {
  let s = seed >>> 0;
  const out = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = (s + 1) / 4294967297;
    out.push(Math.max(1, Math.min(quick ? 512 : 4096, Math.floor(32 / u ** (1 / 1.2)))));
  }
  return out;
}

async function run() {
  const rows = [];
  const blas = q.ops.blasSgemmRate(1024, quick ? 2 : 5);
  const torch = runTorch(Ls.filter((L) => L <= 4096));
  const torchRow = (L) => (torch.available ? torch.rows.find((r) => r.L === L) : undefined);
  for (const L of Ls) {
    const lin = makeOurs([B, L], { scale: 1 / L }, 'linear');
    const linMs = medianMs(lin.fn, { reps: quick ? 2 : L >= 4096 ? 3 : 5 });
    lin.dispose();
    // Quadratic HSTU: at L = 4096 a full B = 32 batch takes ~10 s per call, so it is timed on B/16
    // sequences and scaled linearly (the work is independent per sequence).
    const hb = L >= 4096 && !quick ? Math.max(1, B / 16) : B;
    const quad = makeOurs([hb, L], { scale: 1 / L }, 'hstu');
    const quadMs = medianMs(quad.fn, { reps: quick ? 1 : 3 }) * (B / hb);
    quad.dispose();
    const row = {
      case: `padded B=${B} L=${L}`,
      'linear ms': linMs,
      'linear GFLOP/s': linFlops(B * L) / linMs / 1e6,
      'hstu ms': hb !== B ? `${quadMs.toFixed(0)} (B=${hb} ×${B / hb})` : quadMs,
      'hstu GFLOP/s': hstuFlops((B * L * (L + 1)) / 2) / quadMs / 1e6,
      'hstu/linear': quadMs / linMs,
    };
    if (L <= 256) {
      const nb = quick ? 1 : 4;
      const naiveMs = medianMs(naiveScan(nb, L), { reps: 1, warmup: 0 }) * (B / nb);
      row['naive TS ms'] = `${naiveMs.toFixed(0)} (B=${nb} ×${B / nb})`;
      row['naive/linear'] = naiveMs / linMs;
      const tf = await loadTf('cpu');
      if (tf) {
        const tb = quick ? 1 : 4;
        const c = tfjsCase(tf, tb, L);
        const tfMs = medianMs(c.fn, { reps: quick ? 1 : 2 }) * (B / tb);
        c.dispose();
        row['tfjs-cpu ms'] = `${tfMs.toFixed(0)} (B=${tb} ×${B / tb})`;
        row['tfjs/linear'] = tfMs / linMs;
      }
    }
    const tr = torchRow(L);
    if (tr) {
      row['torch linear ms'] = tr.linear_ms;
      row['torch/linear'] = tr.linear_ms / linMs;
      if (tr.hstu_ms !== null) row['torch hstu ms'] = tr.hstu_ms;
    }
    rows.push(row);
  }
  // Long-tailed jagged batch: packed linear vs packed quadratic vs padding to the longest.
  const lens = longTailed(32, 7);
  const offsets = [0];
  for (const l of lens) offsets.push(offsets[offsets.length - 1] + l);
  const total = offsets[offsets.length - 1];
  const maxL = Math.max(...lens);
  const pk = makeOurs([total], { offsets, scale: 1 / maxL }, 'linear');
  const pkMs = medianMs(pk.fn, { reps: quick ? 2 : 5 });
  pk.dispose();
  const pq = makeOurs([total], { offsets, scale: 1 / maxL }, 'hstu');
  const pqMs = medianMs(pq.fn, { reps: quick ? 1 : 3 });
  pq.dispose();
  let pairs = 0;
  for (const l of lens) pairs += (l * (l + 1)) / 2;
  const padded = makeOurs([32, maxL], { lengths: lens, scale: 1 / maxL }, 'linear');
  const padMs = medianMs(padded.fn, { reps: quick ? 2 : 3 });
  padded.dispose();
  rows.push({
    case: `jagged 32 seqs ΣL=${total} max=${maxL} median=${[...lens].sort((a, b) => a - b)[16]}`,
    'linear ms': pkMs,
    'linear GFLOP/s': linFlops(total) / pkMs / 1e6,
    'hstu ms': pqMs,
    'hstu GFLOP/s': hstuFlops(pairs) / pqMs / 1e6,
    'hstu/linear': pqMs / pkMs,
    'padded-to-max linear ms': padMs,
  });
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const table = rows.map((r) => Object.fromEntries(keys.map((k) => [k, r[k] ?? '-'])));
  printTable(`linear recurrence vs quadratic HSTU, fwd+bwd, H=${H} dk=dv=${D} (threads ${require('../../dist/native').native().numThreads()}; sgemm ${blas.toFixed(0)} GFLOP/s; ratio > 1 = ours faster)`, table);
  if (!torch.available) console.log(`PyTorch column left out: ${torch.why}`);
  else console.log(`PyTorch ${torch.torch}, ${torch.threads} threads, same chunked algorithm (bench/torch/linrec_torch.py)`);
  saveRows('linrec', table);
}

module.exports = { run };
