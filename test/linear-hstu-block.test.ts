// ops.linearHstuBlock — a QGS Linear HSTU block over a packed batch, fused for inference — against
// the composed EncoderBlock (chunked linearRecurrence and the modules), which test/qgs.test.ts ties
// to the model: fresh random weights (LayerNorm affine parameters and biases too, so a swapped
// argument shows), jagged batches with empty sequences and read-out tokens, odd sizes, the
// state-only path; the whole encoder's finalStates and eval forward; and argument errors. The kernel
// itself is checked against a float64 reference in native/tests/test_linear_hstu_block.cpp.
import { Random, tensor, scope, noGrad, ops, memoryStats, type Tensor } from '../src';
import { SequenceEncoder, packBatch } from '../src/qgs/encoder';
import { freshSeed, randomArray, relError, expectClose, errorOf, randomizeParameters } from './helpers';

describe('ops.linearHstuBlock', () => {
  const cases = [
    { lengths: [1000], dim: 32, heads: 2, dk: 64, dv: 16, readouts: 0 }, // a cold serving encode
    { lengths: [5, 0, 37, 1, 64, 3], dim: 32, heads: 2, dk: 64, dv: 16, readouts: 0.3 }, // a training batch
    { lengths: [7, 70, 0], dim: 10, heads: 3, dk: 5, dv: 3, readouts: 0.5 },
    { lengths: [129], dim: 7, heads: 1, dk: 9, dv: 2, readouts: 0.1 },
  ];
  for (const c of cases) {
    test(`equals the composed block: output and final states (lengths ${c.lengths.length > 3 ? `${c.lengths.length} sequences` : c.lengths.join(',')}, D ${c.dim}, H ${c.heads}, dk ${c.dk}, dv ${c.dv}, read-outs ${c.readouts})`, () => {
      const seed = freshSeed();
      const rng = new Random(seed);
      const enc = new SequenceEncoder({ kind: 'linear', dim: c.dim, layers: 2, heads: c.heads, dk: c.dk, dv: c.dv, dropout: 0.1, decayInit: 0.9, seed: seed & 0xffff });
      randomizeParameters(enc, rng);
      enc.eval();
      const offsets = Int32Array.from([0, ...c.lengths.map((_, i) => c.lengths.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
      const T = offsets[offsets.length - 1];
      const write = Float32Array.from({ length: T }, () => (rng.uniform() < c.readouts ? 0 : 1));
      const batch = packBatch(offsets, write);
      const x = tensor(Float32Array.from(randomArray(rng, T * c.dim)), [T, c.dim]);
      const live = memoryStats().count;
      const block = enc.blocks[0];
      const run = (wantOutput: boolean) => {
        const r = block.forwardWithState(x, batch, true, wantOutput);
        return { y: r.y?.toFloat32Array() ?? null, s: (r.state as Tensor).toFloat32Array() };
      };
      // Parameters require gradients: outside noGrad the block takes the composed path.
      const composed = scope(() => run(true));
      for (const wantOutput of [true, false]) {
        const fused = scope(() => noGrad(() => run(wantOutput)));
        if (wantOutput) expectClose(fused.y as Float32Array, composed.y as Float32Array, 5e-5, 'output', seed);
        else expect(fused.y).toBeNull();
        expectClose(fused.s, composed.s, 5e-5, `final states (output ${wantOutput})`, seed);
      }
      // The whole encoder: both layers' final states (the cold serving encode) and the eval forward.
      const all = scope(() => ({ s: enc.finalStates(x, batch).map((t) => t.toFloat32Array()), h: enc.forward(x, batch).toFloat32Array() }));
      const allFused = scope(() => noGrad(() => ({ s: enc.finalStates(x, batch).map((t) => t.toFloat32Array()), h: enc.forward(x, batch).toFloat32Array() })));
      all.s.forEach((s, l) => expectClose(allFused.s[l], s, 5e-5, `encoder layer ${l} state`, seed));
      expectClose(allFused.h, all.h, 5e-5, 'encoder eval forward', seed);
      expect(memoryStats().count).toBe(live);
      for (const t of [x, batch.write, batch.readOnly]) t.dispose();
      enc.dispose();
    });
  }

  test('dropout in training mode keeps the composed path (the fused block has no dropout)', () => {
    const enc = new SequenceEncoder({ kind: 'linear', dim: 8, layers: 1, heads: 2, dk: 4, dv: 4, dropout: 0.5, decayInit: 0.9, seed: 3 });
    const T = 6;
    const x = tensor(Float32Array.from({ length: T * 8 }, (_, i) => Math.sin(i)), [T, 8]);
    const batch = packBatch(Int32Array.of(0, T), new Float32Array(T).fill(1));
    const train = noGrad(() => scope(() => enc.forward(x, batch).toFloat32Array()));
    enc.eval();
    const evalOut = noGrad(() => scope(() => enc.forward(x, batch).toFloat32Array()));
    expect(relError(train, evalOut)).toBeGreaterThan(1e-3);
    for (const t of [x, batch.write, batch.readOnly]) t.dispose();
    enc.dispose();
  });

  test('initial states and fractional writes follow the composed recurrence', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const D = 6, H = 2, dk = 4, dv = 3;
    const enc = new SequenceEncoder({ kind: 'linear', dim: D, layers: 1, heads: H, dk, dv, dropout: 0, decayInit: 0.9, seed: seed & 0xffff });
    randomizeParameters(enc, rng);
    const block = enc.blocks[0];
    const offsets = Int32Array.of(0, 9, 9, 20);
    const T = 20, B = 3;
    const w = Float32Array.from({ length: T }, () => rng.uniform());
    const x = tensor(Float32Array.from(randomArray(rng, T * D)), [T, D]);
    const init = tensor(Float32Array.from(randomArray(rng, B * H * dk * dv, 0.5)), [B, H, dk, dv]);
    const p = noGrad(() => ({
      projWeight: block.proj.weight, projBias: block.proj.bias, outWeight: block.out.weight, outBias: block.out.bias,
      lnInWeight: block.inNorm.weight, lnInBias: block.inNorm.bias, lnOutWeight: block.outNorm.weight, lnOutBias: block.outNorm.bias,
      decay: ops.sigmoid(block.decayLogit as Tensor), dk,
    }));
    const fused = noGrad(() => ops.linearHstuBlock(x, p, { offsets, write: tensor(w, [T]), initialState: init, returnState: true }));
    // Composed: the same recurrence (decay w·γ + 1 − w, values v·w) through ops.linearRecurrence.
    const ref = noGrad(() =>
      scope(() => {
        const proj = ops.silu(block.proj.forward(block.inNorm.forward(x)));
        const [u, v, q, k] = ops.split(proj, [H * dv, H * dv, H * dk, H * dk], 1);
        const wt = tensor(w, [T, 1]);
        const decay = ops.add(ops.mul(wt, ops.reshape(p.decay, [1, H])), ops.sub(tensor([1], [1, 1]), wt));
        const vw = ops.mul(ops.reshape(v, [T, H, dv]), ops.reshape(wt, [T, 1, 1]));
        const r = ops.linearRecurrence(ops.reshape(q, [T, H, dk]), ops.reshape(k, [T, H, dk]), vw, { offsets, decay, scale: 1, initialState: init, returnState: true });
        const y = ops.add(x, block.out.forward(ops.mul(block.outNorm.forward(ops.reshape(r.output, [T, H * dv])), u)));
        return { y: y.toFloat32Array(), s: (r.state as Tensor).toFloat32Array() };
      }),
    );
    expectClose((fused.output as Tensor).toFloat32Array(), ref.y, 5e-5, 'output', seed);
    expectClose((fused.state as Tensor).toFloat32Array(), ref.s, 5e-5, 'state', seed);
    for (const t of [x, init, p.decay, fused.output, fused.state]) t?.dispose();
    enc.dispose();
  });

  test('bad arguments get errors naming them', () => {
    const D = 4, H = 1, dk = 2, dv = 3, T = 3;
    const t = (n: number, shape: number[]) => tensor(new Float32Array(n).fill(0.1), shape);
    const x = t(T * D, [T, D]);
    const p = {
      projWeight: t(H * (2 * dv + 2 * dk) * D, [H * (2 * dv + 2 * dk), D]),
      outWeight: t(D * H * dv, [D, H * dv]),
      decay: t(H, [H]),
      dk,
    };
    const offsets = Int32Array.of(0, 1, 3);
    noGrad(() => {
      expect(errorOf(() => ops.linearHstuBlock(x, p, { offsets: Int32Array.of(0, 2) }))).toMatch(/linearHstuBlock: offsets: expected offsets\[1\] = 3/);
      expect(errorOf(() => ops.linearHstuBlock(x, p, { offsets: Int32Array.of(0, 2, 1, 3) }))).toMatch(/offsets: expected non-decreasing values/);
      expect(errorOf(() => ops.linearHstuBlock(x, p, { offsets: 'x' as unknown as Int32Array }))).toMatch(/offsets: expected an Int32Array or an array of integers, got string/);
      expect(errorOf(() => ops.linearHstuBlock(x, { ...p, decay: null }, { offsets }))).toMatch(/linearHstuBlock: decay: expected a Tensor, got null/);
      expect(errorOf(() => ops.linearHstuBlock(x, { ...p, decay: tensor([1.5], [1]) }, { offsets }))).toMatch(/decay\[0\] must be in \[0, 1\], got 1\.5/);
      expect(errorOf(() => ops.linearHstuBlock(x, { ...p, projWeight: t(11 * D, [11, D]) }, { offsets }))).toMatch(/projWeight: expected H·\(2dv \+ 2dk\) rows with H = 1 \(decay\) and dk = 2, got 11/);
      expect(errorOf(() => ops.linearHstuBlock(x, { ...p, outWeight: t(D * 2, [D, 2]) }, { offsets }))).toMatch(/outWeight.*\[4, 3\]/);
      expect(errorOf(() => ops.linearHstuBlock(x, p, { offsets, write: t(2, [2]) }))).toMatch(/write: expected shape \[3\] or \[3, 1\], got \[2\]/);
      expect(errorOf(() => ops.linearHstuBlock(x, p, { offsets, write: tensor([1, 2, 0], [3]) }))).toMatch(/linearHstuBlock: write\[1\] must be in \[0, 1\], got 2/);
      expect(errorOf(() => ops.linearHstuBlock(x, p, { offsets, initialState: t(6, [1, 1, 2, 3]) }))).toMatch(/initialState: expected shape \[2, 1, 2, 3\]/);
      expect(errorOf(() => ops.linearHstuBlock(x, p, { offsets, output: false }))).toMatch(/leave nothing to compute/);
      expect(errorOf(() => ops.linearHstuBlock(x, p, { offsets, output: 1 as unknown as boolean }))).toMatch(/options\.output: expected a boolean, got number/);
    });
    const xg = tensor(new Float32Array(T * D), [T, D], { requiresGrad: true });
    expect(errorOf(() => ops.linearHstuBlock(xg, p, { offsets }))).toMatch(/inference only/);
    // A valid call: finite outputs, states only where asked.
    const r = noGrad(() => ops.linearHstuBlock(x, p, { offsets, output: false, returnState: true }));
    expect(r.output).toBeNull();
    expect(r.state?.shape).toEqual([2, H, dk, dv]);
    expect(Array.from((r.state as Tensor).toFloat32Array()).every(Number.isFinite)).toBe(true);
    for (const v of [x, xg, p.projWeight, p.outWeight, p.decay, r.state]) v?.dispose();
  });
});
