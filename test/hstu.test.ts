// ops.hstuAttention against a float64 reference (forward, gradients of q, k, v and both biases),
// packed == padded, bad inputs. Big-L cases live in native/tests/test_hstu.cpp.
import { Random, Tensor, tensor, memoryStats, ops } from '../src';
import { freshSeed, randomArray, tensorFrom, expectClose, gradCheck, errorOf } from './helpers';

interface Lay {
  B: number;
  H: number;
  D: number;
  E: number;
  L?: number;
  lengths?: number[];
  offsets?: number[];
}

interface RefOpts {
  scale: number;
  alpha: number;
  pos: Float64Array | null;
  tw: Float64Array | null;
  ts: Int32Array | null;
  div: number;
}

function seqList(l: Lay): { start: number; len: number }[] {
  const out = [];
  for (let b = 0; b < l.B; b++) {
    if (l.offsets) out.push({ start: l.offsets[b], len: l.offsets[b + 1] - l.offsets[b] });
    else out.push({ start: b * (l.L as number), len: l.lengths ? l.lengths[b] : (l.L as number) });
  }
  return out;
}

const rowsOf = (l: Lay): number => (l.offsets ? l.offsets[l.B] : l.B * (l.L as number));

function refHstu(l: Lay, q: Float64Array, k: Float64Array, v: Float64Array, o: RefOpts): Float64Array {
  const { H, D, E } = l;
  const out = new Float64Array(rowsOf(l) * H * E);
  for (const s of seqList(l)) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < s.len; i++) {
        for (let j = 0; j <= i; j++) {
          const ri = s.start + i;
          const rj = s.start + j;
          let x = 0;
          for (let p = 0; p < D; p++) x += q[(ri * H + h) * D + p] * k[(rj * H + h) * D + p];
          x *= o.alpha;
          if (o.pos) x += o.pos[Math.min(i - j, o.pos.length - 1)];
          if (o.tw && o.ts) {
            const dt = Math.max(Math.abs(o.ts[ri] - o.ts[rj]), 1);
            x += o.tw[Math.min(Math.floor(Math.log(dt) / o.div), o.tw.length - 1)];
          }
          const a = (x / (1 + Math.exp(-x))) * o.scale;
          for (let e = 0; e < E; e++) out[(ri * H + h) * E + e] += a * v[(rj * H + h) * E + e];
        }
      }
    }
  }
  return out;
}

function timestamps(rng: Random, n: number): Int32Array {
  const ts = new Int32Array(n);
  let t = 1_000_000;
  for (let i = 0; i < n; i++) {
    t += rng.uniform() < 0.5 ? rng.int(5) : rng.int(100000);
    ts[i] = t;
  }
  return ts;
}

