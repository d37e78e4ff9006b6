// ops.linearRecurrence / ops.linearRecurrenceStep against float64 references (token-by-token scan and
// the O(L²) masked form), fresh random inputs (seed printed on failure), gradient checks, jagged vs
// padded, chunk-size invariance, extreme decays, step == full, bad inputs. Big-L cases live in the
// native tests (native/tests/test_linrec.cpp).
import { Random, Tensor, tensor, memoryStats, scope, ops } from '../src';
import { freshSeed, randomArray, tensorFrom, expectClose, gradCheck, errorOf } from './helpers';

interface Layout {
  B: number;
  H: number;
  dk: number;
  dv: number;
  /** padded */
  L?: number;
  lengths?: number[];
  /** packed */
  offsets?: number[];
}

interface Seq {
  start: number;
  len: number;
}

function seqs(lay: Layout): Seq[] {
  const out: Seq[] = [];
  for (let b = 0; b < lay.B; b++) {
    if (lay.offsets) out.push({ start: lay.offsets[b], len: lay.offsets[b + 1] - lay.offsets[b] });
    else out.push({ start: b * (lay.L as number), len: lay.lengths ? lay.lengths[b] : (lay.L as number) });
  }
  return out;
}

function rowsOf(lay: Layout): number {
  return lay.offsets ? lay.offsets[lay.B] : lay.B * (lay.L as number);
}

type DecayMode = 'none' | 'head' | 'step';

interface RefArgs {
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  decay: Float64Array | null;
  mode: DecayMode;
  init: Float64Array | null;
  scale: number | '1/t';
}

/** Token-by-token scan in float64: output and final state. */
function refScan(lay: Layout, a: RefArgs): { out: Float64Array; state: Float64Array } {
  const { H, dk, dv } = lay;
  const rows = rowsOf(lay);
  const out = new Float64Array(rows * H * dv);
  const state = new Float64Array(lay.B * H * dk * dv);
  seqs(lay).forEach((s, b) => {
    for (let h = 0; h < H; h++) {
      const S = new Float64Array(dk * dv);
      if (a.init) for (let i = 0; i < dk * dv; i++) S[i] = a.init[(b * H + h) * dk * dv + i];
      for (let t = 0; t < s.len; t++) {
        const row = s.start + t;
        const g = a.mode === 'head' ? (a.decay as Float64Array)[h] : a.mode === 'step' ? (a.decay as Float64Array)[row * H + h] : 1;
        const c = a.scale === '1/t' ? 1 / (t + 1) : a.scale;
        for (let p = 0; p < dk; p++) {
          const kp = a.k[(row * H + h) * dk + p];
          for (let j = 0; j < dv; j++) S[p * dv + j] = g * S[p * dv + j] + kp * a.v[(row * H + h) * dv + j];
        }
        for (let j = 0; j < dv; j++) {
          let o = 0;
          for (let p = 0; p < dk; p++) o += a.q[(row * H + h) * dk + p] * S[p * dv + j];
          out[(row * H + h) * dv + j] = c * o;
        }
      }
      state.set(S, (b * H + h) * dk * dv);
    }
  });
  return { out, state };
}

/** The O(L²) masked form o_t = c_t Σ_{j≤t} (Π_{m=j+1..t} γ_m)(q_t·k_j) v_j (no initial state). */
function refQuadratic(lay: Layout, a: RefArgs): Float64Array {
  const { H, dk, dv } = lay;
  const out = new Float64Array(rowsOf(lay) * H * dv);
  for (const s of seqs(lay)) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < s.len; t++) {
        const rt = s.start + t;
        const c = a.scale === '1/t' ? 1 / (t + 1) : a.scale;
        let w = 1;
        for (let j = t; j >= 0; j--) {
          const rj = s.start + j;
          let qk = 0;
          for (let p = 0; p < dk; p++) qk += a.q[(rt * H + h) * dk + p] * a.k[(rj * H + h) * dk + p];
          for (let e = 0; e < dv; e++) out[(rt * H + h) * dv + e] += c * w * qk * a.v[(rj * H + h) * dv + e];
          w *= a.mode === 'head' ? (a.decay as Float64Array)[h] : a.mode === 'step' ? (a.decay as Float64Array)[rj * H + h] : 1;
        }
      }
    }
  }
  return out;
}

