import { auc, gauc, ndcgAtK, hitRateAtK, reciprocalRank, rankingMetrics, offsetsFromGroups } from '../src/metrics';
import { Random } from '../src/tensor';

/** Brute force: average a metric over every permutation of the tied items (small lists only). */
function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs.slice()];
  const out: T[][] = [];
  xs.forEach((x, i) => {
    for (const p of permutations([...xs.slice(0, i), ...xs.slice(i + 1)])) out.push([x, ...p]);
  });
  return out;
}

/** Expected metric over all orders consistent with the scores (ties broken every possible way). */
function expectedOverTies(scores: number[], labels: number[], metric: (rankedLabels: number[]) => number): number {
  let total = 0;
  let count = 0;
  for (const perm of permutations(scores.map((_, i) => i))) {
    let ok = true;
    for (let t = 1; t < perm.length; t++) if (scores[perm[t]] > scores[perm[t - 1]]) ok = false;
    if (!ok) continue;
    total += metric(perm.map((i) => labels[i]));
    count++;
  }
  return total / count;
}

function dcgOf(ranked: number[], k: number): number {
  let d = 0;
  for (let p = 0; p < Math.min(k, ranked.length); p++) d += ranked[p] / Math.log2(p + 2);
  return d;
}

describe('auc', () => {
  test('hand-computed: 3 positives, 2 negatives', () => {
    // pairs (pos, neg): pos scores .9 .6 .3, neg .8 .2 -> wins: .9>both(2), .6>.2(1), .3>.2(1) = 4/6
    expect(auc([0.9, 0.8, 0.6, 0.3, 0.2], [1, 0, 1, 1, 0])).toBeCloseTo(4 / 6, 12);
  });
  test('ties count one half', () => {
    expect(auc([0.5, 0.5], [1, 0])).toBe(0.5);
    // pos .7 vs negs .7 (tie, 0.5) and .1 (win) -> 1.5/2
    expect(auc([0.7, 0.7, 0.1], [1, 0, 0])).toBeCloseTo(0.75, 12);
  });
  test('single class gives NaN; bad input errors', () => {
    expect(auc([1, 2], [1, 1])).toBeNaN();
    expect(() => auc([1], [1, 0])).toThrow(/same length/);
    expect(() => auc([NaN, 1], [1, 0])).toThrow(/scores\[0\] must be finite/);
    expect(() => auc([1, 1], [-1, 0])).toThrow(/labels\[0\]/);
  });
  test('matches the pairwise definition on random data with ties', () => {
    const rng = new Random(123);
    const n = 60;
    const s = Array.from({ length: n }, () => rng.int(8));
    const l = Array.from({ length: n }, () => (rng.uniform() < 0.3 ? 1 : 0));
    let num = 0;
    let den = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      if (l[i] > 0 && l[j] === 0) {
        den++;
        num += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
      }
    }
    expect(auc(s, l)).toBeCloseTo(num / den, 12);
  });
});

describe('gauc', () => {
  test('impression-weighted, single-class groups skipped', () => {
    // group 0 (3 rows): AUC 1; group 1 (2 rows): all negative -> skipped; group 2 (4 rows): AUC 0.5
    const scores = [3, 2, 1, 9, 8, 1, 2, 3, 4];
    const labels = [1, 0, 0, 0, 0, 1, 0, 0, 1];
    // group 2: pos scores 1 and 4, negs 2,3 -> pairs: 1<2,1<3,4>2,4>3 -> 2/4
    const r = gauc(scores, labels, [0, 3, 5, 9]);
    expect(r.groups).toBe(2);
    expect(r.skipped).toBe(1);
    expect(r.gauc).toBeCloseTo((3 * 1 + 4 * 0.5) / 7, 12);
  });
  test('bad offsets are rejected', () => {
    expect(() => gauc([1, 2], [1, 0], [0, 1])).toThrow(/end at 2/);
    expect(() => gauc([1, 2], [1, 0], [0, 2, 1, 2])).toThrow(/non-decreasing/);
  });
  test('offsetsFromGroups', () => {
    expect(Array.from(offsetsFromGroups(['a', 'a', 'b', 'c', 'c']))).toEqual([0, 2, 3, 5]);
    expect(Array.from(offsetsFromGroups([]))).toEqual([0]);
    expect(() => offsetsFromGroups([1, 2, 1])).toThrow(/not contiguous/);
  });
});