describe('hstuAttention', () => {
  test('forward matches the float64 reference (padded/packed, biases, odd sizes)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const before = memoryStats().count;
    let n = 0;
    for (const L of [1, 2, 7, 64, 65]) {
      for (const d of [1, 3, 16]) {
        n++;
        const H = n % 2 ? 1 : 4;
        const packed = n % 3 === 0;
        const lay: Lay = packed
          ? { B: 3, H, D: d, E: d + 1, offsets: [0, L, L + rng.int(2), L + 1 + rng.int(L + 1)] }
          : { B: 3, H, D: d, E: d + 1, L, lengths: [L, rng.int(L + 1), 0] };
        const rows = rowsOf(lay);
        const lead = packed ? [rows] : [3, L];
        const q = Float64Array.from(Float32Array.from(randomArray(rng, rows * H * d, 0.7)));
        const k = Float64Array.from(Float32Array.from(randomArray(rng, rows * H * d, 0.7)));
        const v = Float64Array.from(Float32Array.from(randomArray(rng, rows * H * (d + 1))));
        const pos = n % 2 ? Float64Array.from(Float32Array.from(randomArray(rng, 1 + rng.int(L), 0.5))) : null;
        const tw = n % 3 !== 1 ? Float64Array.from(Float32Array.from(randomArray(rng, 40, 0.5))) : null;
        const ts = timestamps(rng, rows);
        const o: RefOpts = { scale: 1 / L, alpha: 0.8, pos, tw, ts, div: 0.301 };
        const tq = tensorFrom(q, [...lead, H, d]);
        const tk = tensorFrom(k, [...lead, H, d]);
        const tv = tensorFrom(v, [...lead, H, d + 1]);
        const tp = pos ? tensorFrom(pos, [pos.length]) : null;
        const tt = tw ? tensorFrom(tw, [tw.length]) : null;
        const tts = tensor(ts, lead, { dtype: 'i32' });
        const y = ops.hstuAttention(tq, tk, tv, {
          scale: 1 / L, alpha: 0.8, positionBias: tp, timeBias: tt, timestamps: tts, offsets: lay.offsets, lengths: lay.lengths,
        });
        expectClose(y.toFloat32Array(), refHstu(lay, q, k, v, o), 1e-5, `L=${L} d=${d} H=${H} ${packed ? 'packed' : 'padded'}`, seed);
        for (const t of [tq, tk, tv, tp, tt, tts, y]) t?.dispose();
      }
    }
    expect(memoryStats().count).toBe(before);
  });

  test('gradients of q, k, v, position bias and time bias (padded with lengths)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const lay: Lay = { B: 2, H: 2, D: 3, E: 2, L: 5, lengths: [5, 3] };
    const ts = timestamps(rng, 10);
    const tts = tensor(ts, [2, 5], { dtype: 'i32' });
    gradCheck({
      seed,
      what: 'hstuAttention',
      inputs: [randomArray(rng, 60, 0.7), randomArray(rng, 60, 0.7), randomArray(rng, 40), randomArray(rng, 4, 0.5), randomArray(rng, 30, 0.5)],
      shapes: [[2, 5, 2, 3], [2, 5, 2, 3], [2, 5, 2, 2], [4], [30]],
      tol: 1e-4,
      op: ([q, k, v, p, t]) => ops.hstuAttention(q, k, v, { scale: 0.2, alpha: 1.3, lengths: lay.lengths, positionBias: p, timeBias: t, timestamps: tts }),
      ref: ([q, k, v, p, t]) => refHstu(lay, q, k, v, { scale: 0.2, alpha: 1.3, pos: p, tw: t, ts, div: 0.301 }),
    });
    tts.dispose();
  });

  test('packed equals padded; padding rows are 0', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const lengths = [3, 0, 1, 6];
    const offsets = [0, 3, 3, 4, 10];
    const H = 2;
    const d = 4;
    const q = randomArray(rng, 10 * H * d);
    const k = randomArray(rng, 10 * H * d);
    const v = randomArray(rng, 10 * H * d);
    const scatter = (src: Float64Array, fill: number): Float64Array => {
      const dst = new Float64Array(4 * 6 * H * d).fill(fill);
      lengths.forEach((l, b) => dst.set(src.subarray(offsets[b] * H * d, (offsets[b] + l) * H * d), b * 6 * H * d));
      return dst;
    };
    const tp = [tensorFrom(q, [10, H, d]), tensorFrom(k, [10, H, d]), tensorFrom(v, [10, H, d])];
    const td = [tensorFrom(scatter(q, 9), [4, 6, H, d]), tensorFrom(scatter(k, -9), [4, 6, H, d]), tensorFrom(scatter(v, 3), [4, 6, H, d])];
    const yp = ops.hstuAttention(tp[0], tp[1], tp[2], { offsets, scale: 0.1 });
    const yd = ops.hstuAttention(td[0], td[1], td[2], { lengths, scale: 0.1 });
    const od = yd.toFloat32Array();
    const gathered: number[] = [];
    lengths.forEach((l, b) => gathered.push(...od.subarray(b * 6 * H * d, (b * 6 + l) * H * d)));
    expectClose(yp.toFloat32Array(), gathered, 1e-6, 'packed vs padded', seed);
    lengths.forEach((l, b) => {
      for (let i = (b * 6 + l) * H * d; i < (b + 1) * 6 * H * d; i++) expect(od[i]).toBe(0);
    });
    for (const t of [...tp, ...td, yp, yd]) t.dispose();
  });

  test('bad inputs give clear errors', () => {
    const q = tensor(new Float32Array(2 * 3 * 2 * 4), [2, 3, 2, 4]);
    const k = tensor(new Float32Array(2 * 3 * 1 * 4), [2, 3, 1, 4]);
    expect(errorOf(() => ops.hstuAttention(q, k, q))).toMatch(/hstuAttention: k: expected shape \[2, 3, 2, 4\], got \[2, 3, 1, 4\]/);
    const tw = tensor([0.1, 0.2]);
    expect(errorOf(() => ops.hstuAttention(q, q, q, { timeBias: tw }))).toMatch(/hstuAttention: timestamps: required when timeBias is given/);
    const tsf = tensor(new Float32Array(6), [2, 3]);
    expect(errorOf(() => ops.hstuAttention(q, q, q, { timeBias: tw, timestamps: tsf }))).toMatch(/timestamps: expected dtype i32, got f32/);
    const p = tensor(new Float32Array(5 * 2 * 4), [5, 2, 4]);
    expect(errorOf(() => ops.hstuAttention(p, p, p, { offsets: [0, 3, 2, 5] }))).toMatch(/hstuAttention: offsets: expected non-decreasing values/);
    expect(errorOf(() => ops.hstuAttention(p, p, p, { offsets: [0, 3, 7] }))).toMatch(/past the end of the packed rows \(5\)/);
    expect(errorOf(() => ops.hstuAttention(q, q, q, { scale: NaN }))).toMatch(/hstuAttention: scale: expected a finite number, got NaN/);
    const qi = tensor(new Int32Array(2 * 3 * 2 * 4), [2, 3, 2, 4]);
    expect(errorOf(() => ops.hstuAttention(qi, q, q))).toMatch(/hstuAttention: q: expected dtype f32, got i32/);
    for (const t of [q, k, tw, tsf, p, qi] as Tensor[]) t.dispose();
  });
});
