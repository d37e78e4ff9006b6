// ops.linearHstuStep — the fused serving step of a QGS Linear HSTU block — against the composed
// EncoderBlock.step (which test/qgs.test.ts ties to the full encoder): fresh random weights (LayerNorm
// affine parameters and biases too, so a swapped argument shows), odd sizes, read-outs and writes,
// batches across the native 16-row grain; and its argument errors. The kernel itself is checked
// against a float64 reference in native/tests/test_linear_hstu_step.cpp.
import { Random, tensor, scope, noGrad, ops, memoryStats } from '../src';
import { SequenceEncoder } from '../src/qgs/encoder';
import { freshSeed, randomArray, relError, expectClose, errorOf, randomizeParameters } from './helpers';

describe('ops.linearHstuStep', () => {
  const cases = [
    { B: 1, dim: 32, heads: 2, dk: 64, dv: 16 }, // the QGS default block
    { B: 3, dim: 10, heads: 3, dk: 5, dv: 3 },
    { B: 37, dim: 7, heads: 1, dk: 9, dv: 2 }, // split across the pool (16-row grain)
  ];
  for (const c of cases) {
    test(`equals the composed block step, read-out and write (B ${c.B}, D ${c.dim}, H ${c.heads}, dk ${c.dk}, dv ${c.dv})`, () => {
      const seed = freshSeed();
      const rng = new Random(seed);
      const enc = new SequenceEncoder({ kind: 'linear', dim: c.dim, layers: 2, heads: c.heads, dk: c.dk, dv: c.dv, dropout: 0.1, decayInit: 0.9, seed: seed & 0xffff });
      randomizeParameters(enc, rng);
      enc.eval();
      const x = tensor(Float32Array.from(randomArray(rng, c.B * c.dim)), [c.B, c.dim]);
      const states = [0, 1].map(() => tensor(Float32Array.from(randomArray(rng, c.B * c.heads * c.dk * c.dv, 0.3)), [c.B, c.heads, c.dk, c.dv]));
      const before = states.map((s) => s.toFloat32Array());
      const live = memoryStats().count;
      for (const write of [false, true]) {
        // Parameters require gradients: outside noGrad the block takes the composed path.
        const composed = scope(() => {
          const r = enc.step(x, states, write);
          return { h: r.h.toFloat32Array(), s: r.states.map((t) => t.toFloat32Array()) };
        });
        const fused = scope(() =>
          noGrad(() => {
            const r = enc.step(x, states, write);
            return { h: r.h.toFloat32Array(), s: r.states.map((t) => t.toFloat32Array()) };
          }),
        );
        expectClose(fused.h, composed.h, 2e-5, `output (write ${write})`, seed);
        for (let l = 0; l < 2; l++) expectClose(fused.s[l], composed.s[l], 2e-5, `layer ${l} state (write ${write})`, seed);
        // Inputs untouched; a read-out's states are the input states.
        states.forEach((s, l) => expect(s.toFloat32Array()).toEqual(before[l]));
        if (!write) fused.s.forEach((s, l) => expect(s).toEqual(before[l]));
      }
      expect(memoryStats().count).toBe(live);
      x.dispose();
      states.forEach((s) => s.dispose());
      enc.dispose();
    });
  }

  test('dropout in training mode keeps the composed path (the fused step has no dropout)', () => {
    const enc = new SequenceEncoder({ kind: 'linear', dim: 8, layers: 1, heads: 2, dk: 4, dv: 4, dropout: 0.5, decayInit: 0.9, seed: 3 });
    const x = tensor(Float32Array.from({ length: 8 }, (_, i) => i / 8 - 0.4), [1, 8]);
    const st = [tensor(new Float32Array(32).fill(0.1), [1, 2, 4, 4])];
    const train = noGrad(() => scope(() => enc.step(x, st, true).h.toFloat32Array()));
    enc.eval();
    const evalOut = noGrad(() => scope(() => enc.step(x, st, true).h.toFloat32Array()));
    expect(relError(train, evalOut)).toBeGreaterThan(1e-3);
    x.dispose();
    st[0].dispose();
    enc.dispose();
  });

  test('bad arguments get errors naming them', () => {
    const D = 4, H = 1, dk = 2, dv = 3;
    const t = (n: number, shape: number[]) => tensor(new Float32Array(n).fill(0.1), shape);
    const x = t(2 * D, [2, D]);
    const state = t(2 * H * dk * dv, [2, H, dk, dv]);
    const p = {
      projWeight: t(H * (2 * dv + 2 * dk) * D, [H * (2 * dv + 2 * dk), D]),
      outWeight: t(D * H * dv, [D, H * dv]),
      decay: t(H, [H]),
      dk,
    };
    noGrad(() => {
      expect(errorOf(() => ops.linearHstuStep(x, t(6, [1, 1, 2, 3]), p, { write: true }))).toMatch(/linearHstuStep: state: expected shape \[2, H, 2, dv\], got \[1, 1, 2, 3\]/);
      expect(errorOf(() => ops.linearHstuStep(x, state, { ...p, outWeight: t(D * 2, [D, 2]) }, { write: false }))).toMatch(/outWeight.*\[4, 3\]/);
      expect(errorOf(() => ops.linearHstuStep(x, state, { ...p, decay: null }, { write: true }))).toMatch(/decay: expected a \[1\] tensor when writing/);
      expect(errorOf(() => ops.linearHstuStep(x, state, { ...p, decay: tensor([1.5], [1]) }, { write: true }))).toMatch(/decay\[0\] must be in \[0, 1\], got 1\.5/);
      expect(errorOf(() => ops.linearHstuStep(x, state, p, { write: 'yes' as unknown as boolean }))).toMatch(/options\.write: expected a boolean, got string/);
      expect(errorOf(() => ops.linearHstuStep(x, state, { ...p, lnInEps: 0 }, { write: false }))).toMatch(/lnInEps: expected a positive finite number, got 0/);
    });
    // Outside noGrad an input that requires a gradient is refused (inference only).
    const xg = tensor(new Float32Array(2 * D), [2, D], { requiresGrad: true });
    expect(errorOf(() => ops.linearHstuStep(xg, state, p, { write: false }))).toMatch(/inference only/);
    // A read-out needs no decay, and returns the input state.
    const r = noGrad(() => ops.linearHstuStep(x, state, { ...p, decay: null }, { write: false }));
    expect(r.state).toBe(state);
    expect(Array.from(r.output.toFloat32Array()).every(Number.isFinite)).toBe(true);
    r.output.dispose();
    for (const v of [x, state, xg, p.projWeight, p.outWeight, p.decay]) v.dispose();
  });
});