function f32(a: Float64Array): Float64Array {
  return Float64Array.from(Float32Array.from(a));
}

function uniformArray(rng: Random, n: number, lo: number, hi: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.uniform();
  return a;
}

interface Case {
  lay: Layout;
  args: RefArgs;
  tensors: { q: Tensor; k: Tensor; v: Tensor; decay: Tensor | null; init: Tensor | null };
}

function makeCase(rng: Random, lay: Layout, mode: DecayMode, withInit: boolean, scale: number | '1/t', gmin = 0.5): Case {
  const rows = rowsOf(lay);
  const lead = lay.offsets ? [rows] : [lay.B, lay.L as number];
  const q = f32(randomArray(rng, rows * lay.H * lay.dk));
  const k = f32(randomArray(rng, rows * lay.H * lay.dk));
  const v = f32(randomArray(rng, rows * lay.H * lay.dv));
  const decay = mode === 'head' ? f32(uniformArray(rng, lay.H, gmin, 1)) : mode === 'step' ? f32(uniformArray(rng, rows * lay.H, gmin, 1)) : null;
  const init = withInit ? f32(randomArray(rng, lay.B * lay.H * lay.dk * lay.dv, 0.5)) : null;
  return {
    lay,
    args: { q, k, v, decay, mode, init, scale },
    tensors: {
      q: tensorFrom(q, [...lead, lay.H, lay.dk]),
      k: tensorFrom(k, [...lead, lay.H, lay.dk]),
      v: tensorFrom(v, [...lead, lay.H, lay.dv]),
      decay: decay === null ? null : tensorFrom(decay, mode === 'head' ? [lay.H] : [...lead, lay.H]),
      init: init === null ? null : tensorFrom(init, [lay.B, lay.H, lay.dk, lay.dv]),
    },
  };
}

function runCase(c: Case, chunkSize?: number): { output: Tensor; state: Tensor } {
  const t = c.tensors;
  return ops.linearRecurrence(t.q, t.k, t.v, {
    decay: t.decay,
    initialState: t.init,
    scale: c.args.scale,
    lengths: c.lay.lengths,
    offsets: c.lay.offsets,
    returnState: true,
    chunkSize,
  });
}

function disposeCase(c: Case): void {
  for (const t of Object.values(c.tensors)) t?.dispose();
}

