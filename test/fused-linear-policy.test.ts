// ops.fusedLinearPolicyLoss against an unfused float64 reference that materialises the logits:
// values, per-token log-probs, statistics and gradients for hidden and weight (central
// differences), chunking (many small chunks = one big chunk), consistency with clippedPolicyLoss,
// peak memory at V = 200k (a child process measures its peak RSS), and bad inputs.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { tensor, ops, Random, Tensor, memoryStats, noGrad } from '../src';
import { freshSeed, gradCheck, expectClose, expectScalarClose, errorOf, tensorFrom, randomArray } from './helpers';

interface FCase {
  N: number;
  T: number;
  threeD: boolean;
  D: number;
  V: number;
  hidden: Float64Array;
  weight: Float64Array;
  targets: Int32Array;
  old: Float64Array;
  ref: Float64Array | null;
  mask: Float64Array | null;
  adv: Float64Array; // [N]
  epsLow: number;
  epsHigh: number;
  dualClip: number | null;
  klBeta: number;
  agg: ops.PolicyLossAgg;
  temperature: number;
  sftMask: Float64Array | null;
  sftWeight: number;
  entropyCoef: number;
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(Math.max(x, lo), hi);
const f32 = (x: ArrayLike<number>): Float64Array => Float64Array.from(Float32Array.from(x));

/** Materialised float64 logits → log-softmax → per-token logp and entropy. */
function logSoftmaxRef(c: FCase, hidden: Float64Array, weight: Float64Array): { logp: Float64Array; ent: Float64Array } {
  const M = c.N * c.T;
  const logp = new Float64Array(M);
  const ent = new Float64Array(M);
  const u = new Float64Array(c.V);
  for (let m = 0; m < M; m++) {
    let mx = -Infinity;
    for (let v = 0; v < c.V; v++) {
      let s = 0;
      for (let d = 0; d < c.D; d++) s += hidden[m * c.D + d] * weight[v * c.D + d];
      u[v] = s / c.temperature;
      mx = Math.max(mx, u[v]);
    }
    let se = 0;
    for (let v = 0; v < c.V; v++) se += Math.exp(u[v] - mx);
    const lse = mx + Math.log(se);
    let pu = 0;
    for (let v = 0; v < c.V; v++) pu += Math.exp(u[v] - lse) * u[v];
    logp[m] = u[c.targets[m]] - lse;
    ent[m] = lse - pu;
  }
  return { logp, ent };
}

/** The whole unfused loss in float64: clipped PG + k3 KL + SFT CE + entropy bonus. */
function fusedRef(c: FCase, hidden: Float64Array = c.hidden, weight: Float64Array = c.weight): number {
  const { logp, ent } = logSoftmaxRef(c, hidden, weight);
  const { N, T } = c;
  const on = (k: number): boolean => c.mask === null || c.mask[k] !== 0;
  const len = Array.from({ length: N }, (_, i) => Array.from({ length: T }, (_, t) => (on(i * T + t) ? 1 : 0) as number).reduce((a, b) => a + b, 0));
  const norm = c.agg === 'token-mean' ? len.reduce((a, b) => a + b, 0) : c.agg === 'seq-mean-token-mean' ? len.filter((l) => l > 0).length : N * T;
  let loss = 0;
  for (let i = 0; i < N; i++) {
    let row = 0;
    for (let t = 0; t < T; t++) {
      const k = i * T + t;
      if (!on(k)) continue;
      const A = c.adv[i];
      const r = Math.exp(clamp(logp[k] - c.old[k], -20, 20));
      let l = Math.max(-A * r, -A * clamp(r, 1 - c.epsLow, 1 + c.epsHigh));
      if (c.dualClip !== null && A < 0) l = Math.min(l, -c.dualClip * A);
      if (c.klBeta > 0 && c.ref !== null) {
        const x = clamp(c.ref[k] - logp[k], -20, 20);
        l += c.klBeta * (Math.exp(x) - x - 1);
      }
      l -= c.entropyCoef * ent[k];
      row += l;
    }
    if (norm > 0) loss += c.agg === 'seq-mean-token-mean' ? (len[i] > 0 ? row / len[i] / norm : 0) : row / norm;
  }
  if (c.sftMask !== null && c.sftWeight > 0) {
    let s = 0;
    let n = 0;
    for (let k = 0; k < N * T; k++)
      if (c.sftMask[k] !== 0) {
        s += logp[k];
        n++;
      }
    if (n > 0) loss += (-c.sftWeight * s) / n;
  }
  return loss;
}

function makeFCase(rng: Random, o: Partial<FCase> & { withMask?: boolean; withSft?: boolean; withRef?: boolean }): FCase {
  const N = o.N ?? 3;
  const T = o.T ?? 4;
  const D = o.D ?? 5;
  const V = o.V ?? 11;
  const M = N * T;
  const c: FCase = {
    N,
    T,
    threeD: o.threeD ?? true,
    D,
    V,
    hidden: f32(randomArray(rng, M * D, 0.8)),
    weight: f32(randomArray(rng, V * D, 0.8)),
    targets: Int32Array.from({ length: M }, () => rng.int(V)),
    old: new Float64Array(M),
    ref: null,
    mask: null,
    adv: f32(randomArray(rng, N)),
    epsLow: 0.2,
    epsHigh: 0.28,
    dualClip: o.dualClip ?? null,
    klBeta: o.klBeta ?? 0,
    agg: o.agg ?? 'token-mean',
    temperature: o.temperature ?? 1,
    sftMask: null,
    sftWeight: o.sftWeight ?? 0,
    entropyCoef: o.entropyCoef ?? 0,
  };
  if (!c.threeD) {
    // One token per row: N = M sequences of length 1.
    c.T = 1;
    c.N = M;
    c.adv = f32(randomArray(rng, M));
  }
  const { logp } = logSoftmaxRef(c, c.hidden, c.weight);
  const kinks = [Math.log(1 - c.epsLow), Math.log(1 + c.epsHigh)];
  if (c.dualClip !== null) kinks.push(Math.log(c.dualClip));
  for (let k = 0; k < M; k++) {
    let d = 0.4 * rng.normal();
    for (const kk of kinks) if (Math.abs(d - kk) < 3e-3) d += 6e-3;
    c.old[k] = logp[k] - d;
  }
  c.old = f32(c.old);
  if (o.withRef) c.ref = f32(Array.from(logp, (x) => x + 0.5 * rng.normal()));
  if (o.withMask) {
    c.mask = new Float64Array(M);
    for (let k = 0; k < M; k++) c.mask[k] = rng.uniform() < 0.7 ? 1 : 0;
    if (c.threeD) for (let t = 0; t < c.T; t++) c.mask[c.T + t] = 0; // an empty row
  }
  if (o.withSft) {
    c.sftMask = new Float64Array(M);
    for (let k = 0; k < M; k++) c.sftMask[k] = rng.uniform() < 0.4 ? 1 : 0;
    c.sftMask[0] = 1;
  }
  return c;
}

function fusedTensors(c: FCase): { opts: ops.FusedLinearPolicyLossOptions; targets: Tensor; all: Tensor[] } {
  const tok = c.threeD ? [c.N, c.T] : [c.N];
  const all: Tensor[] = [];
  const mk = (v: ArrayLike<number>, s: number[]): Tensor => {
    const t = tensorFrom(v, s);
    all.push(t);
    return t;
  };
  const targets = tensor(c.targets, tok);
  all.push(targets);
  const opts: ops.FusedLinearPolicyLossOptions = {
    oldLogp: mk(c.old, tok),
    advantages: mk(c.adv, [c.N]),
    epsLow: c.epsLow,
    epsHigh: c.epsHigh,
    agg: c.agg,
    temperature: c.temperature,
  };
  if (c.ref !== null) opts.refLogp = mk(c.ref, tok);
  if (c.mask !== null) opts.mask = mk(c.mask, tok);
  if (c.dualClip !== null) opts.dualClip = c.dualClip;
  if (c.klBeta > 0) opts.klBeta = c.klBeta;
  if (c.sftMask !== null) opts.sftMask = mk(c.sftMask, tok);
  if (c.sftWeight > 0) opts.sftWeight = c.sftWeight;
  if (c.entropyCoef !== 0) opts.entropyCoef = c.entropyCoef;
  return { opts, targets, all };
}

describe('fusedLinearPolicyLoss vs unfused float64 reference (materialised logits)', () => {
  test('option combinations: loss and gradients of hidden and weight (central differences), forced small chunks', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const aggs: ops.PolicyLossAgg[] = ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum'];
    let n = 0;
    for (const agg of aggs)
      for (const threeD of [true, false])
        for (const extras of [false, true]) {
          const c = makeFCase(rng, {
            agg,
            threeD,
            withMask: true,
            withRef: extras,
            klBeta: extras ? 0.2 : 0,
            dualClip: extras ? 3 : null,
            withSft: extras,
            sftWeight: extras ? 0.3 : 0,
            entropyCoef: extras ? 0.05 : 0,
            temperature: extras ? 0.7 : 1,
          });
          const { opts, targets, all } = fusedTensors(c);
          const what = `fused agg=${agg} 3d=${threeD} extras=${extras}`;
          const hShape = threeD ? [c.N, c.T, c.D] : [c.N, c.D];
          gradCheck({
            inputs: [c.hidden, c.weight],
            shapes: [hShape, [c.V, c.D]],
            ref: ([h, w]) => [fusedRef(c, h, w)],
            op: ([h, w]) => ops.fusedLinearPolicyLoss(h, w, targets, { ...opts, chunkRows: 5, chunkVocab: 4 }).loss,
            h: 1e-5,
            tol: 2e-4,
            // A mean of O(1) advantage-weighted terms that can cancel to ~0 (the same failure as
            // the policy-loss suite's seed 680143384): judged against that scale, not the sum.
            floor: 1,
            maxCoords: 80,
            seed,
            what,
          });
          for (const t of all) t.dispose();
          n++;
        }
    expect(n).toBe(12);
  });

  test('per-token logp, entropy and stats match the reference; the loss equals clippedPolicyLoss on those logp', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const c = makeFCase(rng, { N: 4, T: 6, D: 7, V: 37, withMask: true, withRef: true, klBeta: 0.1, temperature: 1.3 });
    const { opts, targets, all } = fusedTensors(c);
    const h = tensorFrom(c.hidden, [c.N, c.T, c.D]);
    const w = tensorFrom(c.weight, [c.V, c.D]);
    const r = ops.fusedLinearPolicyLoss(h, w, targets, { ...opts, chunkVocab: 8 });
    const ref = logSoftmaxRef(c, c.hidden, c.weight);
    expectClose(r.logp.toFloat32Array(), ref.logp, 1e-5, 'logp', seed);
    expect(r.logp.shape).toEqual([c.N, c.T]);
    let es = 0;
    let en = 0;
    for (let k = 0; k < c.N * c.T; k++)
      if (c.mask![k] !== 0) {
        es += ref.ent[k];
        en++;
      }
    expectClose([r.stats.entropy], [es / en], 1e-5, 'entropy stat', seed);
    expectScalarClose(r.loss.item(), fusedRef(c), 1e-4, 'loss', seed);
    const { temperature: _t, ...pgOpts } = opts;
    const pl = ops.clippedPolicyLoss(r.logp, pgOpts);
    expectScalarClose(pl.loss.item(), r.loss.item(), 1e-6, 'same as clippedPolicyLoss', seed);
    expect(pl.stats.tokenCount).toBe(r.stats.tokenCount);
    expectClose([pl.stats.clipFracHigh, pl.stats.clipFracLow, pl.stats.ratioMean], [r.stats.clipFracHigh, r.stats.clipFracLow, r.stats.ratioMean], 1e-6, 'stats', seed);
    for (const t of [...all, h, w, r.loss, r.logp, pl.loss]) t.dispose();
  });

