// ops.groupedAttention against a float64 reference: forward, analytic backward, finite differences,
// masks with fully masked rows, poisoned outputs, bad inputs.
import { Random, full, memoryStats, ops, tensor, zeros, noGrad, type Tensor } from '../src';
import { native } from '../src/native';
import { asF64, errorOf, expectClose, expectCloseFloor, freshSeed, gradCheck, randomArray, rms, tensorFrom } from './helpers';

interface Dims {
  N: number;
  H: number;
  Tq: number;
  Tk: number;
  d: number;
}

/**
 * Float64 forward + backward of masked softmax attention (explicit loops, no shared code). dqScale /
 * dkScale bound the terms each gradient element sums: the same formula with |dp_j| + Σ p_l |dp_l|
 * (dp_j = Σ_c |g_c v_jc|) in place of dp_j − D. The softmax gradient subtracts D from each dp_j, so
 * when the keys' values nearly agree (or one key holds almost all the weight) dq and dk are a small
 * difference of O(1) float32 terms: a correct kernel is then accurate relative to these scales,
 * not to the gradient itself (one fresh seed found 2e-4 relative error on a 3.6e-4 dk that way).
 */
function reference(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, mask: ArrayLike<number> | null,
  g: ArrayLike<number> | null, { N, H, Tq, Tk, d }: Dims, scale: number,
): { out: Float64Array; dq: Float64Array; dk: Float64Array; dv: Float64Array; dqScale: Float64Array; dkScale: Float64Array } {
  const out = new Float64Array(N * H * Tq * d);
  const dq = new Float64Array(out.length);
  const dk = new Float64Array(N * H * Tk * d);
  const dv = new Float64Array(dk.length);
  const dqScale = new Float64Array(dq.length);
  const dkScale = new Float64Array(dk.length);
  for (let n = 0; n < N; n++) {
    for (let h = 0; h < H; h++) {
      const row = n * H + h;
      for (let i = 0; i < Tq; i++) {
        const qo = (row * Tq + i) * d;
        const s = new Float64Array(Tk);
        const present = new Array<boolean>(Tk);
        let mx = -Infinity;
        for (let j = 0; j < Tk; j++) {
          present[j] = mask === null || mask[n * Tk + j] !== 0;
          if (!present[j]) continue;
          let acc = 0;
          for (let c = 0; c < d; c++) acc += q[qo + c] * k[(row * Tk + j) * d + c];
          s[j] = acc * scale;
          mx = Math.max(mx, s[j]);
        }
        if (mx === -Infinity) continue;
        const p = new Float64Array(Tk);
        let sum = 0;
        for (let j = 0; j < Tk; j++) if (present[j]) sum += p[j] = Math.exp(s[j] - mx);
        for (let j = 0; j < Tk; j++) p[j] /= sum;
        const dp = new Float64Array(Tk);
        const dpAbs = new Float64Array(Tk);
        for (let j = 0; j < Tk; j++) {
          for (let c = 0; c < d; c++) {
            out[qo + c] += p[j] * v[(row * Tk + j) * d + c];
            if (g === null) continue;
            const gv = g[qo + c] * v[(row * Tk + j) * d + c];
            dp[j] += gv;
            dpAbs[j] += Math.abs(gv);
          }
        }
        if (g === null) continue;
        let D = 0;
        let DAbs = 0;
        for (let j = 0; j < Tk; j++) {
          D += p[j] * dp[j];
          DAbs += p[j] * dpAbs[j];
        }
        for (let j = 0; j < Tk; j++) {
          const ds = p[j] * (dp[j] - D) * scale;
          const dsAbs = p[j] * (dpAbs[j] + DAbs) * scale;
          for (let c = 0; c < d; c++) {
            dq[qo + c] += ds * k[(row * Tk + j) * d + c];
            dk[(row * Tk + j) * d + c] += ds * q[qo + c];
            dv[(row * Tk + j) * d + c] += p[j] * g[qo + c];
            dqScale[qo + c] += dsAbs * Math.abs(k[(row * Tk + j) * d + c]);
            dkScale[(row * Tk + j) * d + c] += dsAbs * Math.abs(q[qo + c]);
          }
        }
      }
    }
  }
  return { out, dq, dk, dv, dqScale, dkScale };
}

