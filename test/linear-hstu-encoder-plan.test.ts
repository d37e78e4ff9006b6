// ops.LinearHstuEncoderPlan — a whole Linear HSTU encoder's serving step (pair-token embedding, every
// block, final LayerNorm) as one native call — against the composed SequenceEncoder.step (which
// test/qgs.test.ts ties to the full encoder) on the pair tokens' embeddings computed here: fresh
// random weights and tables, odd sizes, padded term slots, rows across the native 16-row grain, reads
// and writes, in-place updates, poisoned outputs, weights copied at creation; the sequence form (a cold
// encode) against the composed encoder's final states; and its argument errors.
// The kernel is checked against a float64 reference in native/tests/test_linear_hstu_step.cpp.
import { Random, tensor, scope, noGrad, ops } from '../src';
import { SequenceEncoder } from '../src/qgs/encoder';
import { freshSeed, randomArray, expectClose, errorOf, randomizeParameters } from './helpers';

const PAD = 0;

function setup(seed: number, c: { R: number; L: number; dim: number; heads: number; dk: number; dv: number; m: number }) {
  const rng = new Random(seed);
  const enc = new SequenceEncoder({ kind: 'linear', dim: c.dim, layers: c.L, heads: c.heads, dk: c.dk, dv: c.dv, dropout: 0.1, decayInit: 0.9, seed: seed & 0xffff });
  randomizeParameters(enc, rng);
  enc.eval();
  const VT = 13;
  const VI = 9;
  const termTable = tensor(Float32Array.from(randomArray(rng, VT * c.dim)), [VT, c.dim]);
  const itemTable = tensor(Float32Array.from(randomArray(rng, VI * c.dim)), [VI, c.dim]);
  const terms = new Int32Array(c.R * c.m);
  const items = new Int32Array(c.R);
  for (let r = 0; r < c.R; r++) {
    items[r] = Math.floor(rng.uniform() * VI);
    // row 0: all padding (embeds to the zero vector); the others mix ids and padding
    for (let j = 0; j < c.m; j++) terms[r * c.m + j] = r === 0 || rng.uniform() < 0.3 ? PAD : 1 + Math.floor(rng.uniform() * (VT - 1));
  }
  const per = c.heads * c.dk * c.dv;
  const states = Float32Array.from(randomArray(rng, c.R * c.L * per, 0.3));
  // The pair tokens' embeddings, computed here from the tables.
  const tt = termTable.toFloat32Array();
  const it = itemTable.toFloat32Array();
  const x = new Float32Array(c.R * c.dim);
  for (let r = 0; r < c.R; r++) {
    let used = 0;
    const acc = new Float64Array(c.dim);
    for (let j = 0; j < c.m; j++) {
      const t = terms[r * c.m + j];
      if (t === PAD) continue;
      used++;
      for (let d = 0; d < c.dim; d++) acc[d] += tt[t * c.dim + d];
    }
    for (let d = 0; d < c.dim; d++) x[r * c.dim + d] = (used > 0 ? acc[d] / used : 0) + it[items[r] * c.dim + d];
  }
  const plan = noGrad(() => scope(() => new ops.LinearHstuEncoderPlan({
    layers: enc.blocks.map((b) => b.blockParams(true)),
    finalNorm: { weight: enc.finalNorm.weight, bias: enc.finalNorm.bias, eps: enc.finalNorm.eps },
  })));
  const tokens = { terms, termsPerToken: c.m, items, termTable, itemTable, padTerm: PAD };
  // The composed step (parameters require gradients: outside noGrad the blocks take the composed path).
  const composed = (write: boolean) =>
    scope(() => {
      const layerStates = Array.from({ length: c.L }, (_, l) => {
        const buf = new Float32Array(c.R * per);
        for (let r = 0; r < c.R; r++) buf.set(states.subarray((r * c.L + l) * per, (r * c.L + l + 1) * per), r * per);
        return tensor(buf, [c.R, c.heads, c.dk, c.dv]);
      });
      const out = enc.step(tensor(x, [c.R, c.dim]), layerStates, write);
      const s = new Float32Array(c.R * c.L * per);
      out.states.forEach((t, l) => {
        const a = t.toFloat32Array();
        for (let r = 0; r < c.R; r++) s.set(a.subarray(r * per, (r + 1) * per), (r * c.L + l) * per);
      });
      return { h: out.h.toFloat32Array(), s };
    });
  const dispose = () => {
    plan.dispose();
    enc.dispose();
    termTable.dispose();
    itemTable.dispose();
  };
  return { enc, plan, tokens, states, composed, dispose, per, x };
}