describe('linearRecurrence forward', () => {
  test('matches the float64 scan over L, d, H, decay modes, layouts, scales', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const before = memoryStats().count;
    let n = 0;
    for (const L of [1, 2, 7, 64, 65]) {
      for (const d of [1, 3, 16]) {
        for (const mode of ['none', 'head', 'step'] as const) {
          n++;
          const H = n % 2 ? 1 : 4;
          const packed = n % 3 === 0;
          const B = 3;
          let lay: Layout;
          if (packed) {
            const offsets = [0];
            for (let b = 0; b < B; b++) offsets.push(offsets[b] + (b === 1 ? rng.int(2) : rng.int(L + 1)));
            lay = { B, H, dk: d, dv: d + (n % 2), offsets };
          } else {
            lay = { B, H, dk: d, dv: d + (n % 2), L, lengths: [L, rng.int(L + 1), rng.int(L + 1)] };
          }
          const scale = n % 5 === 0 ? '1/t' : 1 / L;
          const c = makeCase(rng, lay, mode, n % 2 === 0, scale);
          const r = runCase(c, n % 4 === 0 ? 16 : undefined);
          const ref = refScan(lay, c.args);
          const what = `L=${L} d=${d} H=${H} ${mode} ${packed ? 'packed' : 'padded'}`;
          expectClose(r.output.toFloat32Array(), ref.out, 1e-5, `${what} output`, seed);
          expectClose(r.state.toFloat32Array(), ref.state, 1e-5, `${what} state`, seed);
          r.output.dispose();
          r.state.dispose();
          disposeCase(c);
        }
      }
    }
    expect(memoryStats().count).toBe(before);
  });

  test('scan reference agrees with the O(L²) masked form; L = 1000 long sequence', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const lay: Layout = { B: 2, H: 2, dk: 5, dv: 4, offsets: [0, 37, 37 + 50] };
    const c = makeCase(rng, lay, 'step', false, 0.1);
    const out = ops.linearRecurrence(c.tensors.q, c.tensors.k, c.tensors.v, { decay: c.tensors.decay, scale: 0.1, offsets: lay.offsets });
    expectClose(out.toFloat32Array(), refQuadratic(lay, c.args), 1e-5, 'vs quadratic form', seed);
    expectClose(refScan(lay, c.args).out, refQuadratic(lay, c.args), 1e-12, 'scan vs quadratic reference', seed);
    out.dispose();
    disposeCase(c);
    const long: Layout = { B: 1, H: 1, dk: 8, dv: 8, L: 1000 };
    const c2 = makeCase(rng, long, 'head', true, 1 / 1000, 0.98);
    const r = runCase(c2);
    const ref = refScan(long, c2.args);
    expectClose(r.output.toFloat32Array(), ref.out, 1e-5, 'L=1000 output', seed);
    expectClose(r.state.toFloat32Array(), ref.state, 1e-5, 'L=1000 state', seed);
    r.output.dispose();
    r.state.dispose();
    disposeCase(c2);
  });

  test('packed batch with empty and length-1 sequences equals the padded batch; padding rows are 0', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const lengths = [0, 1, 9, 0, 5];
    const L = 9;
    const H = 2;
    const d = 3;
    const offsets = [0];
    for (const l of lengths) offsets.push(offsets[offsets.length - 1] + l);
    const packed = makeCase(rng, { B: 5, H, dk: d, dv: d, offsets }, 'step', true, 0.25);
    // Scatter the packed rows into a padded batch whose padding holds garbage (it must not matter).
    const scatter = (src: Float64Array, w: number, fill: number): Float64Array => {
      const dst = new Float64Array(5 * L * w).fill(fill);
      lengths.forEach((l, b) => dst.set(src.subarray(offsets[b] * w, (offsets[b] + l) * w), b * L * w));
      return dst;
    };
    const pad = {
      q: tensorFrom(scatter(packed.args.q, H * d, 3), [5, L, H, d]),
      k: tensorFrom(scatter(packed.args.k, H * d, -2), [5, L, H, d]),
      v: tensorFrom(scatter(packed.args.v, H * d, 7), [5, L, H, d]),
      decay: tensorFrom(scatter(packed.args.decay as Float64Array, H, 0.5), [5, L, H]),
    };
    const rp = runCase(packed);
    const rd = ops.linearRecurrence(pad.q, pad.k, pad.v, {
      decay: pad.decay, lengths, scale: 0.25, initialState: packed.tensors.init, returnState: true,
    });
    const outPad = rd.output.toFloat32Array();
    const gathered: number[] = [];
    lengths.forEach((l, b) => gathered.push(...outPad.subarray(b * L * H * d, (b * L + l) * H * d)));
    expectClose(rp.output.toFloat32Array(), gathered, 1e-6, 'packed vs padded output', seed);
    expectClose(rp.state.toFloat32Array(), rd.state.toFloat32Array(), 1e-6, 'packed vs padded state', seed);
    lengths.forEach((l, b) => {
      for (let i = (b * L + l) * H * d; i < (b + 1) * L * H * d; i++) expect(outPad[i]).toBe(0);
    });
    // Empty sequences pass the initial state through unchanged.
    const init = (packed.tensors.init as Tensor).toFloat32Array();
    const stt = rp.state.toFloat32Array();
    for (let i = 0; i < H * d * d; i++) expect(stt[i]).toBe(init[i]);
    for (const t of [rp.output, rp.state, rd.output, rd.state, ...Object.values(pad)]) t.dispose();
    disposeCase(packed);
  });

  test('chunk size does not change results beyond fp32 rounding', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const c = makeCase(rng, { B: 2, H: 2, dk: 6, dv: 5, offsets: [0, 130, 130 + 77] }, 'step', true, '1/t');
    const base = runCase(c, 64);
    for (const cs of [1, 5, 16, 128, 1024]) {
      const r = runCase(c, cs);
      expectClose(r.output.toFloat32Array(), base.output.toFloat32Array(), 1e-5, `chunk ${cs} output`, seed);
      expectClose(r.state.toFloat32Array(), base.state.toFloat32Array(), 1e-5, `chunk ${cs} state`, seed);
      r.output.dispose();
      r.state.dispose();
    }
    base.output.dispose();
    base.state.dispose();
    disposeCase(c);
  });

  test('extreme decays (0, 1e-6..1 per step, ≈1 per head) stay finite and correct', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const lay: Layout = { B: 2, H: 2, dk: 4, dv: 4, L: 150 };
    const c = makeCase(rng, lay, 'step', true, 1);
    const dec = c.args.decay as Float64Array;
    for (let i = 0; i < dec.length; i++) dec[i] = Math.fround(10 ** (-6 * rng.uniform()));
    dec[0] = 0;
    dec[7] = 1;
    c.tensors.decay?.dispose();
    c.tensors.decay = tensorFrom(dec, [2, 150, 2]);
    const r = runCase(c);
    const ref = refScan(lay, c.args);
    expect(r.output.toFloat32Array().every(Number.isFinite)).toBe(true);
    expectClose(r.output.toFloat32Array(), ref.out, 1e-5, 'tiny per-step decays', seed);
    const g = tensor([0, 0.9999999], [2], { requiresGrad: true });
    const q = c.tensors.q;
    const y = ops.linearRecurrence(q, c.tensors.k, c.tensors.v, { decay: g, scale: 1 });
    y.backward(tensorFrom(randomArray(rng, y.size), y.shape));
    expect(Array.from((g.grad as Tensor).toFloat32Array()).every(Number.isFinite)).toBe(true);
    for (const t of [r.output, r.state, g, y]) t.dispose();
    disposeCase(c);
  });
});

