// rl helpers: advantages against hand-computed float64 values, ETR (α = 0, λ_min = 1 reproduces
// GRPO bit for bit through the loss), DAPO filter, CLPO difficulty / KL scale, presets, bad inputs.
import { rl, ops, tensor, Random } from '../src';
import { freshSeed, errorOf, expectClose, randomArray } from './helpers';

describe('group advantages', () => {
  test('GRPO (unbiased std), Dr.GRPO, RLOO and singleton groups match hand-computed values', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const G = 5;
    const R = Array.from(randomArray(rng, 4 * G));
    const grpo = rl.groupAdvantages(R, { groupSize: G });
    const dr = rl.groupAdvantages(R, { groupSize: G }, { mode: 'drgrpo' });
    const rloo = rl.groupAdvantages(R, { groupSize: G }, { mode: 'rloo' });
    for (let g = 0; g < 4; g++) {
      const xs = R.slice(g * G, g * G + G);
      const mean = xs.reduce((a, b) => a + b, 0) / G;
      const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (G - 1));
      for (let j = 0; j < G; j++) {
        const i = g * G + j;
        expect(grpo[i]).toBeCloseTo((R[i] - mean) / (std + 1e-6), 12);
        expect(dr[i]).toBeCloseTo(R[i] - mean, 12);
        const others = xs.filter((_, k) => k !== j);
        expect(rloo[i]).toBeCloseTo(R[i] - others.reduce((a, b) => a + b, 0) / (G - 1), 12);
      }
    }
    // Non-contiguous group ids and a singleton group (verl: mean 0, std 1).
    const a = rl.groupAdvantages([1, 0, 3, 1, 7], { groupIds: ['p', 'q', 'p', 'q', 'solo'] }, { std: 'biased' });
    expect(a[0]).toBeCloseTo((1 - 2) / (1 + 1e-6), 12);
    expect(a[2]).toBeCloseTo((3 - 2) / (1 + 1e-6), 12);
    expect(a[1]).toBeCloseTo((0 - 0.5) / (0.5 + 1e-6), 12);
    expect(a[4]).toBeCloseTo(7 / (1 + 1e-6), 12);
    // All-equal group: zero advantages, no NaN.
    expect(Array.from(rl.groupAdvantages([1, 1, 1], { groupSize: 3 }))).toEqual([0, 0, 0]);
  });

  test('stepwise advantages: one group-normalised advantage per step index, spread over tokens', () => {
    const steps = [
      [1, 0.5],
      [0, 0.5, 1],
      [1, 1.5],
    ];
    const A = rl.stepwiseAdvantages(steps, { groupSize: 3 });
    const step0 = rl.groupAdvantages([1, 0, 1], { groupSize: 3 });
    const step1 = rl.groupAdvantages([0.5, 0.5, 1.5], { groupSize: 3 });
    expect(A[0][0]).toBeCloseTo(step0[0], 12);
    expect(A[1][1]).toBeCloseTo(step1[1], 12);
    expect(A[1][2]).toBeCloseTo(1 / (1 + 1e-6), 12); // only response 1 has step 2: singleton
    const tok = rl.stepwiseTokenAdvantages(A, [[1, 4], [1, 2, 5], [1, 3]], 6);
    expect(tok.length).toBe(18);
    expect(tok[0]).toBeCloseTo(A[0][0], 6);
    expect(tok[3]).toBeCloseTo(A[0][1], 6);
    expect(tok[4]).toBe(0);
    expect(tok[6 + 4]).toBeCloseTo(A[1][2], 6);
    expect(errorOf(() => rl.stepwiseTokenAdvantages(A, [[1, 4], [1, 2, 9], [1, 3]], 6))).toMatch(/stepwiseTokenAdvantages: stepEnds\[1\]\[2\]: expected an integer in \[2, 6\], got 9/);
  });

  test('bad inputs name the function, argument, expected and actual', () => {
    expect(errorOf(() => rl.groupAdvantages([1, NaN], { groupSize: 2 }))).toMatch(/groupAdvantages: rewards: expected finite numbers, got NaN at index 1/);
    expect(errorOf(() => rl.groupAdvantages([1, 2, 3], { groupSize: 2 }))).toMatch(/groupAdvantages: groupSize: expected a divisor of the number of responses 3, got 2/);
    expect(errorOf(() => rl.groupAdvantages([1, 2], { groupIds: [1] }))).toMatch(/groupAdvantages: groupIds: expected 2 ids \(one per response\), got 1/);
    expect(errorOf(() => rl.groupAdvantages([1, 2], { groupSize: 2 }, { mode: 'ppo' as never }))).toMatch(/groupAdvantages: mode: expected 'grpo', 'drgrpo' or 'rloo', got "ppo"/);
    expect(errorOf(() => rl.etrBounds([1], [1.5]))).toMatch(/etrBounds: passRates: expected values in \[0, 1\], got 1.5 at index 0/);
    expect(errorOf(() => rl.etrBounds([1, 2], [0.5]))).toMatch(/etrBounds: passRates: expected 2 values \(one per response\), got 1/);
    expect(errorOf(() => rl.clpoDifficulty(0.5, { tauHard: 0.8, tauMedium: 0.7 }))).toMatch(/clpoDifficulty: thresholds: expected 0 <= tauHard <= tauMedium <= 1/);
    expect(errorOf(() => rl.dapoOverlongPenalty(10, 5, 8))).toMatch(/dapoOverlongPenalty: cacheLen: expected <= maxLen \(5\), got 8/);
  });
});

