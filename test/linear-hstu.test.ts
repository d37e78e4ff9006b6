// nn.LinearHSTU and nn.HSTU blocks: incremental step() equals the full forward, packed equals padded,
// parameter gradients match finite differences of the block, the decay is learned through a sigmoid.
import { Random, Tensor, tensor, scope, memoryStats, nn, ops, noGrad } from '../src';
import { freshSeed, randomArray, tensorFrom, expectClose, errorOf } from './helpers';

function rows(x: Float32Array, D: number, b: number, t: number, L: number): Float32Array {
  return x.subarray((b * L + t) * D, (b * L + t + 1) * D);
}

function lossOf(y: Tensor, G: Tensor): Tensor {
  return ops.sum(ops.mul(y, G));
}

describe('nn.LinearHSTU', () => {
  for (const scale of [1 / 16, '1/t'] as const) {
    test(`step() equals the full forward (scale ${String(scale)})`, () => {
      const seed = freshSeed();
      const rng = new Random(seed);
      const B = 2;
      const L = 7;
      const D = 8;
      const m = new nn.LinearHSTU(D, { heads: 2, dqk: 3, dv: 4, scale, seed: seed & 0xffff }).eval();
      const xv = Float32Array.from(randomArray(rng, B * L * D));
      const x = tensor(xv, [B, L, D]);
      const full = noGrad(() => m.forward(x)).toFloat32Array();
      let st = m.initialState(B);
      for (let t = 0; t < L; t++) {
        const xt = new Float32Array(B * D);
        for (let b = 0; b < B; b++) xt.set(rows(xv, D, b, t, L), b * D);
        const r = noGrad(() => scope(() => m.step(st, tensor(xt, [B, D]))));
        const want: number[] = [];
        for (let b = 0; b < B; b++) want.push(...rows(full, D, b, t, L));
        expectClose(r.y.toFloat32Array(), want, 1e-5, `step ${t}`, seed);
        st.state.dispose();
        r.y.dispose();
        st = r.state;
      }
      st.state.dispose();
      x.dispose();
      m.dispose();
    });
  }

  test('packed batch equals padded batch with lengths', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const D = 6;
    const lengths = [4, 0, 1, 3];
    const L = 4;
    const m = new nn.LinearHSTU(D, { heads: 3, seed: 7 });
    const offsets = [0, 4, 4, 5, 8];
    const packed = randomArray(rng, 8 * D);
    const padded = new Float64Array(4 * L * D).fill(0.5);
    lengths.forEach((l, b) => padded.set(packed.subarray(offsets[b] * D, (offsets[b] + l) * D), b * L * D));
    const yp = m.forward(tensorFrom(packed, [8, D]), { offsets });
    const yd = m.forward(tensorFrom(padded, [4, L, D]), { lengths }).toFloat32Array();
    const gathered: number[] = [];
    lengths.forEach((l, b) => gathered.push(...yd.subarray(b * L * D, (b * L + l) * D)));
    expectClose(yp.toFloat32Array(), gathered, 1e-5, 'packed vs padded', seed);
    m.dispose();
  });

  test('gradients of the decay logit and projection match finite differences; no leaks', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const D = 4;
    const m = new nn.LinearHSTU(D, { heads: 2, dqk: 2, dv: 2, scale: 0.5, seed: 3 });
    const before = memoryStats().count;
    const x = tensorFrom(randomArray(rng, 2 * 5 * D), [2, 5, D]);
    const G = tensorFrom(randomArray(rng, 2 * 5 * D), [2, 5, D]);
    scope(() => lossOf(m.forward(x, { lengths: [5, 3] }), G).backward());
    const a = m.decayLogit as Tensor;
    const ga = (a.grad as Tensor).toFloat32Array();
    const w = m.proj.weight;
    const gw = (w.grad as Tensor).toFloat32Array();
    const evalLoss = (): number => noGrad(() => scope(() => lossOf(m.forward(x, { lengths: [5, 3] }), G).item()));
    const fd = (p: Tensor, i: number, h: number): number => {
      const d = p.data() as Float32Array;
      const old = d[i];
      d[i] = old + h;
      const lp = evalLoss();
      d[i] = old - h;
      const lm = evalLoss();
      d[i] = old;
      return (lp - lm) / (2 * h);
    };
    const num = [fd(a, 0, 1e-2), fd(a, 1, 1e-2)];
    expectClose([ga[0], ga[1]], num, 2e-2, 'decay logit grad', seed);
    const idx = [0, 5, 11, w.size - 1];
    expectClose(idx.map((i) => gw[i]), idx.map((i) => fd(w, i, 1e-2)), 2e-2, 'proj weight grad', seed);
    m.zeroGrad();
    x.dispose();
    G.dispose();
    expect(memoryStats().count).toBe(before);
    m.dispose();
  });

  test('bad inputs', () => {
    const m = new nn.LinearHSTU(4);
    const x = tensor(new Float32Array(2 * 3 * 5), [2, 3, 5]);
    expect(errorOf(() => m.forward(x))).toMatch(/LinearHSTU.forward: x: expected last dimension 4, got shape \[2, 3, 5\]/);
    const st = m.initialState(3);
    const x2 = tensor(new Float32Array(2 * 4), [2, 4]);
    expect(errorOf(() => m.step(st, x2))).toMatch(/LinearHSTU.step: state.state: expected shape \[2, 2, 2, 2\], got \[3, 2, 2, 2\]/);
    expect(errorOf(() => new nn.LinearHSTU(4, { decay: 'sometimes' as never }))).toMatch(/decay: expected 'learned' or 'none'/);
    for (const t of [x, x2, st.state]) t.dispose();
    m.dispose();
  });
});

