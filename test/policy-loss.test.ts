// ops.clippedPolicyLoss against an independent float64 TypeScript reference: every option
// combination (aggregation × KL × dual clip × per-sequence bounds × masks with empty rows × per-token
// advantages), values, statistics and gradients (central differences), micro-batch invariance,
// extreme ratios, and bad inputs.
import { tensor, ops, Random, Tensor, memoryStats, noGrad, scope, backendInfo } from '../src';
import { freshSeed, gradCheck, expectClose, expectScalarClose, errorOf, tensorFrom } from './helpers';

type Agg = ops.PolicyLossAgg;

interface Case {
  N: number;
  T: number;
  logp: Float64Array;
  old: Float64Array;
  ref: Float64Array | null;
  mask: Float64Array | null;
  adv: Float64Array;
  advPerToken: boolean;
  epsLow: number | Float64Array;
  epsHigh: number | Float64Array;
  dualClip: number | null;
  klBeta: number;
  klScale: Float64Array | null;
  agg: Agg;
  normalizer: number | null;
}

interface RefOut {
  loss: number;
  tokens: number;
  low: number;
  high: number;
  dual: number;
  ratioSum: number;
  ratioMin: number;
  ratioMax: number;
  approxKl: number;
  refKl: number;
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(Math.max(x, lo), hi);

/** Float64 reference, written from the formulas in DESIGN.md §4.3 / papers.md §7.3, not from the kernel. */
function reference(c: Case, logp: Float64Array = c.logp): RefOut {
  const { N, T } = c;
  const on = (i: number, t: number): boolean => (c.mask === null ? true : c.mask[i * T + t] !== 0);
  const rowLen: number[] = [];
  for (let i = 0; i < N; i++) {
    let l = 0;
    for (let t = 0; t < T; t++) if (on(i, t)) l++;
    rowLen.push(l);
  }
  let norm: number;
  if (c.normalizer !== null) norm = c.normalizer;
  else if (c.agg === 'token-mean') norm = rowLen.reduce((a, b) => a + b, 0);
  else if (c.agg === 'seq-mean-token-mean') norm = rowLen.filter((l) => l > 0).length;
  else norm = N * T;
  const out: RefOut = { loss: 0, tokens: 0, low: 0, high: 0, dual: 0, ratioSum: 0, ratioMin: Infinity, ratioMax: -Infinity, approxKl: 0, refKl: 0 };
  for (let i = 0; i < N; i++) {
    let rowSum = 0;
    const el = typeof c.epsLow === 'number' ? c.epsLow : c.epsLow[i];
    const eh = typeof c.epsHigh === 'number' ? c.epsHigh : c.epsHigh[i];
    for (let t = 0; t < T; t++) {
      if (!on(i, t)) continue;
      const k = i * T + t;
      const A = c.advPerToken ? c.adv[k] : c.adv[i];
      const d = clamp(logp[k] - c.old[k], -20, 20);
      const r = Math.exp(d);
      let l = Math.max(-A * r, -A * clamp(r, 1 - el, 1 + eh));
      if (c.dualClip !== null && A < 0 && l > -c.dualClip * A) {
        l = -c.dualClip * A;
        out.dual++;
      }
      let kl = 0;
      if (c.klBeta > 0 && c.ref !== null) {
        const x = clamp(c.ref[k] - logp[k], -20, 20);
        kl = Math.exp(x) - x - 1;
        out.refKl += kl;
        l += c.klBeta * (c.klScale === null ? 1 : c.klScale[i]) * kl;
      }
      rowSum += l;
      out.tokens++;
      if (r < 1 - el && A < 0) out.low++;
      if (r > 1 + eh && A > 0) out.high++;
      out.ratioSum += r;
      out.ratioMin = Math.min(out.ratioMin, r);
      out.ratioMax = Math.max(out.ratioMax, r);
      out.approxKl += Math.exp(-d) + d - 1;
    }
    if (norm === 0) continue;
    if (c.agg === 'seq-mean-token-mean') out.loss += rowLen[i] > 0 ? rowSum / rowLen[i] / norm : 0;
    else out.loss += rowSum / norm;
  }
  return out;
}

const f32 = (x: ArrayLike<number>): Float64Array => Float64Array.from(Float32Array.from(x));

/**
 * Random case with kinks kept away from the finite-difference step: log-ratios within 2e-3 of
 * log(1 − ε_low), log(1 + ε_high) or log(c) are nudged, so central differences see a smooth function.
 */
function makeCase(rng: Random, N: number, T: number, o: Partial<Case> & { withRef?: boolean; withMask?: boolean; perSeqEps?: boolean } = {}): Case {
  const n = N * T;
  const logp = new Float64Array(n);
  const old = new Float64Array(n);
  const ref = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    logp[k] = -Math.abs(rng.normal()) * 2 - 0.05;
    old[k] = logp[k] - 0.4 * rng.normal();
    ref[k] = logp[k] - 0.5 * rng.normal();
  }
  let mask: Float64Array | null = null;
  if (o.withMask) {
    mask = new Float64Array(n);
    for (let i = 0; i < N; i++) {
      const empty = i % 3 === 1; // rows with no response tokens
      const len = empty ? 0 : 1 + rng.int(T);
      for (let t = 0; t < T; t++) mask[i * T + t] = t < len ? 1 : 0;
    }
  }
  const advPerToken = o.advPerToken ?? false;
  const adv = new Float64Array(advPerToken ? n : N);
  for (let k = 0; k < adv.length; k++) adv[k] = rng.normal();
  let epsLow: number | Float64Array = o.epsLow ?? 0.2;
  let epsHigh: number | Float64Array = o.epsHigh ?? 0.28;
  if (o.perSeqEps) {
    epsLow = f32(Array.from({ length: N }, () => 0.05 + 0.3 * rng.uniform()));
    epsHigh = f32(Array.from({ length: N }, () => 0.05 + 0.5 * rng.uniform()));
  }
  const c: Case = {
    N,
    T,
    logp: f32(logp),
    old: f32(old),
    ref: o.withRef ? f32(ref) : null,
    mask,
    adv: f32(adv),
    advPerToken,
    epsLow,
    epsHigh,
    dualClip: o.dualClip ?? null,
    klBeta: o.klBeta ?? 0,
    klScale: o.klScale ?? null,
    agg: o.agg ?? 'token-mean',
    normalizer: o.normalizer ?? null,
  };
  // Nudge log-ratios away from the clip / dual-clip kinks (in float32 after rounding).
  for (let i = 0; i < N; i++) {
    const el = typeof c.epsLow === 'number' ? c.epsLow : c.epsLow[i];
    const eh = typeof c.epsHigh === 'number' ? c.epsHigh : c.epsHigh[i];
    const kinks = [Math.log(1 - el), Math.log(1 + eh)];
    if (c.dualClip !== null) kinks.push(Math.log(c.dualClip));
    for (let t = 0; t < T; t++) {
      const k = i * T + t;
      for (const kk of kinks) {
        const d = c.logp[k] - c.old[k];
        if (Math.abs(d - kk) < 2e-3) c.old[k] = Math.fround(c.old[k] + (d > kk ? -4e-3 : 4e-3));
      }
    }
  }
  return c;
}