describe('ops.LinearHstuEncoderPlan', () => {
  const cases = [
    { R: 1, L: 2, dim: 32, heads: 2, dk: 64, dv: 16, m: 4 }, // the QGS default encoder, one user
    { R: 5, L: 3, dim: 7, heads: 3, dk: 5, dv: 3, m: 3 },
    { R: 37, L: 1, dim: 10, heads: 1, dk: 9, dv: 2, m: 2 }, // split across the pool (16-row grain)
  ];
  for (const c of cases) {
    test(`equals embedding + the composed encoder step, read-out and write (R ${c.R}, L ${c.L}, D ${c.dim}, H ${c.heads}, dk ${c.dk}, dv ${c.dv})`, () => {
      const seed = freshSeed();
      const t = setup(seed, c);
      const before = t.states.slice();
      for (const write of [false, true]) {
        const ref = t.composed(write);
        const h = new Float32Array(c.R * c.dim).fill(Number.NaN);
        const s = write ? new Float32Array(t.states.length).fill(Number.NaN) : null;
        t.plan.step(t.states, t.tokens, { write, hOut: h, statesOut: s });
        expectClose(h, ref.h, 3e-5, `h (write ${write})`, seed);
        if (s !== null) expectClose(s, ref.s, 3e-5, 'states', seed);
        expect(t.states).toEqual(before);
      }
      // In place, without the output: the states advance exactly as into a separate array.
      const ref = t.composed(true);
      const inPlace = t.states.slice();
      t.plan.step(inPlace, t.tokens, { write: true, statesOut: inPlace });
      expectClose(inPlace, ref.s, 3e-5, 'states in place', seed);
      t.dispose();
    });
  }

  test.each([
    ['the QGS default encoder, one 200-token history', { R: 200, L: 2, dim: 32, heads: 2, dk: 64, dv: 16, m: 4 }, [200]],
    ['jagged sequences, one empty, odd sizes', { R: 23, L: 3, dim: 7, heads: 3, dk: 5, dv: 3, m: 3 }, [5, 0, 17, 1]],
  ])('encode (%s) equals the composed encoder\'s final states, read-out tokens included', (_, c, lens) => {
    const seed = freshSeed();
    const t = setup(seed, c);
    const rng = new Random(seed + 1);
    const offsets = Int32Array.from({ length: lens.length + 1 }, (_, b) => lens.slice(0, b).reduce((a, v) => a + v, 0));
    const B = lens.length;
    const write = Float32Array.from({ length: c.R }, () => (rng.uniform() < 0.25 ? 0 : 1));
    const ref = scope(() => {
      const states = t.enc.finalStates(tensor(t.x, [c.R, c.dim]), {
        offsets,
        write: tensor(write, [c.R, 1]),
        readOnly: tensor(write.map((w) => 1 - w), [c.R, 1]),
      });
      const out = new Float32Array(B * c.L * t.per);
      states.forEach((st, l) => {
        const a = st.toFloat32Array();
        for (let b = 0; b < B; b++) out.set(a.subarray(b * t.per, (b + 1) * t.per), (b * c.L + l) * t.per);
      });
      return out;
    });
    const got = new Float32Array(B * t.plan.stateSize).fill(Number.NaN);
    t.plan.encode(t.tokens, { offsets, write, statesOut: got });
    expectClose(got, ref, 1e-4, 'final states', seed);
    // From given states: the same as the plan's writing steps token by token (read-outs change nothing).
    const start = Float32Array.from(randomArray(rng, B * t.plan.stateSize, 0.3));
    const fromStart = new Float32Array(B * t.plan.stateSize);
    t.plan.encode(t.tokens, { offsets, write, statesIn: start, statesOut: fromStart });
    const stepped = start.slice();
    const S = t.plan.stateSize;
    for (let b = 0; b < B; b++) {
      const st = stepped.subarray(b * S, (b + 1) * S);
      for (let i = offsets[b]; i < offsets[b + 1]; i++) {
        if (write[i] === 0) continue;
        const one = { ...t.tokens, terms: t.tokens.terms.subarray(i * c.m, (i + 1) * c.m), items: t.tokens.items.subarray(i, i + 1) };
        t.plan.step(st, one, { write: true, statesOut: st });
      }
    }
    expectClose(fromStart, stepped, 1e-4, 'from given states', seed);
    t.dispose();
  });

  test.each([
    ['every token writes', false],
    ['read-out tokens keep the state (write 0)', true],
  ])('encode with minWeight (%s): the kept suffix exactly, near the full encode, short sequences untouched', (_, withWrite) => {
    const seed = freshSeed();
    // Decays here are 0.73-0.97 (randomizeParameters): at minWeight 1e-5 the horizon is up to ~360
    // writing tokens, so the two long sequences are cut and the 20-token one is not.
    const lens = [900, 0, 20, 700];
    const c = { R: lens.reduce((a, v) => a + v, 0), L: 2, dim: 7, heads: 3, dk: 5, dv: 3, m: 3 };
    const t = setup(seed, c);
    const rng = new Random(seed + 2);
    const B = lens.length;
    const S = t.plan.stateSize;
    const offsets = Int32Array.from({ length: B + 1 }, (_, b) => lens.slice(0, b).reduce((a, v) => a + v, 0));
    const write = withWrite ? Float32Array.from({ length: c.R }, () => (rng.uniform() < 0.3 ? 0 : 1)) : null;
    const statesIn = Float32Array.from(randomArray(rng, B * S, 0.3));
    const g = t.plan.maxDecay;
    expect(g).toBeGreaterThan(0.5);
    expect(g).toBeLessThan(1);
    const minWeight = 1e-5;
    const got = new Float32Array(B * S).fill(Number.NaN);
    t.plan.encode(t.tokens, { offsets, write, statesIn, statesOut: got, minWeight });
    // Where each sequence starts, in float64 products: the first token whose later decays (at the
    // largest decay) still weigh >= minWeight; the starting state is dropped once anything is.
    const kept: { start: number; dropState: boolean }[] = [];
    for (let b = 0; b < B; b++) {
      let acc = 1;
      let start = offsets[b];
      let dropState = false;
      for (let i = offsets[b + 1] - 1; i >= offsets[b]; i--) {
        const w = write === null ? 1 : write[i];
        acc *= w * g + (1 - w);
        if (acc < minWeight) {
          start = i;
          dropState = true;
          break;
        }
      }
      kept.push({ start, dropState });
    }
    expect(kept[0].start).toBeGreaterThan(offsets[0]); // the long sequences are cut ...
    expect(kept[3].start).toBeGreaterThan(offsets[3]);
    expect(kept[2]).toEqual({ start: offsets[2], dropState: false }); // ... the short one is not
    // Each sequence equals the plain encode of its kept suffix (from zeros where the state is dropped).
    for (let b = 0; b < B; b++) {
      const { start, dropState } = kept[b];
      const e = offsets[b + 1];
      const one = new Float32Array(S);
      const sub = { ...t.tokens, terms: t.tokens.terms.subarray(start * c.m, e * c.m), items: t.tokens.items.subarray(start, e) };
      t.plan.encode(sub, { offsets: Int32Array.of(0, e - start), write: write?.subarray(start, e) ?? null, statesIn: dropState ? null : statesIn.subarray(b * S, (b + 1) * S), statesOut: one });
      expectClose(got.subarray(b * S, (b + 1) * S), one, 1e-6, `sequence ${b}`, seed);
    }
    // And all of it is close to the full encode: what was left out weighed < minWeight.
    const full = new Float32Array(B * S);
    t.plan.encode(t.tokens, { offsets, write, statesIn, statesOut: full });
    expectClose(got, full, 1e-3, 'against the full encode', seed);
    expect(got.subarray(2 * S, 3 * S)).toEqual(full.subarray(2 * S, 3 * S)); // untouched: the same bits
    // One sequence runs on views of the caller's arrays: the same as the first sequence above.
    const first = new Float32Array(S);
    const head = { ...t.tokens, terms: t.tokens.terms.subarray(0, lens[0] * c.m), items: t.tokens.items.subarray(0, lens[0]) };
    t.plan.encode(head, { offsets: Int32Array.of(0, lens[0]), write: write?.subarray(0, lens[0]) ?? null, statesIn: statesIn.subarray(0, S), statesOut: first, minWeight });
    expect(first).toEqual(got.subarray(0, S));
    t.dispose();
  });

  test('holds copies of the weights: changing the modules afterwards does not change its results', () => {
    const seed = freshSeed();
    const c = { R: 2, L: 2, dim: 6, heads: 2, dk: 3, dv: 2, m: 2 };
    const t = setup(seed, c);
    const h0 = new Float32Array(c.R * c.dim);
    t.plan.step(t.states, t.tokens, { write: false, hOut: h0 });
    const w = t.enc.blocks[0].proj.weight;
    w.storage.copyFromHost(w.toFloat32Array().map((v) => 2 * v));
    const h1 = new Float32Array(c.R * c.dim);
    t.plan.step(t.states, t.tokens, { write: false, hOut: h1 });
    expect(h1).toEqual(h0);
    // ...while the composed step sees the change.
    expect(t.composed(false).h).not.toEqual(h0);
    t.dispose();
  });

  test('bad arguments get errors naming them; a disposed plan refuses to run', () => {
    const c = { R: 2, L: 2, dim: 4, heads: 1, dk: 2, dv: 3, m: 2 };
    const t = setup(7, c);
    const S = t.plan.stateSize;
    expect(S).toBe(c.L * c.heads * c.dk * c.dv);
    const h = new Float32Array(c.R * c.dim);
    expect(errorOf(() => t.plan.step(new Float32Array(S), t.tokens, { write: false, hOut: h }))).toMatch(/LinearHstuEncoderPlan.step: statesIn: expected a Float32Array of 24 \(2 rows\), got length 12/);
    expect(errorOf(() => t.plan.step(t.states, { ...t.tokens, terms: new Int32Array(3) }, { write: false, hOut: h }))).toMatch(/LinearHstuEncoderPlan.step: tokens.terms: expected an Int32Array of 4 \(2 rows\), got length 3/);
    expect(errorOf(() => t.plan.step(t.states, t.tokens, { write: false }))).toMatch(/options.hOut: expected a Float32Array of 8 \(2 rows\), got undefined/);
    expect(errorOf(() => t.plan.step(t.states, t.tokens, { write: true }))).toMatch(/options.statesOut: expected a Float32Array of 24 \(2 rows\), got undefined/);
    expect(errorOf(() => t.plan.step(t.states, { ...t.tokens, items: Int32Array.of(0, 9) }, { write: false, hOut: h }))).toMatch(/items\[1\] = 9 is out of range for an item table of 9 rows/);
    expect(errorOf(() => t.plan.step(t.states, { ...t.tokens, terms: Int32Array.of(1, 2, 13, 0) }, { write: false, hOut: h }))).toMatch(/embeddingBag: ids\[1, 0\] = 13 is out of range for a table of 13 rows/);
    expect(errorOf(() => t.plan.step(t.states, t.tokens, { write: 'yes' as unknown as boolean, hOut: h }))).toMatch(/options.write: expected a boolean, got string/);
    const params = noGrad(() => t.enc.blocks.map((b) => b.blockParams(true)));
    expect(errorOf(() => new ops.LinearHstuEncoderPlan({ layers: [] }))).toMatch(/layers: expected a non-empty array of block parameters, got an empty array/);
    expect(errorOf(() => new ops.LinearHstuEncoderPlan({ layers: [params[0], { ...params[1], decay: null }] }))).toMatch(/layers\[1\]: decay: expected a \[1\] tensor when writing/);
    expect(errorOf(() => new ops.LinearHstuEncoderPlan({ layers: [params[0]], finalNorm: { eps: 0 } }))).toMatch(/finalNorm.eps: expected a positive finite number, got 0/);
    const out = new Float32Array(S);
    const enc = (o: Partial<ops.EncoderPlanEncodeOptions>) => errorOf(() => t.plan.encode(t.tokens, { offsets: Int32Array.of(0, 2), statesOut: out, ...o }));
    expect(enc({ offsets: Int32Array.of(0, 1) })).toMatch(/LinearHstuEncoderPlan.encode: options.offsets: expected offsets\[1\] = 2 \(the packed row count\), got 1/);
    expect(enc({ offsets: Int32Array.of(1, 2) })).toMatch(/LinearHstuEncoderPlan.encode: options.offsets\[0\]: expected 0, got 1/);
    expect(enc({ offsets: Int32Array.of(0, 2, 1, 2) })).toMatch(/options.offsets: expected non-decreasing values, got offsets\[2\] = 1 < offsets\[1\] = 2/);
    expect(enc({ statesOut: new Float32Array(S + 1) })).toMatch(/options.statesOut: expected a Float32Array of 12 \(1 sequence\), got length 13/);
    expect(enc({ write: Float32Array.of(1, 1.5) })).toMatch(/options.write\[1\]: expected a weight in \[0, 1\], got 1.5/);
    expect(enc({ write: Float32Array.of(1, Number.NaN) })).toMatch(/options.write\[1\]: expected a weight in \[0, 1\], got NaN/);
    expect(enc({ minWeight: 1 })).toMatch(/LinearHstuEncoderPlan.encode: options.minWeight: expected a weight in \[0, 1\), got 1/);
    expect(enc({ minWeight: -0.5 })).toMatch(/options.minWeight: expected a weight in \[0, 1\), got -0.5/);
    expect(enc({ minWeight: 'small' as unknown as number })).toMatch(/options.minWeight: expected a number, got small/);
    // Outputs may not overlap inputs (other than a state updated in place as a whole).
    const buf = new Float32Array(2 * S + 1);
    const sIn = buf.subarray(0, 2 * S);
    expect(errorOf(() => t.plan.step(sIn, t.tokens, { write: true, statesOut: buf.subarray(1, 2 * S + 1) }))).toMatch(/LinearHstuEncoderPlan.step: options.statesOut: overlaps statesIn \(options.statesOut may only be statesIn itself, not part of it\)/);
    expect(errorOf(() => t.plan.step(sIn, t.tokens, { write: false, hOut: buf.subarray(3, 3 + 8) }))).toMatch(/options.hOut: overlaps statesIn \(options.hOut may only be an array of its own\)/);
    expect(errorOf(() => t.plan.encode(t.tokens, { offsets: Int32Array.of(0, 2), statesIn: buf.subarray(0, S), statesOut: buf.subarray(1, S + 1) }))).toMatch(/LinearHstuEncoderPlan.encode: options.statesOut: overlaps options.statesIn/);
    t.plan.step(sIn, t.tokens, { write: true, statesOut: sIn }); // in place, as a whole: allowed
    t.plan.dispose();
    expect(errorOf(() => t.plan.step(t.states, t.tokens, { write: false, hOut: h }))).toMatch(/LinearHstuEncoderPlan.step: the plan was disposed/);
    expect(enc({})).toMatch(/LinearHstuEncoderPlan.encode: the plan was disposed/);
    t.dispose(); // idempotent dispose of the plan
  });
});