  test('chunking does not change the result: default chunks vs many ragged chunks vs one chunk', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const c = makeFCase(rng, { N: 300, T: 1, threeD: false, D: 16, V: 2500, withMask: true, withSft: true, sftWeight: 0.5, entropyCoef: 0.01 });
    const { opts, targets, all } = fusedTensors(c);
    const h = tensorFrom(c.hidden, [c.N, c.D], true);
    const w = tensorFrom(c.weight, [c.V, c.D], true);
    const run = (rows?: number, vocab?: number): Float32Array[] => {
      h.grad = null;
      w.grad = null;
      const r = ops.fusedLinearPolicyLoss(h, w, targets, { ...opts, chunkRows: rows, chunkVocab: vocab });
      r.loss.backward();
      const out = [Float32Array.of(r.loss.item()), r.logp.toFloat32Array(), h.grad!.toFloat32Array(), w.grad!.toFloat32Array()];
      r.logp.dispose();
      return out;
    };
    const a = run();
    const b = run(97, 333);
    const one = run(100000, 100000);
    for (let k = 0; k < a.length; k++) {
      expectClose(b[k], a[k], 2e-5, `ragged chunks output ${k}`, seed);
      expectClose(one[k], a[k], 2e-5, `one chunk output ${k}`, seed);
    }
    for (const t of [...all, h, w]) t.dispose();
  });

  test('V = 10^6 + 3 (an item catalogue): log-probs match a float64 log-softmax over materialised logits', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const M = 3;
    const D = 2;
    const V = 1_000_003;
    // Cheap pseudo-random weights (a normal generator is too slow for 2M values in a unit test).
    const off = rng.uniform() * 1000;
    const wv = new Float32Array(V * D);
    for (let k = 0; k < wv.length; k++) wv[k] = Math.sin(k * 0.7 + off) * 2;
    const hv = Float32Array.from(randomArray(rng, M * D));
    const y = Int32Array.from({ length: M }, () => rng.int(V));
    const ref = new Float64Array(M);
    for (let m = 0; m < M; m++) {
      const h0 = hv[m * D];
      const h1 = hv[m * D + 1];
      let mx = -Infinity;
      for (let v = 0; v < V; v++) mx = Math.max(mx, h0 * wv[2 * v] + h1 * wv[2 * v + 1]);
      let se = 0;
      for (let v = 0; v < V; v++) se += Math.exp(h0 * wv[2 * v] + h1 * wv[2 * v + 1] - mx);
      ref[m] = h0 * wv[2 * y[m]] + h1 * wv[2 * y[m] + 1] - mx - Math.log(se);
    }
    const h = tensor(hv, [M, D], { requiresGrad: true });
    const w = tensor(wv, [V, D], { requiresGrad: true });
    const targets = tensor(y, [M]);
    const old = tensorFrom(Array.from(ref, (x) => x + 0.1), [M]);
    const adv = tensor([1, -0.5, 0.25]);
    const r = ops.fusedLinearPolicyLoss(h, w, targets, { oldLogp: old, advantages: adv });
    expectClose(r.logp.toFloat32Array(), ref, 1e-5, 'logp at V = 1e6', seed);
    r.loss.backward();
    expect(Array.from(h.grad!.toFloat32Array()).every(Number.isFinite)).toBe(true);
    for (const t of [h, w, targets, old, adv, r.loss, r.logp]) t.dispose();
  });

  test('micro-batch invariance: parts with the global RL and SFT normalizers reproduce the full-batch gradients', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const c = makeFCase(rng, { N: 6, T: 5, D: 6, V: 29, withMask: true, withSft: true, sftWeight: 0.4, withRef: true, klBeta: 0.1, entropyCoef: 0.02, agg: 'seq-mean-token-mean' });
    const { opts, targets, all } = fusedTensors(c);
    const full = (h: Tensor, w: Tensor, o: ops.FusedLinearPolicyLossOptions, y: Tensor): { loss: number; stats: ops.FusedLinearPolicyLossStats } => {
      const r = ops.fusedLinearPolicyLoss(h, w, y, o);
      r.loss.backward();
      const out = { loss: r.loss.item(), stats: r.stats };
      r.loss.dispose();
      r.logp.dispose();
      return out;
    };
    const h = tensorFrom(c.hidden, [c.N, c.T, c.D], true);
    const w = tensorFrom(c.weight, [c.V, c.D], true);
    const f = full(h, w, opts, targets);
    const gh = h.grad!.toFloat32Array();
    const gw = w.grad!.toFloat32Array();
    // Two parts of 2 and 4 sequences, each with the global normalizers of the full batch.
    let lossParts = 0;
    const ghParts = new Float32Array(gh.length);
    const gwParts = new Float64Array(gw.length);
    for (const [b, e] of [
      [0, 2],
      [2, 6],
    ]) {
      const n = e - b;
      const tokSlice = (x: Float64Array): Float64Array => x.slice(b * c.T, e * c.T);
      const part: typeof c = {
        ...c,
        N: n,
        hidden: c.hidden.slice(b * c.T * c.D, e * c.T * c.D),
        targets: c.targets.slice(b * c.T, e * c.T),
        old: tokSlice(c.old),
        ref: c.ref === null ? null : tokSlice(c.ref),
        mask: c.mask === null ? null : tokSlice(c.mask),
        sftMask: c.sftMask === null ? null : tokSlice(c.sftMask),
        adv: c.adv.slice(b, e),
      };
      const pt = fusedTensors(part);
      const ph = tensorFrom(part.hidden, [n, c.T, c.D], true);
      const pw = tensorFrom(c.weight, [c.V, c.D], true);
      const pr = full(ph, pw, { ...pt.opts, normalizer: f.stats.normalizer, sftNormalizer: f.stats.sftTokens }, pt.targets);
      lossParts += pr.loss;
      ghParts.set(ph.grad!.toFloat32Array(), b * c.T * c.D);
      const g = pw.grad!.toFloat32Array();
      for (let k = 0; k < g.length; k++) gwParts[k] += g[k];
      for (const t of [...pt.all, ph, pw]) t.dispose();
    }
    expectScalarClose(lossParts, f.loss, 1e-5, 'loss of parts', seed);
    expectClose(ghParts, gh, 1e-5, 'hidden grad of parts', seed);
    expectClose(gwParts, gw, 1e-5, 'weight grad of parts', seed);
    for (const t of [...all, h, w]) t.dispose();
  });

  test('rows with no RL and no SFT token get zero hidden gradient; tensors are freed', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const before = memoryStats().count;
    const c = makeFCase(rng, { N: 3, T: 5, withMask: true });
    const { opts, targets, all } = fusedTensors(c);
    const h = tensorFrom(c.hidden, [c.N, c.T, c.D], true);
    const w = tensorFrom(c.weight, [c.V, c.D], true);
    const r = ops.fusedLinearPolicyLoss(h, w, targets, opts);
    r.loss.backward();
    const gh = h.grad!.toFloat32Array();
    for (let k = 0; k < c.N * c.T; k++) {
      if (c.mask![k] !== 0) continue;
      for (let d = 0; d < c.D; d++) expect(gh[k * c.D + d]).toBe(0);
    }
    for (const t of [...all, h, w, r.loss, r.logp]) t.dispose();
    expect(memoryStats().count).toBe(before);
  });
});