function tensors(c: Case, maskI32 = false): { opts: ops.ClippedPolicyLossOptions; all: Tensor[] } {
  const shape = [c.N, c.T];
  const all: Tensor[] = [];
  const mk = (v: ArrayLike<number>, s: number[]): Tensor => {
    const t = tensorFrom(v, s);
    all.push(t);
    return t;
  };
  const opts: ops.ClippedPolicyLossOptions = {
    oldLogp: mk(c.old, shape),
    advantages: mk(c.adv, c.advPerToken ? shape : [c.N]),
    epsLow: typeof c.epsLow === 'number' ? c.epsLow : mk(c.epsLow, [c.N]),
    epsHigh: typeof c.epsHigh === 'number' ? c.epsHigh : mk(c.epsHigh, [c.N]),
    agg: c.agg,
  };
  if (c.ref !== null) opts.refLogp = mk(c.ref, shape);
  if (c.mask !== null) {
    if (maskI32) {
      const m = tensor(Int32Array.from(c.mask), shape);
      all.push(m);
      opts.mask = m;
    } else {
      opts.mask = mk(c.mask, shape);
    }
  }
  if (c.dualClip !== null) opts.dualClip = c.dualClip;
  if (c.klBeta > 0) opts.klBeta = c.klBeta;
  if (c.klScale !== null) opts.klScale = mk(c.klScale, [c.N]);
  if (c.normalizer !== null) opts.normalizer = c.normalizer;
  return { opts, all };
}

