// nn.FeatureGroups: records → one token per group + mask, against a float64 reference of the
// documented rules (normalisation + clip, missing indicator, OOV / MISSING rows, bag mean, empty bag),
// edge cases, fit(), gradients of projections and embedding tables, bad inputs.
import { Random, memoryStats, nn, scope, tensor, type Tensor } from '../src';
import type { CategoricalFeatureSpec, DenseFeatureSpec, FeatureGroupSpec, FeatureRecord, RawFeatureValue } from '../src/nn';
import { errorOf, expectClose, freshSeed } from './helpers';
import { layerNorm, linear, paramsOf, type Params } from './hfg-reference';

const D = 6;
const spec: FeatureGroupSpec[] = [
  { name: 'text', features: [{ name: 'bm25', kind: 'dense', mean: 2, std: 3 }, { name: 'cover', kind: 'dense', mean: 0.5, std: 0.25 }] },
  { name: 'item', features: [{ name: 'ctr', kind: 'dense', mean: -3, std: 1 }, { name: 'category', kind: 'categorical', vocab: ['shoes', 'bags', 'hats'], embeddingDim: 4 }] },
  { name: 'user', features: [{ name: 'tags', kind: 'bag', vocab: ['a', 'b', 'c', 'd'], embeddingDim: 3 }, { name: 'device', kind: 'categorical', vocab: [1, 2], embeddingDim: 2 }] },
];

// Candidates covering every rule: NaN / undefined / Infinity values, a value far outside the
// clip range, unseen and missing categories, empty / missing / partly unseen bags, missing groups.
const records: FeatureRecord[] = [
  { text: { bm25: 4, cover: 0.6 }, item: { ctr: -2.5, category: 'bags' }, user: { tags: ['a', 'c'], device: 2 } },
  { item: { ctr: -3.5, category: 'socks' }, user: { tags: [], device: 1 } }, // text group absent; unseen category; empty bag
  { text: { bm25: NaN, cover: undefined }, item: null, user: { tags: ['z', 'a', 'a'], device: 3 } }, // NaN/undefined; item null; unseen tag + device
  { text: { bm25: 1e6, cover: -Infinity }, item: { ctr: Infinity }, user: { device: null } }, // clipped; ±Infinity; missing category; missing bag
  { text: { bm25: 0, cover: 0.5 }, item: { ctr: -3, category: 'shoes' }, user: null },
];

/** Float64 reference of the documented rules, over the module's parameters. */
function reference(P: Params, recs: FeatureRecord[], clip = 10): { tokens: Float64Array; mask: Float64Array } {
  const N = recs.length;
  const G = spec.length;
  const tokens = new Float64Array(N * G * D);
  const mask = new Float64Array(N * G);
  spec.forEach((g, gi) => {
    const dense = g.features.filter((f): f is DenseFeatureSpec => f.kind === 'dense');
    const cats = g.features.filter((f): f is CategoricalFeatureSpec => f.kind !== 'dense');
    const widths = cats.map((c) => c.embeddingDim as number);
    const W = 2 * dense.length + widths.reduce((a, b) => a + b, 0);
    const x = new Float64Array(N * W);
    for (let n = 0; n < N; n++) {
      const e = recs[n][g.name];
      mask[n * G + gi] = e == null ? 0 : 1;
      if (e == null) continue;
      let col = 0;
      for (const f of dense) {
        const v = e[f.name];
        if (typeof v === 'number' && Number.isFinite(v)) x[n * W + col] = Math.max(-clip, Math.min(clip, (v - (f.mean as number)) / (f.std as number)));
        else x[n * W + col + 1] = 1;
        col += 2;
      }
      cats.forEach((f, ci) => {
        const E = widths[ci];
        const table = P.get(`${g.name}.emb.${f.name}.weight`) as Float64Array;
        const row = (v: RawFeatureValue): number => {
          if (v === undefined || v === null) return 1; // MISSING
          const k = f.vocab.indexOf(v as string | number);
          return k < 0 ? 0 : 2 + k; // OOV = 0
        };
        const v = e[f.name];
        if (f.kind === 'categorical') {
          const r = row(v);
          for (let c = 0; c < E; c++) x[n * W + col + c] = table[r * E + c];
        } else {
          const bag = (v ?? []) as (string | number)[];
          if (bag.length === 0) for (let c = 0; c < E; c++) x[n * W + col + c] = table[1 * E + c]; // EMPTY
          for (const item of bag) {
            const r = row(item);
            for (let c = 0; c < E; c++) x[n * W + col + c] += table[r * E + c] / bag.length;
          }
        }
        col += E;
      });
    }
    const h = linear(x, N, W, P.get(`${g.name}.proj.weight`) as Float64Array, P.get(`${g.name}.proj.bias`) as Float64Array, D);
    const t = layerNorm(h, N, D, P.get(`${g.name}.norm.weight`) as Float64Array, P.get(`${g.name}.norm.bias`) as Float64Array);
    for (let n = 0; n < N; n++) for (let c = 0; c < D; c++) tokens[(n * G + gi) * D + c] = mask[n * G + gi] * t[n * D + c];
  });
  return { tokens, mask };
}