describe('ETR bounds', () => {
  test('formula on known values; α = 0, λ_min = 1 gives the GRPO bounds exactly', () => {
    const A = [2, -0.5, 0, 4];
    const p = [0.5, 0.25, 0, 1];
    const b = rl.etrBounds(A, p, { epsLow: 0.2, epsHigh: 0.28, alpha: 0.5, mMin: 0.5, mMax: 2, lambdaMin: 0.5 });
    const want = (a: number, pp: number, e: number): number => e * Math.min(Math.max(1 + 0.5 * (Math.abs(a) - 1), 0.5), 2) * (0.5 + 0.5 * 4 * pp * (1 - pp));
    for (let i = 0; i < 4; i++) {
      expect(b.epsHigh[i]).toBeCloseTo(want(A[i], p[i], 0.28), 14);
      expect(b.epsLow[i]).toBeCloseTo(Math.min(1, want(A[i], p[i], 0.2)), 14);
    }
    const g = rl.etrBounds(A, p, { epsLow: 0.2, epsHigh: 0.28, alpha: 0, lambdaMin: 1 });
    expect(Array.from(g.epsLow)).toEqual([0.2, 0.2, 0.2, 0.2]);
    expect(Array.from(g.epsHigh)).toEqual([0.28, 0.28, 0.28, 0.28]);
    const only = rl.etrBounds(A, p, { widenOnlyHigh: true });
    expect(Array.from(only.epsLow)).toEqual([0.2, 0.2, 0.2, 0.2]);
  });

  test('ETR with α = 0, λ_min = 1 through clippedPolicyLoss equals GRPO bit for bit (loss and gradient)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const G = 4;
    const N = 3 * G;
    const T = 17;
    const rewards = Array.from({ length: N }, () => (rng.uniform() < 0.5 ? 1 : 0));
    const adv = rl.groupAdvantages(rewards, { groupSize: G });
    const pass = rl.groupPassRates(rewards, { groupSize: G });
    const b = rl.etrBounds(adv, pass, { epsLow: 0.2, epsHigh: 0.28, alpha: 0, lambdaMin: 1 });
    const lpv = Float32Array.from(randomArray(rng, N * T, 0.5), (x) => -Math.abs(x) - 0.1);
    const oldv = Float32Array.from(lpv, (x) => x + 0.3 * rng.normal());
    const old = tensor(oldv, [N, T]);
    const A = tensor(Float32Array.from(adv), [N]);
    const run = (epsLow: number | ReturnType<typeof tensor>, epsHigh: number | ReturnType<typeof tensor>): [number, Float32Array] => {
      const lp = tensor(lpv, [N, T], { requiresGrad: true });
      const r = ops.clippedPolicyLoss(lp, { oldLogp: old, advantages: A, epsLow, epsHigh, dualClip: 3 });
      r.loss.backward();
      const out: [number, Float32Array] = [r.loss.item(), lp.grad!.toFloat32Array()];
      lp.dispose();
      r.loss.dispose();
      return out;
    };
    const [l1, g1] = run(0.2, 0.28);
    const el = tensor(Float32Array.from(b.epsLow), [N]);
    const eh = tensor(Float32Array.from(b.epsHigh), [N]);
    const [l2, g2] = run(el, eh);
    expect(l2).toBe(l1);
    expect(Array.from(g2)).toEqual(Array.from(g1));
    for (const t of [old, A, el, eh]) t.dispose();
  });

  test('group weights: σ_g / mean σ, zero-variance groups get 0', () => {
    const w = rl.etrGroupWeights([1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1], { groupSize: 4 });
    const s1 = Math.sqrt(0.75 * 0.25);
    const mean = (s1 + 0 + 0.5) / 3;
    expectClose(Array.from(w), [...Array(4).fill(s1 / mean), 0, 0, 0, 0, ...Array(4).fill(0.5 / mean)], 1e-12, 'etr weights');
  });
});