describe('clippedPolicyLoss vs float64 reference', () => {
  const aggs: Agg[] = ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum'];
  test('every option combination: value, stats and gradient (central differences)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const before = memoryStats().count;
    let combos = 0;
    for (const agg of aggs)
      for (const kl of [false, true])
        for (const dual of [false, true])
          for (const perSeqEps of [false, true])
            for (const withMask of [false, true])
              for (const advPerToken of [false, true]) {
                const N = 1 + rng.int(6);
                const T = 1 + rng.int(9);
                const klScale = kl && rng.uniform() < 0.5 ? f32(Array.from({ length: N }, () => (rng.uniform() < 0.5 ? 0.5 : 1))) : null;
                const c = makeCase(rng, N, T, { agg, withRef: kl, klBeta: kl ? 0.3 : 0, klScale, dualClip: dual ? 2 : null, perSeqEps, withMask, advPerToken });
                const what = `agg=${agg} kl=${kl} dual=${dual} perSeqEps=${perSeqEps} mask=${withMask} advTok=${advPerToken} N=${N} T=${T}`;
                const { opts, all } = tensors(c, withMask && rng.uniform() < 0.5);
                let stats: ops.PolicyLossStats | null = null;
                gradCheck({
                  inputs: [c.logp],
                  shapes: [[N, T]],
                  ref: ([lp]) => [reference(c, lp).loss],
                  op: ([lp]) => {
                    const r = ops.clippedPolicyLoss(lp, opts);
                    stats = r.stats;
                    return r.loss;
                  },
                  h: 1e-6,
                  tol: 2e-4,
                  // The loss is a mean of O(1) terms (ratio × advantage, mean-zero advantages) that
                  // can cancel to ~0: judge the forward against that scale, not the sum (seed
                  // 680143384: token-mean with KL, N=3, T=2, relative error 5.6e-4 on a near-0 loss).
                  floor: 1,
                  maxCoords: 200,
                  seed,
                  what,
                });
                const ref = reference(c);
                const s = stats as unknown as ops.PolicyLossStats;
                expect(s.tokenCount).toBe(ref.tokens);
                const frac = (x: number): number => (ref.tokens > 0 ? x / ref.tokens : 0);
                expectClose([s.clipFracLow, s.clipFracHigh, s.dualClipFrac], [frac(ref.low), frac(ref.high), frac(ref.dual)], 1e-6, `${what} clip fractions`, seed);
                if (ref.tokens > 0) {
                  expectClose([s.ratioMean, s.ratioMin, s.ratioMax], [ref.ratioSum / ref.tokens, ref.ratioMin, ref.ratioMax], 1e-5, `${what} ratio stats`, seed);
                  expectClose([s.approxKl + 1, s.refKl + 1], [ref.approxKl / ref.tokens + 1, ref.refKl / ref.tokens + 1], 1e-5, `${what} kl stats`, seed);
                }
                expect(Math.abs(s.pgLoss + s.klLoss - ref.loss)).toBeLessThan(1e-4 * (1 + Math.abs(ref.loss)));
                for (const t of all) t.dispose();
                combos++;
              }
    expect(combos).toBe(96);
    expect(memoryStats().count).toBe(before);
  });

  test('explicit normalizer scales loss and gradient; all-masked batch gives 0, not NaN', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const c = makeCase(rng, 4, 6, { withMask: true });
    const a = tensors(c);
    const lp = tensorFrom(c.logp, [4, 6], true);
    const r1 = ops.clippedPolicyLoss(lp, a.opts);
    r1.loss.backward();
    const g1 = lp.grad!.toFloat32Array();
    lp.grad = null;
    const r2 = ops.clippedPolicyLoss(lp, { ...a.opts, normalizer: 2 * r1.stats.normalizer });
    r2.loss.backward();
    const g2 = lp.grad!.toFloat32Array();
    expectScalarClose(r2.loss.item() * 2, r1.loss.item(), 1e-6, 'loss halves', seed);
    expectClose(Array.from(g2, (x) => 2 * x), g1, 1e-6, 'grad halves', seed);
    const zero = tensorFrom(new Float64Array(24), [4, 6]);
    for (const agg of aggs) {
      lp.grad = null;
      const r = ops.clippedPolicyLoss(lp, { ...a.opts, mask: zero, agg });
      r.loss.backward();
      expect(r.loss.item()).toBe(0);
      expect(Array.from(lp.grad!.toFloat32Array()).every((x) => x === 0)).toBe(true);
      expect(r.stats.tokenCount).toBe(0);
      expect(r.stats.ratioMean).toBe(1);
    }
    for (const t of [...a.all, lp, zero, r1.loss, r2.loss]) t.dispose();
  });

  test('micro-batch invariance: parts with the global normalizer sum to the full batch', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const agg of aggs) {
      const N = 9;
      const T = 13;
      const c = makeCase(rng, N, T, { agg, withMask: true, withRef: true, klBeta: 0.1, perSeqEps: true, dualClip: 3 });
      const full = tensors(c);
      const lp = tensorFrom(c.logp, [N, T], true);
      const r = ops.clippedPolicyLoss(lp, full.opts);
      const globalNorm = r.stats.normalizer;
      r.loss.backward();
      const gFull = lp.grad!.toFloat32Array();
      const lossFull = r.loss.item();
      // Split rows 0..2, 3..6, 7..8 and use the global normalizer.
      const bounds = [0, 3, 7, N];
      const gParts = new Float64Array(N * T);
      let lossParts = 0;
      for (let p = 0; p + 1 < bounds.length; p++) {
        const [b, e] = [bounds[p], bounds[p + 1]];
        const rows = <X extends Float64Array | number>(x: X, per: number): X =>
          (typeof x === 'number' ? x : (x.slice(b * per, e * per) as X));
        const part: Case = {
          ...c,
          N: e - b,
          logp: rows(c.logp, T),
          old: rows(c.old, T),
          ref: c.ref === null ? null : rows(c.ref, T),
          mask: c.mask === null ? null : rows(c.mask, T),
          adv: rows(c.adv, c.advPerToken ? T : 1),
          epsLow: rows(c.epsLow, 1),
          epsHigh: rows(c.epsHigh, 1),
          normalizer: globalNorm,
        };
        const pt = tensors(part);
        const plp = tensorFrom(part.logp, [e - b, T], true);
        const pr = ops.clippedPolicyLoss(plp, pt.opts);
        pr.loss.backward();
        lossParts += pr.loss.item();
        gParts.set(plp.grad!.toFloat32Array(), b * T);
        for (const t of [...pt.all, plp, pr.loss]) t.dispose();
      }
      expectScalarClose(lossParts, lossFull, 1e-5, `${agg} loss of parts`, seed);
      expectClose(gParts, gFull, 1e-6, `${agg} gradient of parts`, seed);
      for (const t of [...full.all, lp, r.loss]) t.dispose();
    }
  });

  test('extreme ratios (|logp − oldLogp| and |refLogp − logp| up to 50) stay finite and match the clamped reference', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const N = 6;
    const T = 40;
    const c = makeCase(rng, N, T, { withRef: true, klBeta: 0.5, dualClip: 3, agg: 'seq-mean-token-mean' });
    for (let k = 0; k < N * T; k++) {
      c.old[k] = Math.fround(c.logp[k] + (rng.uniform() * 100 - 50));
      c.ref![k] = Math.fround(c.logp[k] + (rng.uniform() * 100 - 50));
    }
    const a = tensors(c);
    const lp = tensorFrom(c.logp, [N, T], true);
    const r = ops.clippedPolicyLoss(lp, a.opts);
    r.loss.backward();
    const g = lp.grad!.toFloat32Array();
    expect(Number.isFinite(r.loss.item())).toBe(true);
    expect(Array.from(g).every(Number.isFinite)).toBe(true);
    expect(Number.isFinite(r.stats.ratioMax) && Number.isFinite(r.stats.approxKl)).toBe(true);
    expectScalarClose(r.loss.item(), reference(c).loss, 1e-5, 'extreme loss', seed);
    for (const t of [...a.all, lp, r.loss]) t.dispose();
  });

  test('first on-policy epoch: r = 1, gradient is −A / normalizer per token', () => {
    const N = 3;
    const T = 4;
    const lpv = Array.from({ length: N * T }, (_, k) => -0.1 * (k + 1));
    const lp = tensor(lpv, [N, T], { requiresGrad: true });
    const old = tensor(lpv, [N, T]);
    const adv = tensor([1.5, -0.5, 0]);
    const r = ops.clippedPolicyLoss(lp, { oldLogp: old, advantages: adv, agg: 'token-mean' });
    r.loss.backward();
    const g = lp.grad!.toFloat32Array();
    for (let k = 0; k < N * T; k++) expect(g[k]).toBeCloseTo(-[1.5, -0.5, 0][Math.floor(k / T)] / (N * T), 7);
    expect(r.stats.ratioMin).toBe(1);
    expect(r.stats.ratioMax).toBe(1);
    for (const t of [lp, old, adv, r.loss]) t.dispose();
  });

  test('no-grad path computes the same loss and records nothing; tensors are freed', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const before = memoryStats().count;
    const c = makeCase(rng, 5, 11, { withRef: true, klBeta: 0.04, withMask: true });
    scope(() => {
      const a = tensors(c);
      const lp = tensorFrom(c.logp, [5, 11], true);
      const l1 = noGrad(() => ops.clippedPolicyLoss(lp, a.opts)).loss;
      expect(l1.requiresGrad).toBe(false);
      const l2 = ops.clippedPolicyLoss(lp, a.opts).loss;
      expect(l2.requiresGrad).toBe(true);
      expect(l1.item()).toBe(l2.item());
      l2.backward();
      expectScalarClose(l1.item(), reference(c).loss, 1e-5, 'no-grad value', seed);
    });
    expect(memoryStats().count).toBe(before);
  });

  test('upstream gradient scales the saved gradient', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const c = makeCase(rng, 3, 5, {});
    const a = tensors(c);
    const lp = tensorFrom(c.logp, [3, 5], true);
    ops.clippedPolicyLoss(lp, a.opts).loss.backward();
    const g1 = lp.grad!.toFloat32Array();
    lp.grad = null;
    const seedGrad = tensor(-2.5);
    ops.clippedPolicyLoss(lp, a.opts).loss.backward(seedGrad);
    expectClose(lp.grad!.toFloat32Array(), Array.from(g1, (x) => -2.5 * x), 1e-6, 'scaled grad', seed);
    for (const t of [...a.all, lp, seedGrad]) t.dispose();
  });
});