describe('linearRecurrence gradients', () => {
  const shapesFor = (lay: Layout): (readonly number[])[] => {
    const rows = rowsOf(lay);
    const lead = lay.offsets ? [rows] : [lay.B, lay.L as number];
    return [[...lead, lay.H, lay.dk], [...lead, lay.H, lay.dk], [...lead, lay.H, lay.dv]];
  };

  for (const mode of ['head', 'step'] as const) {
    test(`q, k, v, decay (${mode}) and initial state, padded with lengths`, () => {
      const seed = freshSeed();
      const rng = new Random(seed);
      const lay: Layout = { B: 2, H: 2, dk: 3, dv: 2, L: 6, lengths: [6, 4] };
      const rows = rowsOf(lay);
      const inputs = [
        randomArray(rng, rows * 6), randomArray(rng, rows * 6), randomArray(rng, rows * 4),
        uniformArray(rng, mode === 'head' ? 2 : rows * 2, 0.3, 0.95),
        randomArray(rng, 2 * 2 * 3 * 2, 0.5),
      ];
      const shapes = [...shapesFor(lay), mode === 'head' ? [2] : [2, 6, 2], [2, 2, 3, 2]];
      gradCheck({
        seed,
        what: `linearRecurrence ${mode}`,
        inputs,
        shapes,
        tol: 1e-4,
        op: ([q, k, v, g, s0]) => ops.linearRecurrence(q, k, v, { decay: g, initialState: s0, lengths: lay.lengths, scale: 0.5, chunkSize: 4 }),
        ref: ([q, k, v, g, s0]) => refScan(lay, { q, k, v, decay: g, mode, init: s0, scale: 0.5 }).out,
      });
    });
  }

  test('gradients through the returned final state (packed, 1/t scale)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const lay: Layout = { B: 3, H: 1, dk: 2, dv: 3, offsets: [0, 5, 5, 12] };
    const rows = 12;
    gradCheck({
      seed,
      what: 'linearRecurrence state',
      inputs: [randomArray(rng, rows * 2), randomArray(rng, rows * 2), randomArray(rng, rows * 3), uniformArray(rng, rows, 0.2, 1), randomArray(rng, 3 * 6)],
      shapes: [[rows, 1, 2], [rows, 1, 2], [rows, 1, 3], [rows, 1], [3, 1, 2, 3]],
      tol: 1e-4,
      op: ([q, k, v, g, s0]) => ops.linearRecurrence(q, k, v, { decay: g, initialState: s0, offsets: lay.offsets, scale: '1/t', returnState: true, chunkSize: 3 }).state,
      ref: ([q, k, v, g, s0]) => refScan(lay, { q, k, v, decay: g, mode: 'step', init: s0, scale: '1/t' }).state,
    });
  });
});