describe('ndcg / hr / mrr', () => {
  test('NDCG@k hand-computed without ties', () => {
    // ranked labels by score: [0, 1, 1, 0]; DCG@3 = 1/log2(3) + 1/log2(4); IDCG@3 = 1 + 1/log2(3)
    const v = ndcgAtK([4, 3, 2, 1], [0, 1, 1, 0], 3);
    expect(v).toBeCloseTo((1 / Math.log2(3) + 0.5) / (1 + 1 / Math.log2(3)), 12);
    expect(ndcgAtK([4, 3, 2, 1], [0, 0, 0, 0], 3)).toBeNaN();
    // graded exp2 gains: labels [2, 0, 1]; order by scores [.1, .9, .5] -> [0, 1, 2]
    const e = ndcgAtK([0.1, 0.9, 0.5], [2, 0, 1], 2, 'exp2');
    expect(e).toBeCloseTo((1 / Math.log2(3)) / (3 + 1 / Math.log2(3)), 12);
  });
  test('ties: constant scorer gets the expectation over random orders', () => {
    const s = [1, 1, 1, 1];
    const l = [1, 0, 0, 0];
    // the positive is equally likely at each position
    expect(reciprocalRank(s, l)).toBeCloseTo((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4, 12);
    expect(hitRateAtK(s, l, 1)).toBeCloseTo(0.25, 12);
    expect(hitRateAtK(s, l, 3)).toBeCloseTo(0.75, 12);
    // two positives of four, k = 1: P(first is positive) = 1/2
    expect(hitRateAtK(s, [1, 1, 0, 0], 1)).toBeCloseTo(0.5, 12);
    // and k = 2: 1 - C(2,2)/C(4,2) = 5/6
    expect(hitRateAtK(s, [1, 1, 0, 0], 2)).toBeCloseTo(5 / 6, 12);
  });
  test('tie handling equals brute force over all tie orders (random small lists)', () => {
    const rng = new Random(7);
    for (let trial = 0; trial < 40; trial++) {
      const n = 1 + rng.int(6);
      const s = Array.from({ length: n }, () => rng.int(3));
      const l = Array.from({ length: n }, () => (rng.uniform() < 0.4 ? rng.int(3) : 0));
      if (!l.some((x) => x > 0)) l[rng.int(n)] = 1;
      const k = 1 + rng.int(n);
      const ideal = l.slice().sort((a, b) => b - a);
      const nd = expectedOverTies(s, l, (r) => dcgOf(r, k) / dcgOf(ideal, k));
      const hr = expectedOverTies(s, l, (r) => (r.slice(0, k).some((x) => x > 0) ? 1 : 0));
      const rr = expectedOverTies(s, l, (r) => 1 / (r.findIndex((x) => x > 0) + 1));
      expect(ndcgAtK(s, l, k)).toBeCloseTo(nd, 10);
      expect(hitRateAtK(s, l, k)).toBeCloseTo(hr, 10);
      expect(reciprocalRank(s, l)).toBeCloseTo(rr, 10);
    }
  });
  test('k validation', () => {
    expect(() => ndcgAtK([1], [1], 0)).toThrow(/k must be an integer >= 1/);
  });
});

describe('rankingMetrics', () => {
  test('aggregates over lists and skips lists without positives', () => {
    const scores = [3, 2, 1, 5, 4, 2, 1];
    const labels = [0, 1, 0, 0, 0, 1, 0];
    const offsets = [0, 3, 5, 7];
    const m = rankingMetrics(scores, labels, offsets, { k: 2 });
    expect(m.lists).toBe(3);
    expect(m.listsWithPositive).toBe(2);
    // list 0: positive at rank 2 -> rr 1/2, hr@2 1, ndcg@2 = (1/log2 3)/1; list 2: rank 1 -> all 1
    expect(m.mrr).toBeCloseTo((0.5 + 1) / 2, 12);
    expect(m.hr).toBeCloseTo(1, 12);
    expect(m.ndcg).toBeCloseTo((1 / Math.log2(3) + 1) / 2, 12);
    expect(m.gauc).toBeCloseTo((3 * 0.5 + 2 * 1) / 5, 12);
    expect(m.gaucLists).toBe(2);
    expect(m.auc).toBeCloseTo(auc(scores, labels), 12);
  });
});