describe('clippedPolicyLoss bad inputs', () => {
  const N = 2;
  const T = 3;
  const mk = (): { lp: Tensor; old: Tensor; adv: Tensor; ref: Tensor } => ({
    lp: tensor(new Float32Array(N * T).fill(-1), [N, T]),
    old: tensor(new Float32Array(N * T).fill(-1), [N, T]),
    adv: tensor([1, -1]),
    ref: tensor(new Float32Array(N * T).fill(-1), [N, T]),
  });
  test('errors name the op, the argument, expected and actual', () => {
    const { lp, old, adv, ref } = mk();
    const f = (o: Partial<ops.ClippedPolicyLossOptions>, x: Tensor = lp): string =>
      errorOf(() => ops.clippedPolicyLoss(x, { oldLogp: old, advantages: adv, ...o } as ops.ClippedPolicyLossOptions));
    expect(f({}, tensor([1, 2, 3]))).toMatch(/clippedPolicyLoss: logp: expected rank 2, got rank 1/);
    expect(f({}, tensor(new Int32Array(6), [2, 3]))).toMatch(/clippedPolicyLoss: logp: expected dtype f32, got i32/);
    expect(f({ oldLogp: tensor([1, 2], [1, 2]) })).toMatch(/clippedPolicyLoss: oldLogp: expected shape \[2, 3\], got \[1, 2\]/);
    expect(f({ advantages: tensor([1, 2, 3]) })).toMatch(/clippedPolicyLoss: advantages: expected shape \[2\] \(per sequence\) or \[2, 3\] \(per token\), got \[3\]/);
    expect(f({ epsLow: 1.5 })).toMatch(/clippedPolicyLoss: epsLow: expected <= 1, got 1.5/);
    expect(f({ epsLow: tensor([0.2, -0.1]) })).toMatch(/clippedPolicyLoss: epsLow: expected finite values in \[0, 1\], got -0.1/);
    expect(f({ epsHigh: tensor([0.2]) })).toMatch(/clippedPolicyLoss: epsHigh: expected shape \[2\], got \[1\]/);
    expect(f({ dualClip: 0.5 })).toMatch(/clippedPolicyLoss: dualClip: expected a finite number > 1, got 0.5/);
    expect(f({ klBeta: 0.1 })).toMatch(/clippedPolicyLoss: refLogp: expected a \[2, 3\] tensor when klBeta > 0, got none/);
    expect(f({ klBeta: 0.1, refLogp: ref, klScale: tensor([1, NaN]) })).toMatch(/clippedPolicyLoss: klScale: expected finite values/);
    expect(f({ agg: 'mean' as never })).toMatch(/clippedPolicyLoss: agg: expected 'token-mean', 'seq-mean-token-mean' or 'seq-mean-token-sum', got "mean"/);
    expect(f({ normalizer: 0 })).toMatch(/clippedPolicyLoss: normalizer: expected a finite number > 0, got 0/);
    expect(f({ eps_low: 0.2 } as never)).toMatch(/clippedPolicyLoss: unknown option 'eps_low'/);
    expect(f({ mask: tensor([1, 1, 1], [1, 3]) })).toMatch(/clippedPolicyLoss: mask: expected shape \[2, 3\], got \[1, 3\]/);
    expect(errorOf(() => ops.clippedPolicyLoss(lp, undefined as never))).toMatch(/clippedPolicyLoss: opts: expected an options object/);
    const gone = tensor([1, 1]);
    gone.dispose();
    expect(f({ advantages: gone })).toMatch(/clippedPolicyLoss: advantages: tensor \[2\] has been disposed/);
    for (const t of [lp, old, adv, ref]) t.dispose();
  });

  test('non-finite values at masked-in tokens are reported with their position; masked-out ones are ignored', () => {
    const { lp, old, adv, ref } = mk();
    const bad = tensor([-1, -1, -1, -1, NaN, -1], [N, T]);
    expect(errorOf(() => ops.clippedPolicyLoss(bad, { oldLogp: old, advantages: adv }))).toMatch(
      /clippedPolicyLoss: logp: expected finite values at masked-in tokens, got nan at \[1, 1\]/,
    );
    expect(errorOf(() => ops.clippedPolicyLoss(lp, { oldLogp: bad, advantages: adv }))).toMatch(/clippedPolicyLoss: oldLogp: expected finite values.*\[1, 1\]/);
    expect(errorOf(() => ops.clippedPolicyLoss(lp, { oldLogp: old, advantages: tensor([1, Infinity]) }))).toMatch(/clippedPolicyLoss: advantages: expected finite values, got inf at \[1\]/);
    expect(errorOf(() => ops.clippedPolicyLoss(lp, { oldLogp: old, advantages: adv, refLogp: bad, klBeta: 0.1 }))).toMatch(/clippedPolicyLoss: refLogp: expected finite values/);
    const mask = tensor([1, 1, 1, 1, 0, 1], [N, T]);
    const r = ops.clippedPolicyLoss(bad, { oldLogp: old, advantages: adv, mask });
    expect(Number.isFinite(r.loss.item())).toBe(true);
    for (const t of [lp, old, adv, ref, bad, mask, r.loss]) t.dispose();
  });
});