describe('fusedLinearPolicyLoss memory', () => {
  test('V = 200k: workspace and peak RSS stay far below M·V·4 bytes (the logits are never materialised)', () => {
    const M = 512;
    const D = 16;
    const V = 200_000;
    const logitsBytes = M * V * 4; // 410 MB
    // In-process: the kernel's own workspace accounting and the live native storages.
    const rng = new Random(freshSeed());
    const h = tensorFrom(randomArray(rng, M * D, 0.3), [M, D], true);
    const w = tensorFrom(randomArray(rng, V * D, 0.3), [V, D], true);
    const targets = tensor(Int32Array.from({ length: M }, () => rng.int(V)), [M]);
    const old = tensorFrom(randomArray(rng, M, 0.1).map((x) => x - 12), [M]);
    const adv = tensorFrom(randomArray(rng, M), [M]);
    const bytes0 = memoryStats().bytes;
    // Forward only here (the child below measures forward + backward).
    const r = noGrad(() => ops.fusedLinearPolicyLoss(h, w, targets, { oldLogp: old, advantages: adv }));
    const liveDuring = memoryStats().bytes - bytes0; // loss and logp only
    expect(r.stats.workspaceBytes).toBeLessThan(logitsBytes / 50);
    expect(liveDuring).toBeLessThan(M * 4 + 1024);
    expect(Number.isFinite(r.loss.item())).toBe(true);
    for (const t of [h, w, targets, old, adv, r.loss, r.logp]) t.dispose();

    // Peak RSS of two fresh child processes with the same set-up: one stops after the set-up, the
    // other also runs forward + backward. Materialising [M, V] would raise the second peak by
    // about M·V·4 bytes; the chunked kernel adds only its small workspace and the gradients.
    const dist = path.join(__dirname, '..', 'dist', 'index.js');
    if (!fs.existsSync(dist)) throw new Error(`peak-RSS check needs the built package: ${dist} is missing (run npm run build)`);
    const script = `
      const q = require(${JSON.stringify(dist)});
      const { tensor, ops, randn } = q;
      const M = ${M}, D = ${D}, V = ${V};
      const h = randn([M, D], { seed: 1, std: 0.3, requiresGrad: true });
      const w = randn([V, D], { seed: 2, std: 0.3, requiresGrad: true });
      const targets = tensor(Int32Array.from({ length: M }, (_, i) => (i * 7919) % V), [M]);
      const old = randn([M], { seed: 3, mean: -12, std: 0.1 });
      const adv = randn([M], { seed: 4 });
      let ws = 0;
      if (process.argv[1] === 'call') {
        const r = ops.fusedLinearPolicyLoss(h, w, targets, { oldLogp: old, advantages: adv });
        r.loss.backward();
        ws = r.stats.workspaceBytes;
      }
      process.stdout.write(JSON.stringify({ peak: process.resourceUsage().maxRSS * 1024, ws }));
    `;
    const child = (mode: string): { peak: number; ws: number } => {
      const out = spawnSync(process.execPath, ['-e', script, mode], { encoding: 'utf8', env: { ...process.env, QGS_QUIET: '1' }, timeout: 120000 });
      if (out.status !== 0) throw new Error(`child (${mode}) failed: ${out.stderr}`);
      return JSON.parse(out.stdout) as { peak: number; ws: number };
    };
    const setupOnly = child('setup');
    const withCall = child('call');
    expect(withCall.ws).toBeGreaterThan(0);
    const added = withCall.peak - setupOnly.peak;
    // Allowed: gradients (dweight V·D·4, dhidden) + workspace + allocator / JIT noise.
    expect(added).toBeLessThan(logitsBytes / 8);
  });
});