describe('DAPO and CLPO', () => {
  test('dynamic-sampling filter drops groups whose rewards are all equal', () => {
    const r = rl.dapoFilter([1, 1, 1, 0, 1, 0, 0, 0, 0, 0.5, 0.5, 0.5], { groupSize: 3 });
    expect(r.keep).toEqual([false, false, false, true, true, true, false, false, false, false, false, false]);
    expect(r.indices).toEqual([3, 4, 5]);
    expect(r.keptGroups).toBe(1);
    expect(r.droppedGroups).toBe(3);
    expect(rl.dapoOverlongPenalty(100, 200, 50)).toBe(0);
    expect(rl.dapoOverlongPenalty(175, 200, 50)).toBeCloseTo(-0.5, 12);
    expect(rl.dapoOverlongPenalty(250, 200, 50)).toBe(-1);
  });

  test('CLPO difficulty thresholds (hard includes 0 and τ_h, medium includes τ_m) and KL scale', () => {
    expect(rl.clpoDifficulty(0)).toBe('hard');
    expect(rl.clpoDifficulty(0.3)).toBe('hard');
    expect(rl.clpoDifficulty(0.31)).toBe('medium');
    expect(rl.clpoDifficulty(0.7)).toBe('medium');
    expect(rl.clpoDifficulty(0.75)).toBe('easy');
    expect(rl.clpoDifficulty(0.75, { tauHard: 0.25, tauMedium: 0.75 })).toBe('medium');
    const correct = [0, 0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1];
    const groups = rl.clpoClassify(correct, { groupSize: 4 });
    expect(groups.map((g) => [g.acc, g.difficulty])).toEqual([
      [0.25, 'hard'],
      [0.5, 'medium'],
      [1, 'easy'],
    ]);
    const d = rl.clpoResponseDifficulty(correct, { groupSize: 4 });
    expect(Array.from(rl.clpoKlScale(d))).toEqual([0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1, 1, 1, 1, 1]);
  });
});

describe('presets', () => {
  test('expand to explicit options that clippedPolicyLoss accepts; overrides merge', () => {
    const names = Object.keys(rl.presets) as (keyof typeof rl.presets)[];
    expect(names.sort()).toEqual(['clpo', 'dapo', 'drgrpo', 'etr', 'grpo', 'modeBalanced']);
    const lp = tensor([[-1, -2, -0.5]], undefined, { requiresGrad: true });
    const old = tensor([[-1.1, -1.5, -0.6]]);
    const ref = tensor([[-1, -1.8, -0.7]]);
    const adv = tensor([0.7]);
    for (const n of names) {
      const p = rl.presets[n]();
      expect(p.name).toBe(n);
      expect(p.source.length).toBeGreaterThan(10);
      const r = ops.clippedPolicyLoss(lp, { ...p.loss, oldLogp: old, advantages: adv, refLogp: ref });
      expect(Number.isFinite(r.loss.item())).toBe(true);
      r.loss.dispose();
    }
    expect(rl.presets.dapo().loss).toEqual({ epsLow: 0.2, epsHigh: 0.28, klBeta: 0, agg: 'token-mean' });
    expect(rl.presets.clpo().loss.dualClip).toBe(3);
    expect(rl.presets.drgrpo().advantage.mode).toBe('drgrpo');
    expect(rl.presets.grpo({ loss: { klBeta: 0 } }).loss).toEqual({ epsLow: 0.2, epsHigh: 0.2, klBeta: 0, agg: 'seq-mean-token-mean' });
    for (const t of [lp, old, ref, adv]) t.dispose();
  });
});