// Runs only where a GPU answers (the CUDA kernels are compiled in CI but can only run on a lent GPU).
const onGpu = backendInfo().cuda ? test : test.skip;
describe('CUDA kernels match the CPU kernels', () => {
  onGpu('clippedPolicyLoss and fusedLinearPolicyLoss on cuda vs cpu (values, stats, gradients)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const c = makeCase(rng, 7, 300, { withRef: true, klBeta: 0.1, withMask: true, perSeqEps: true, dualClip: 3, agg: 'seq-mean-token-mean' });
    const results = (['cpu', 'cuda'] as const).map((device) =>
      scope(() => {
        const a = tensors(c);
        const mv = (t: Tensor | number | undefined): Tensor | number | undefined => (t instanceof Tensor ? t.to(device) : t);
        const o = a.opts;
        const lp = tensorFrom(c.logp, [c.N, c.T]).to(device);
        lp.requiresGrad = true;
        const r = ops.clippedPolicyLoss(lp, {
          ...o,
          oldLogp: o.oldLogp.to(device),
          refLogp: o.refLogp?.to(device),
          mask: o.mask?.to(device),
          advantages: o.advantages.to(device),
          epsLow: mv(o.epsLow),
          epsHigh: mv(o.epsHigh),
        });
        r.loss.backward();
        return { loss: r.loss.item(), grad: lp.grad!.toFloat32Array(), stats: r.stats };
      }),
    );
    expectClose([results[1].loss], [results[0].loss], 1e-4, 'cuda loss', seed);
    expectClose(results[1].grad, results[0].grad, 1e-4, 'cuda grad', seed);
    expect(results[1].stats.tokenCount).toBe(results[0].stats.tokenCount);

    const M = 40;
    const D = 16;
    const V = 3001;
    const hv = Float32Array.from(Array.from({ length: M * D }, () => rng.normal() * 0.5));
    const wv = Float32Array.from(Array.from({ length: V * D }, () => rng.normal() * 0.5));
    const y = Int32Array.from({ length: M }, () => rng.int(V));
    const fl = (['cpu', 'cuda'] as const).map((device) =>
      scope(() => {
        const h = tensor(hv, [M, D], { device, requiresGrad: true });
        const w = tensor(wv, [V, D], { device, requiresGrad: true });
        const r = ops.fusedLinearPolicyLoss(h, w, tensor(y, [M], { device }), {
          oldLogp: tensor(new Float32Array(M).fill(-8), [M], { device }),
          advantages: tensor(Float32Array.from({ length: M }, (_, i) => Math.sin(i)), [M], { device }),
          sftMask: tensor(Float32Array.from({ length: M }, (_, i) => (i % 5 === 0 ? 1 : 0)), [M], { device }),
          sftWeight: 0.3,
          entropyCoef: 0.01,
          chunkVocab: 512,
        });
        r.loss.backward();
        return { loss: r.loss.item(), gh: h.grad!.toFloat32Array(), gw: w.grad!.toFloat32Array(), logp: r.logp.toFloat32Array() };
      }),
    );
    expectClose([fl[1].loss], [fl[0].loss], 1e-4, 'cuda fused loss', seed);
    expectClose(fl[1].logp, fl[0].logp, 1e-4, 'cuda fused logp', seed);
    expectClose(fl[1].gh, fl[0].gh, 1e-4, 'cuda fused dhidden', seed);
    expectClose(fl[1].gw, fl[0].gw, 1e-4, 'cuda fused dweight', seed);
  });
});