describe('linearRecurrenceStep', () => {
  test('token-by-token steps equal the full forward (per-head decay, scale 1/L)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const B = 2;
    const L = 9;
    const H = 2;
    const dk = 4;
    const dv = 3;
    const lay: Layout = { B, H, dk, dv, L };
    const c = makeCase(rng, lay, 'head', true, 1 / L);
    const full = runCase(c);
    const fullOut = full.output.toFloat32Array();
    let state = c.tensors.init as Tensor;
    const q = c.args.q;
    const k = c.args.k;
    const v = c.args.v;
    for (let t = 0; t < L; t++) {
      const r = scope(() => {
        const pick = (src: Float64Array, d: number): Tensor => {
          const a = new Float64Array(B * H * d);
          for (let b = 0; b < B; b++) a.set(src.subarray(((b * L + t) * H) * d, ((b * L + t) * H + H) * d), b * H * d);
          return tensorFrom(a, [B, H, d]);
        };
        return ops.linearRecurrenceStep(state, pick(q, dk), pick(k, dk), pick(v, dv), c.tensors.decay, { scale: 1 / L });
      });
      const o = r.output.toFloat32Array();
      const want: number[] = [];
      for (let b = 0; b < B; b++) want.push(...fullOut.subarray(((b * L + t) * H) * dv, ((b * L + t) * H + H) * dv));
      expectClose(o, want, 1e-5, `step ${t}`, seed);
      if (state !== c.tensors.init) state.dispose();
      state = r.state;
      r.output.dispose();
    }
    expectClose(state.toFloat32Array(), full.state.toFloat32Array(), 1e-5, 'final state', seed);
    for (const t of [state, full.output, full.state]) t.dispose();
    disposeCase(c);
  });
});