describe('nn.HSTU', () => {
  test('step() with timestamps equals the full forward', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const B = 2;
    const L = 6;
    const D = 6;
    const m = new nn.HSTU(D, { heads: 2, maxLen: 4, timeBuckets: 20, seed: 5 }).eval();
    // Non-zero biases so the test covers them.
    (m.positionBias.data() as Float32Array).set(Float32Array.from(randomArray(rng, 4, 0.5)));
    (m.timeBias.data() as Float32Array).set(Float32Array.from(randomArray(rng, 20, 0.5)));
    const xv = Float32Array.from(randomArray(rng, B * L * D));
    const ts = new Int32Array(B * L);
    for (let i = 0; i < ts.length; i++) ts[i] = (i % L === 0 ? 1000 : ts[i - 1]) + rng.int(5000);
    const full = noGrad(() => m.forward(tensor(xv, [B, L, D]), { timestamps: tensor(ts, [B, L], { dtype: 'i32' }) })).toFloat32Array();
    let st = m.initialState();
    for (let t = 0; t < L; t++) {
      const xt = new Float32Array(B * D);
      for (let b = 0; b < B; b++) xt.set(rows(xv, D, b, t, L), b * D);
      const r = noGrad(() => m.step(st, tensor(xt, [B, D]), [ts[t], ts[L + t]]));
      const want: number[] = [];
      for (let b = 0; b < B; b++) want.push(...rows(full, D, b, t, L));
      expectClose(r.y.toFloat32Array(), want, 1e-5, `step ${t}`, seed);
      st = r.state;
    }
    m.dispose();
  });

  test('packed equals padded; gradients reach the position bias', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const D = 4;
    const m = new nn.HSTU(D, { heads: 1, maxLen: 8, seed: 2 });
    const lengths = [3, 1, 0];
    const offsets = [0, 3, 4, 4];
    const packed = randomArray(rng, 4 * D);
    const padded = new Float64Array(3 * 3 * D);
    lengths.forEach((l, b) => padded.set(packed.subarray(offsets[b] * D, (offsets[b] + l) * D), b * 3 * D));
    const yp = m.forward(tensorFrom(packed, [4, D]), { offsets });
    const yd = m.forward(tensorFrom(padded, [3, 3, D]), { lengths }).toFloat32Array();
    const gathered: number[] = [];
    lengths.forEach((l, b) => gathered.push(...yd.subarray(b * 3 * D, (b * 3 + l) * D)));
    expectClose(yp.toFloat32Array(), gathered, 1e-5, 'packed vs padded', seed);
    ops.sum(yp).backward();
    const gp = (m.positionBias.grad as Tensor).toFloat32Array();
    expect(gp.every(Number.isFinite)).toBe(true);
    expect(gp.slice(0, 3).some((g) => g !== 0)).toBe(true);
    m.dispose();
  });
});