describe('fusedLinearPolicyLoss bad inputs', () => {
  test('errors name the op, the argument, expected and actual', () => {
    const h = tensor(new Float32Array(6).fill(0.1), [3, 2]);
    const w = tensor(new Float32Array(8).fill(0.2), [4, 2]);
    const y = tensor(new Int32Array([0, 3, 1]), [3]);
    const old = tensor([-1, -1, -1]);
    const adv = tensor([1, 0, -1]);
    const base = { oldLogp: old, advantages: adv };
    const f = (hh: Tensor, ww: Tensor, yy: Tensor, o: Partial<ops.FusedLinearPolicyLossOptions> = {}): string =>
      errorOf(() => ops.fusedLinearPolicyLoss(hh, ww, yy, { ...base, ...o } as ops.FusedLinearPolicyLossOptions));
    expect(f(tensor([1, 2]), w, y)).toMatch(/fusedLinearPolicyLoss: hidden: expected rank 2 \[M, D\] or 3 \[N, T, D\], got rank 1/);
    expect(f(h, tensor(new Float32Array(12), [4, 3]), y)).toMatch(/fusedLinearPolicyLoss: weight: expected shape \[V, 2\] \(D of hidden\), got \[4, 3\]/);
    expect(f(h, w, tensor([0, 1, 2]))).toMatch(/fusedLinearPolicyLoss: targets: expected dtype i32, got f32/);
    expect(f(h, w, tensor(new Int32Array([0, 1]), [2]))).toMatch(/fusedLinearPolicyLoss: targets: expected shape \[3\], got \[2\]/);
    expect(f(h, w, tensor(new Int32Array([0, 4, 1]), [3]))).toMatch(/fusedLinearPolicyLoss: targets: expected values in \[0, 4\) at masked-in rows, got 4 at row 1/);
    expect(f(h, w, y, { temperature: 0 })).toMatch(/fusedLinearPolicyLoss: temperature: expected a finite number > 0, got 0/);
    expect(f(h, w, y, { sftWeight: 0.5 })).toMatch(/fusedLinearPolicyLoss: sftMask: expected a \[3\] mask when sftWeight > 0, got none/);
    expect(f(h, w, y, { chunkVocab: 0 })).toMatch(/fusedLinearPolicyLoss: chunkVocab: expected >= 1, got 0/);
    expect(f(h, w, y, { oldLogp: tensor([1, 2]) })).toMatch(/fusedLinearPolicyLoss: oldLogp: expected shape \[3\], got \[2\]/);
    const nanH = tensor([0.1, NaN, 0.1, 0.1, 0.1, 0.1], [3, 2]);
    expect(f(nanH, w, y)).toMatch(/fusedLinearPolicyLoss: hidden, weight: expected finite values, got a non-finite log-probability at row 0/);
    for (const t of [h, w, y, old, adv, nanH]) t.dispose();
  });

  test('masked-out rows may carry padding targets such as -100', () => {
    const h = tensor(new Float32Array(6).fill(0.1), [3, 2]);
    const w = tensor(new Float32Array(8).fill(0.2), [4, 2]);
    const y = tensor(new Int32Array([0, -100, 1]), [3]);
    const r = ops.fusedLinearPolicyLoss(h, w, y, { oldLogp: tensor([-1, -1, -1]), advantages: tensor([1, 0, -1]), mask: tensor([1, 0, 1]) });
    expect(Number.isFinite(r.loss.item())).toBe(true);
    expect(r.logp.toFloat32Array()[1]).toBe(0);
  });
});