/** Random mask: row 1 (and every third after it) fully masked, the rest drop keys with p = 0.3. */
function randomMask(rng: Random, N: number, Tk: number): Float64Array {
  const m = new Float64Array(N * Tk);
  for (let n = 0; n < N; n++) for (let j = 0; j < Tk; j++) m[n * Tk + j] = n % 3 !== 1 && rng.uniform() > 0.3 ? 1 : 0;
  return m;
}

describe('ops.groupedAttention', () => {
  test('forward and backward match the float64 reference (Tq × Tk × d grid, with and without masks)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const before = memoryStats().count;
    for (const Tq of [1, 3]) {
      for (const Tk of [1, 2, 9, 33]) {
        for (const d of [1, 8, 64]) {
          for (const masked of [false, true]) {
            const dims: Dims = { N: 2 + rng.int(5), H: 1 + rng.int(3), Tq, Tk, d };
            const { N, H } = dims;
            const what = `Tq=${Tq} Tk=${Tk} d=${d} N=${N} H=${H}${masked ? ' masked' : ''}`;
            const q = tensorFrom(randomArray(rng, N * H * Tq * d), [N, H, Tq, d], true);
            const k = tensorFrom(randomArray(rng, N * H * Tk * d), [N, H, Tk, d], true);
            const v = tensorFrom(randomArray(rng, N * H * Tk * d), [N, H, Tk, d], true);
            const mask = masked ? tensorFrom(randomMask(rng, N, Tk), [N, Tk]) : null;
            const scale = (1 / Math.sqrt(d)) * (0.5 + rng.uniform());
            const G = randomArray(rng, N * H * Tq * d);
            const out = ops.groupedAttention(q, k, v, { keyMask: mask, scale });
            expect(out.shape).toEqual([N, H, Tq, d]);
            const gT = tensorFrom(G, out.shape);
            out.backward(gT);
            gT.dispose();
            const ref = reference(asF64(q), asF64(k), asF64(v), mask && asF64(mask), Float64Array.from(Float32Array.from(G)), dims, scale);
            expectClose(out.toFloat32Array(), ref.out, 1e-5, `${what} forward`, seed);
            expectCloseFloor((q.grad as Tensor).toFloat32Array(), ref.dq, 1e-5, rms(ref.dqScale), `${what} dq`, seed);
            expectCloseFloor((k.grad as Tensor).toFloat32Array(), ref.dk, 1e-5, rms(ref.dkScale), `${what} dk`, seed);
            expectClose((v.grad as Tensor).toFloat32Array(), ref.dv, 1e-5, `${what} dv`, seed);
            if (masked) {
              // Fully masked row 1: exact zeros, not NaN, in the output and in all its gradients.
              const o = out.toFloat32Array().subarray(H * Tq * d, 2 * H * Tq * d);
              const gq = (q.grad as Tensor).toFloat32Array().subarray(H * Tq * d, 2 * H * Tq * d);
              const gk = (k.grad as Tensor).toFloat32Array().subarray(H * Tk * d, 2 * H * Tk * d);
              const gv = (v.grad as Tensor).toFloat32Array().subarray(H * Tk * d, 2 * H * Tk * d);
              for (const a of [o, gq, gk, gv]) expect(a.every((x) => x === 0)).toBe(true);
            }
            for (const t of [q, k, v, out]) t.dispose();
            mask?.dispose();
          }
        }
      }
    }
    expect(memoryStats().count).toBe(before);
  });

  test('default scale is 1/sqrt(d); large logits stay finite', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const dims: Dims = { N: 5, H: 2, Tq: 3, Tk: 9, d: 8 };
    const q = tensorFrom(randomArray(rng, 5 * 2 * 3 * 8, 40), [5, 2, 3, 8]);
    const k = tensorFrom(randomArray(rng, 5 * 2 * 9 * 8), [5, 2, 9, 8]);
    const v = tensorFrom(randomArray(rng, 5 * 2 * 9 * 8), [5, 2, 9, 8]);
    const out = ops.groupedAttention(q, k, v);
    const ref = reference(asF64(q), asF64(k), asF64(v), null, null, dims, 1 / Math.sqrt(8));
    expectClose(out.toFloat32Array(), ref.out, 1e-5, 'default scale, |logits| ~ 100', seed);
    for (const t of [q, k, v, out]) t.dispose();
  });

  test('the kernels write every output element (outputs poisoned with NaN)', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const dims: Dims = { N: 7, H: 3, Tq: 3, Tk: 9, d: 8 };
    const { N, H, Tq, Tk, d } = dims;
    const q = tensorFrom(randomArray(rng, N * H * Tq * d), [N, H, Tq, d]);
    const k = tensorFrom(randomArray(rng, N * H * Tk * d), [N, H, Tk, d]);
    const v = tensorFrom(randomArray(rng, N * H * Tk * d), [N, H, Tk, d]);
    const g = tensorFrom(randomArray(rng, N * H * Tq * d), [N, H, Tq, d]);
    const mask = tensorFrom(randomMask(rng, N, Tk), [N, Tk]);
    const out = full([N, H, Tq, d], NaN);
    const dq = full([N, H, Tq, d], NaN);
    const dk = full([N, H, Tk, d], NaN);
    const dv = full([N, H, Tk, d], NaN);
    const scale = 0.3;
    native().groupedAttentionForward(out.storage, q.storage, k.storage, v.storage, mask.storage, N, H, Tq, Tk, d, scale);
    native().groupedAttentionBackward(dq.storage, dk.storage, dv.storage, g.storage, q.storage, k.storage, v.storage, mask.storage, N, H, Tq, Tk, d, scale);
    const ref = reference(asF64(q), asF64(k), asF64(v), asF64(mask), asF64(g), dims, scale);
    expectClose(out.toFloat32Array(), ref.out, 1e-5, 'poisoned out', seed);
    expectClose(dq.toFloat32Array(), ref.dq, 1e-5, 'poisoned dq', seed);
    expectClose(dk.toFloat32Array(), ref.dk, 1e-5, 'poisoned dk', seed);
    expectClose(dv.toFloat32Array(), ref.dv, 1e-5, 'poisoned dv', seed);
    for (const t of [q, k, v, g, mask, out, dq, dk, dv]) t.dispose();
  });

  test('gradient check against central differences of the float64 reference', () => {
    for (const [Tq, Tk, d] of [[1, 2, 3], [3, 9, 8], [2, 5, 1]]) {
      const seed = freshSeed();
      const rng = new Random(seed);
      const dims: Dims = { N: 4, H: 2, Tq, Tk, d };
      const mask = randomMask(rng, 4, Tk);
      mask[0] = 1; // keep at least one key in row 0
      const maskT = tensorFrom(mask, [4, Tk]);
      const scale = 0.7;
      gradCheck({
        seed,
        what: `groupedAttention Tq=${Tq} Tk=${Tk} d=${d}`,
        inputs: [randomArray(rng, 8 * Tq * d), randomArray(rng, 8 * Tk * d), randomArray(rng, 8 * Tk * d)],
        shapes: [[4, 2, Tq, d], [4, 2, Tk, d], [4, 2, Tk, d]],
        op: ([q, k, v]) => ops.groupedAttention(q, k, v, { keyMask: maskT, scale }),
        ref: ([q, k, v]) => reference(q, k, v, mask, null, dims, scale).out,
        tol: 1e-3,
      });
      maskT.dispose();
    }
  });

  test('N = 0 gives an empty output; noGrad records nothing', () => {
    const q = zeros([0, 2, 1, 4]);
    const k = zeros([0, 2, 3, 4]);
    const out = ops.groupedAttention(q, k, k, { keyMask: zeros([0, 3]) });
    expect(out.shape).toEqual([0, 2, 1, 4]);
    const a = tensor([1, 2, 3, 4], [1, 1, 1, 4], { requiresGrad: true });
    const b = noGrad(() => ops.groupedAttention(a, a, a));
    expect(b.requiresGrad).toBe(false);
    for (const t of [q, k, out, a, b]) t.dispose();
  });

  test('bad inputs give errors naming the op, argument, expected and actual', () => {
    const q = zeros([2, 1, 3, 4]);
    const k = zeros([2, 1, 5, 4]);
    const kInt = zeros([2, 1, 5, 4], { dtype: 'i32' });
    expect(errorOf(() => ops.groupedAttention(zeros([2, 3, 4]), k, k))).toMatch(/groupedAttention: q: expected rank 4, got rank 3/);
    expect(errorOf(() => ops.groupedAttention(q, kInt, k))).toMatch(/groupedAttention: k: expected dtype f32, got i32/);
    expect(errorOf(() => ops.groupedAttention(q, zeros([2, 1, 5, 3]), k))).toMatch(/groupedAttention: k: expected shape \[2, 1, \*, 4\], got \[2, 1, 5, 3\]/);
    expect(errorOf(() => ops.groupedAttention(q, k, zeros([2, 1, 6, 4])))).toMatch(/groupedAttention: v: expected shape \[2, 1, 5, 4\], got \[2, 1, 6, 4\]/);
    expect(errorOf(() => ops.groupedAttention(q, k, k, { keyMask: zeros([2, 4]) }))).toMatch(/groupedAttention: keyMask: expected shape \[2, 5\], got \[2, 4\]/);
    expect(errorOf(() => ops.groupedAttention(q, k, k, { keyMask: zeros([2, 5], { dtype: 'i32' }) }))).toMatch(/keyMask: expected dtype f32, got i32/);
    expect(errorOf(() => ops.groupedAttention(q, k, k, { scale: NaN }))).toMatch(/groupedAttention: scale: expected a number, got NaN/);
    expect(errorOf(() => ops.groupedAttention(q, k, k, { scale: Infinity }))).toMatch(/groupedAttention: scale: expected a finite number, got Infinity/);
    const big = zeros([1, 1, 65, 4]);
    expect(errorOf(() => ops.groupedAttention(zeros([1, 1, 1, 4]), big, big))).toMatch(/groupedAttention: k: expected 1 <= Tk <= 64 .*got 65/);
    const wide = zeros([1, 1, 2, 129]);
    expect(errorOf(() => ops.groupedAttention(wide, wide, wide))).toMatch(/groupedAttention: q: expected head dim 1 <= d <= 128 .*got 129/);
    const dead = zeros([2, 1, 5, 4]);
    dead.dispose();
    expect(errorOf(() => ops.groupedAttention(q, dead, k))).toMatch(/groupedAttention: k: tensor \[2, 1, 5, 4\] has been disposed/);
    expect(errorOf(() => ops.groupedAttention(q, k, k, null as unknown as object))).toMatch(/groupedAttention: opts: expected an object, got null/);
    // The native layer rejects what slips past TypeScript (wrong storage size) with a JS Error.
    const out = zeros([1]);
    expect(errorOf(() => native().groupedAttentionForward(out.storage, q.storage, k.storage, k.storage, null, 2, 1, 3, 5, 4, 0.5))).toMatch(/out: storage holds 4 bytes, expected at least 96/);
    expect(errorOf(() => native().groupedAttentionForward(out.storage, q.storage, k.storage, k.storage, null, 2, 1, 3, 65, 4, 0.5))).toMatch(/Tk: expected an integer in \[1, 64\]/);
    for (const t of [q, k, kInt, big, wide, out]) t.dispose();
  });
});