describe('linearRecurrence bad inputs', () => {
  test('clear errors naming the op, the argument, expected and actual', () => {
    const q = tensor(new Float32Array(2 * 3 * 2 * 4), [2, 3, 2, 4]);
    const v = tensor(new Float32Array(2 * 3 * 2 * 4), [2, 3, 2, 4]);
    const k3 = tensor(new Float32Array(2 * 3 * 3 * 4), [2, 3, 3, 4]);
    const v3 = tensor(new Float32Array(2 * 3 * 3 * 4), [2, 3, 3, 4]);
    expect(errorOf(() => ops.linearRecurrence(q, k3, v))).toMatch(/linearRecurrence: k: expected shape \[2, 3, 2, 4\], got \[2, 3, 3, 4\]/);
    expect(errorOf(() => ops.linearRecurrence(q, q, v3))).toMatch(/linearRecurrence: v: expected shape \[2, 3, 2, \*\], got \[2, 3, 3, 4\]/);
    const qi = tensor(new Int32Array(2 * 3 * 2 * 4), [2, 3, 2, 4]);
    expect(errorOf(() => ops.linearRecurrence(qi, q, v))).toMatch(/linearRecurrence: q: expected dtype f32, got i32/);
    const p = tensor(new Float32Array(6 * 2 * 4), [6, 2, 4]);
    expect(errorOf(() => ops.linearRecurrence(p, p, p, { offsets: [0, 4, 2, 6] }))).toMatch(/offsets: expected non-decreasing values, got offsets\[2\] = 2 < offsets\[1\] = 4/);
    expect(errorOf(() => ops.linearRecurrence(p, p, p, { offsets: [0, 4, 9] }))).toMatch(/offsets\[2\] = 9 is past the end of the packed rows \(6\)/);
    expect(errorOf(() => ops.linearRecurrence(p, p, p, { offsets: [0, 4, 5] }))).toMatch(/expected offsets\[2\] = 6/);
    expect(errorOf(() => ops.linearRecurrence(p, p, p, { offsets: [1, 4, 6] }))).toMatch(/offsets\[0\]: expected 0, got 1/);
    expect(errorOf(() => ops.linearRecurrence(p, p, p, { offsets: new Float32Array([0, 6]) as unknown as Int32Array }))).toMatch(/offsets: expected an Int32Array/);
    expect(errorOf(() => ops.linearRecurrence(q, q, v, { lengths: [3, 4] }))).toMatch(/lengths\[1\]: expected 0..3, got 4/);
    expect(errorOf(() => ops.linearRecurrence(q, q, v, { lengths: [3] }))).toMatch(/lengths: expected 2 entries/);
    const g3 = tensor([0.5, 0.5, 0.5]);
    expect(errorOf(() => ops.linearRecurrence(q, q, v, { decay: g3 }))).toMatch(/decay: expected shape \[2\] \(per head\) or \[2, 3, 2\] \(per step\), got \[3\]/);
    const bad = tensor([0.5, 1.5]);
    expect(errorOf(() => ops.linearRecurrence(q, q, v, { decay: bad }))).toMatch(/linearRecurrence: decay: expected values in \[0, 1\], got 1.5/);
    const nan = tensor([0.5, NaN]);
    expect(errorOf(() => ops.linearRecurrence(q, q, v, { decay: nan }))).toMatch(/linearRecurrence: decay: expected values in \[0, 1\]/);
    const s0 = tensor(new Float32Array(2 * 2 * 4 * 3), [2, 2, 4, 3]);
    expect(errorOf(() => ops.linearRecurrence(q, q, v, { initialState: s0 }))).toMatch(/initialState: expected shape \[2, 2, 4, 4\], got \[2, 2, 4, 3\]/);
    expect(errorOf(() => ops.linearRecurrence(q, q, v, { scale: '1/L' as never }))).toMatch(/scale: expected a finite number or '1\/t'/);
    expect(errorOf(() => ops.linearRecurrence(q, q, v, { chunkSize: 0 }))).toMatch(/chunkSize: expected an integer in \[1, 1024\], got 0/);
    expect(errorOf(() => ops.linearRecurrence(q, q, v, { offsets: [0, 1, 2], lengths: [1, 1] }))).toMatch(/either offsets/);
    const st = tensor(new Float32Array(2 * 2 * 4 * 4), [2, 2, 4, 4]);
    const q1 = tensor(new Float32Array(2 * 2 * 4), [2, 2, 4]);
    const v1 = tensor(new Float32Array(2 * 2 * 3), [2, 2, 3]);
    expect(errorOf(() => ops.linearRecurrenceStep(st, q1, q1, v1))).toMatch(/linearRecurrenceStep: state: expected shape \[2, 2, 4, 3\], got \[2, 2, 4, 4\]/);
    q.dispose();
    expect(errorOf(() => ops.linearRecurrence(q, q, v))).toMatch(/linearRecurrence: q: tensor \[2, 3, 2, 4\] has been disposed/);
    for (const t of [v, k3, v3, qi, p, g3, bad, nan, s0, st, q1, v1]) t.dispose();
  });
});