function tokenOf(tokens: Float32Array, n: number, g: number, G: number): number[] {
  return Array.from(tokens.subarray((n * G + g) * D, (n * G + g + 1) * D));
}

describe('nn.FeatureGroups', () => {
  test('tokens and mask match the float64 reference of the documented rules', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const fg = new nn.FeatureGroups(spec, { dim: D, seed });
    // Non-trivial LayerNorm affine parameters so they are checked too.
    for (const [name, p] of fg.namedParameters()) if (name.includes('norm')) p.storage.copyFromHost(Float32Array.from({ length: p.size }, () => (name.endsWith('weight') ? 1 : 0) + 0.3 * rng.normal()));
    const before = memoryStats().count;
    const { tokens, mask } = scope(() => fg.forward(records));
    expect(tokens.shape).toEqual([records.length, 3, D]);
    expect(fg.groupNames).toEqual(['text', 'item', 'user']);
    const ref = reference(paramsOf(fg.namedParameters()), records);
    expect(Array.from(mask.toFloat32Array())).toEqual(Array.from(ref.mask));
    expect(Array.from(mask.toFloat32Array())).toEqual([1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0]);
    const t = tokens.toFloat32Array();
    expect(t.every(Number.isFinite)).toBe(true);
    expectClose(t, ref.tokens, 1e-5, 'FeatureGroups tokens', seed);
    // Missing groups are exactly zero tokens.
    expect(tokenOf(t, 1, 0, 3).every((v) => v === 0)).toBe(true);
    expect(tokenOf(t, 2, 1, 3).every((v) => v === 0)).toBe(true);
    expect(tokenOf(t, 4, 2, 3).every((v) => v === 0)).toBe(true);
    tokens.dispose();
    mask.dispose();
    expect(memoryStats().count).toBe(before);
    fg.dispose();
  });

  test('edge rules: NaN = undefined = Infinity (imputed + indicator), unseen categories share OOV, empty bag = missing bag', () => {
    const fg = new nn.FeatureGroups(spec, { dim: D, seed: 5 });
    const recs: FeatureRecord[] = [
      { text: { bm25: NaN, cover: 0.5 } },
      { text: { bm25: undefined, cover: 0.5 } },
      { text: { cover: 0.5 } },
      { text: { bm25: Infinity, cover: 0.5 } },
      { text: { bm25: 2, cover: 0.5 } }, // the mean: z = 0 but indicator 0 → differs from missing
      { item: { ctr: -3, category: 'socks' } },
      { item: { ctr: -3, category: 'ties' } },
      { item: { ctr: -3, category: 'shoes' } },
      { user: { tags: [], device: 1 } },
      { user: { device: 1 } },
      { user: { tags: ['q'], device: 1 } },
      { user: { tags: ['r', 's'], device: 1 } },
    ];
    const t = scope(() => fg.forward(recs).tokens.toFloat32Array());
    const tok = (n: number, g: number): number[] => tokenOf(t, n, g, 3);
    expect(tok(1, 0)).toEqual(tok(0, 0));
    expect(tok(2, 0)).toEqual(tok(0, 0));
    expect(tok(3, 0)).toEqual(tok(0, 0));
    expect(tok(4, 0)).not.toEqual(tok(0, 0));
    expect(tok(6, 1)).toEqual(tok(5, 1));
    expect(tok(7, 1)).not.toEqual(tok(5, 1));
    expect(tok(9, 2)).toEqual(tok(8, 2));
    expect(tok(11, 2)).toEqual(tok(10, 2)); // bags of unseen tags: mean of OOV rows = the OOV row
    expect(tok(10, 2)).not.toEqual(tok(8, 2));
    expect(t.every(Number.isFinite)).toBe(true);
    fg.dispose();
  });

  test('fit() computes float64 mean / population std over finite values; stats round-trip', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const fg = new nn.FeatureGroups(spec, { dim: D });
    const recs: FeatureRecord[] = [];
    const bm: number[] = [];
    for (let i = 0; i < 200; i++) {
      const v = 1e4 + 3 * rng.normal(); // large offset: Welford keeps it exact enough
      const missing = i % 7 === 0;
      if (!missing) bm.push(v);
      recs.push({ text: { bm25: missing ? NaN : v, cover: 1 }, item: i % 2 === 0 ? null : { ctr: undefined } });
    }
    fg.fit(recs);
    const mean = bm.reduce((a, b) => a + b, 0) / bm.length;
    const std = Math.sqrt(bm.reduce((a, b) => a + (b - mean) ** 2, 0) / bm.length);
    const st = fg.denseStats();
    expect(st.text.bm25.mean).toBeCloseTo(mean, 8);
    expect(st.text.bm25.std).toBeCloseTo(std, 8);
    expect(st.text.cover).toEqual({ mean: 1, std: 1 }); // zero spread → std 1
    expect(st.item.ctr).toEqual({ mean: 0, std: 1 }); // no data
    const other = new nn.FeatureGroups(spec, { dim: D });
    other.setDenseStats(st);
    expect(other.denseStats()).toEqual(st);
    expect(errorOf(() => other.setDenseStats({ text: { nope: { mean: 0, std: 1 } } }))).toMatch(/group 'text' has no dense feature 'nope'/);
    expect(errorOf(() => other.setDenseStats({ text: { bm25: { mean: 0, std: 0 } } }))).toMatch(/text\.bm25: std: expected >= /);
    fg.dispose();
    other.dispose();
  });

  test('gradients of projections, LayerNorms and embedding tables (incl. OOV / MISSING / EMPTY rows) match central differences', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const fg = new nn.FeatureGroups(spec, { dim: D, seed });
    const N = records.length;
    const G = 3;
    const cot = Float64Array.from({ length: N * G * D }, () => rng.normal());
    scope(() => {
      const { tokens } = fg.forward(records);
      tokens.backward(tensor(Float32Array.from(cot), [N, G, D]));
    });
    const named = fg.namedParameters();
    const P0 = paramsOf(named);
    const cot32 = Float64Array.from(Float32Array.from(cot));
    const f = (P: Params): number => reference(P, records).tokens.reduce((s, v, i) => s + v * cot32[i], 0);
    const h = 1e-5;
    for (const [name, t] of named) {
      const g = (t.grad as Tensor | null)?.toFloat32Array();
      if (g === undefined) throw new Error(`${name}: no gradient (seed ${seed})`);
      const coords = t.size <= 24 ? Array.from({ length: t.size }, (_, i) => i) : Array.from({ length: 24 }, () => rng.int(t.size));
      const num = coords.map((i) => {
        const P = new Map(P0);
        const v = Float64Array.from(P0.get(name) as Float64Array);
        v[i] += h;
        P.set(name, v);
        const fp = f(P);
        v[i] -= 2 * h;
        return (fp - f(P)) / (2 * h);
      });
      expectClose(coords.map((i) => g[i]), num, 2e-3, `grad ${name}`, seed);
    }
    // Rows of categories never looked up get exactly zero gradient ('hats' = row 4 of item.category).
    const cat = named.find(([n]) => n === 'item.emb.category.weight')?.[1].grad as Tensor;
    expect(Array.from(cat.toFloat32Array().subarray(4 * 4, 5 * 4))).toEqual([0, 0, 0, 0]);
    fg.dispose();
  });

  test('bad specs and records give errors naming the group, feature, expected and actual', () => {
    expect(errorOf(() => new nn.FeatureGroups([], { dim: 4 }))).toMatch(/FeatureGroups: groups: expected a non-empty array of \{name, features\}, got an empty array/);
    expect(errorOf(() => new nn.FeatureGroups([{ name: 'a', features: [] }], { dim: 4 }))).toMatch(/group 'a': features: expected a non-empty array, got an empty array/);
    expect(errorOf(() => new nn.FeatureGroups([spec[0], spec[0]], { dim: 4 }))).toMatch(/duplicate group 'text'/);
    expect(errorOf(() => new nn.FeatureGroups([{ name: 'a', features: [{ name: 'x', kind: 'sparse' } as unknown as { name: string; kind: 'dense' }] }], { dim: 4 }))).toMatch(/group 'a' features\[0\]\.kind: expected 'dense', 'categorical' or 'bag', got "sparse"/);
    expect(errorOf(() => new nn.FeatureGroups([{ name: 'a', features: [{ name: 'x', kind: 'dense', std: 0 }] }], { dim: 4 }))).toMatch(/group 'a' features\[0\]: std: expected >= /);
    expect(errorOf(() => new nn.FeatureGroups(spec, { dim: 0 }))).toMatch(/FeatureGroups: dim: expected >= 1, got 0/);
    const fg = new nn.FeatureGroups(spec, { dim: D });
    expect(errorOf(() => fg.forward({} as unknown as FeatureRecord[]))).toMatch(/FeatureGroups\.forward: records: expected an array of feature records, got object/);
    expect(errorOf(() => fg.forward([null as unknown as FeatureRecord]))).toMatch(/records\[0\]: expected an object \(group → features\), got null/);
    expect(errorOf(() => scope(() => fg.forward([{ text: { bm25: 'high' } }])))).toMatch(/records\[0\]\.text\.bm25: dense feature expects a number, null or undefined, got string/);
    expect(errorOf(() => scope(() => fg.forward([{ item: { category: ['shoes'] } }])))).toMatch(/records\[0\]\.item\.category: expected a string or number category, got an array/);
    expect(errorOf(() => scope(() => fg.forward([{ user: { tags: 'a' } }])))).toMatch(/records\[0\]\.user\.tags: bag feature expects an array, null or undefined, got string/);
    expect(errorOf(() => scope(() => fg.forward([{ text: 3 as unknown as Record<string, number> }])))).toMatch(/records\[0\]\.text: expected an object of features, null or undefined, got number/);
    fg.dispose();
  });
});
