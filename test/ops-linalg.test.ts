// matmul / linear: forward against float64 references and backward against central differences
// (gradCheck), on fresh random inputs of odd sizes; batch broadcasting; bad input errors.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { ops, tensor, zeros, Random, memoryStats, noGrad, scope } from '../src';
import { freshSeed, randomArray, tensorFrom, gradCheck, expectClose, errorOf, asF64 } from './helpers';

const prod = (s: readonly number[]): number => s.reduce((x, y) => x * y, 1);

// op(X) of a [rows, cols] matrix at offset: element (i, j).
function el(x: Float64Array, off: number, rows: number, cols: number, t: boolean, i: number, j: number): number {
  return t ? x[off + j * cols + i] : x[off + i * cols + j];
}

// Reference batched matmul with broadcasting of a 2-D operand.
function refMatmul(
  a: Float64Array, b: Float64Array, batch: number, m: number, n: number, k: number,
  ta: boolean, tb: boolean, aBatched: boolean, bBatched: boolean,
): Float64Array {
  const out = new Float64Array(batch * m * n);
  const ar = ta ? k : m, ac = ta ? m : k;
  const br = tb ? n : k, bc = tb ? k : n;
  for (let p = 0; p < batch; p++) {
    const ao = aBatched ? p * m * k : 0;
    const bo = bBatched ? p * k * n : 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) s += el(a, ao, ar, ac, ta, i, q) * el(b, bo, br, bc, tb, q, j);
        out[p * m * n + i * n + j] = s;
      }
  }
  return out;
}

describe('matmul', () => {
  test('2-D forward vs float64 reference, all transposes, odd sizes', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const [m, n, k] of [[1, 1, 1], [3, 7, 5], [65, 3, 7], [7, 65, 257], [257, 65, 3], [1, 257, 65]]) {
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const a = randomArray(rng, m * k);
          const b = randomArray(rng, k * n);
          const A = tensorFrom(a, ta ? [k, m] : [m, k]);
          const B = tensorFrom(b, tb ? [n, k] : [k, n]);
          const C = ops.matmul(A, B, { transA: ta, transB: tb });
          expect(C.shape).toEqual([m, n]);
          expectClose(C.toFloat32Array(), refMatmul(asF64(A), asF64(B), 1, m, n, k, ta, tb, false, false), 1e-5, `matmul ${m}x${k}x${n} ta=${ta} tb=${tb}`, seed);
          for (const t of [A, B, C]) t.dispose();
        }
    }
  });

  test('batched and broadcast forward', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const m = 7, n = 5, k = 3;
    for (const [batchShape, aB, bB] of [[[3], true, true], [[2, 3], true, false], [[4], false, true], [[1], true, true], [[2, 1, 3], false, true]] as const) {
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const batch = prod(batchShape);
          const a = randomArray(rng, (aB ? batch : 1) * m * k);
          const b = randomArray(rng, (bB ? batch : 1) * k * n);
          const A = tensorFrom(a, [...(aB ? batchShape : []), ...(ta ? [k, m] : [m, k])]);
          const B = tensorFrom(b, [...(bB ? batchShape : []), ...(tb ? [n, k] : [k, n])]);
          const C = ops.matmul(A, B, { transA: ta, transB: tb });
          expect(C.shape).toEqual([...batchShape, m, n]);
          expectClose(C.toFloat32Array(), refMatmul(asF64(A), asF64(B), batch, m, n, k, ta, tb, aB, bB), 1e-5, `batched ${batchShape} ${aB}/${bB} ${ta}/${tb}`, seed);
          for (const t of [A, B, C]) t.dispose();
        }
    }
  });

  test('backward: gradCheck over transposes and broadcasting', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const m = 3, n = 5, k = 7;
    for (const [batch, aB, bB] of [[1, false, false], [3, true, true], [3, true, false], [3, false, true]] as const) {
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const aShape = [...(aB ? [batch] : []), ...(ta ? [k, m] : [m, k])];
          const bShape = [...(bB ? [batch] : []), ...(tb ? [n, k] : [k, n])];
          const na = aShape.reduce((x, y) => x * y, 1);
          const nbb = bShape.reduce((x, y) => x * y, 1);
          gradCheck({
            inputs: [randomArray(rng, na), randomArray(rng, nbb)],
            shapes: [aShape, bShape],
            op: ([A, B]) => ops.matmul(A, B, { transA: ta, transB: tb }),
            ref: ([a, b]) => refMatmul(a, b, aB || bB ? batch : 1, m, n, k, ta, tb, aB, bB),
            seed,
            what: `matmul grad batch=${batch} a${aB ? 'B' : ''} b${bB ? 'B' : ''} ta=${ta} tb=${tb}`,
          });
        }
    }
  });

  test('tall broadcast path (batched x 2-D weight) and its weight gradient match', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const batch = 4, m = 65, k = 7, n = 3;
    gradCheck({
      inputs: [randomArray(rng, batch * m * k), randomArray(rng, k * n)],
      shapes: [[batch, m, k], [k, n]],
      op: ([A, B]) => ops.matmul(A, B),
      ref: ([a, b]) => refMatmul(a, b, batch, m, n, k, false, false, true, false),
      seed,
      maxCoords: 24,
      what: 'tall matmul',
    });
  });

  test('empty dimensions', () => {
    const A = zeros([0, 3]);
    const B = zeros([3, 4]);
    expect(ops.matmul(A, B).shape).toEqual([0, 4]);
    const C = ops.matmul(zeros([2, 0]), zeros([0, 3]));
    expect(Array.from(C.toFloat32Array())).toEqual([0, 0, 0, 0, 0, 0]);
  });

  test('bad input names op, argument, expected and actual', () => {
    const a = zeros([2, 3]);
    expect(errorOf(() => ops.matmul(a, zeros([4, 5])))).toMatch(/matmul: inner dimensions differ: op\(a\) is \[2, 3\].*op\(b\) is \[4, 5\]/);
    expect(errorOf(() => ops.matmul(zeros([3]), a))).toMatch(/matmul: a: expected rank >= 2, got rank 1/);
    expect(errorOf(() => ops.matmul(a, tensor([1, 2, 3, 4, 5, 6], [3, 2], { dtype: 'i32' })))).toMatch(/matmul: b: expected dtype f32, got i32/);
    expect(errorOf(() => ops.matmul(zeros([2, 2, 3]), zeros([3, 3, 4])))).toMatch(/batch dimensions must be equal.*\[2\].*\[3\]/);
    const d = zeros([3, 2]);
    d.dispose();
    expect(errorOf(() => ops.matmul(a, d))).toMatch(/matmul: b: tensor \[3, 2\] has been disposed/);
    expect(errorOf(() => ops.matmul(a, zeros([3, 2]), { transA: 1 as never }))).toMatch(/transA: expected a boolean/);
  });
});

function refLinear(x: Float64Array, w: Float64Array, b: Float64Array | null, rows: number, out: number, inF: number): Float64Array {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      y[r * out + o] = s;
    }
  return y;
}

describe('BLAS threading', () => {
  test('products below 2^24 multiply-adds run BLAS on one thread, larger ones on up to blasThreads(); both match float64', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    // 150 x 40 x 170 (1.0M MAC) and 300 x 256 x 230 (17.7M MAC, above the threshold), alternating
    // so the thread count switches both ways between calls.
    for (const [m, k, n] of [[150, 40, 170], [300, 256, 230], [150, 40, 170], [300, 256, 230]]) {
      const a = randomArray(rng, m * k);
      const b = randomArray(rng, k * n);
      const out = noGrad(() => scope(() => ops.matmul(tensorFrom(a, [m, k]), tensorFrom(b, [k, n])).toFloat32Array()));
      const ref = refMatmul(Float64Array.from(Float32Array.from(a)), Float64Array.from(Float32Array.from(b)), 1, m, n, k, false, false, false, false);
      expectClose(out, ref, 1e-5, `matmul ${m}x${k}x${n}`, seed);
    }
  });

  test('QGS_BLAS_THREADS caps BLAS threads; unset it follows the pool; malformed values warn and use the pool size', () => {
    const dist = path.join(__dirname, '..', 'dist', 'native.js');
    const script = `const n = require(${JSON.stringify(dist)}).native(); process.stdout.write(n.blasThreads() + ' ' + n.numThreads());`;
    const run = (v: string | undefined) => {
      const env: NodeJS.ProcessEnv = { ...process.env, QGS_NUM_THREADS: '3' };
      if (v === undefined) delete env.QGS_BLAS_THREADS;
      else env.QGS_BLAS_THREADS = v;
      const r = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
      return { out: r.stdout, err: r.stderr };
    };
    expect(run(undefined).out).toBe('3 3');
    expect(run('1').out).toBe('1 3');
    const bad = run('many');
    expect(bad.out).toBe('3 3');
    expect(bad.err).toMatch(/QGS_BLAS_THREADS: expected a whole number in \[1, 1024\], got 'many'; using 3/);
  });
});

describe('linear', () => {
  test('forward + backward with and without bias, odd sizes', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    for (const [lead, inF, outF] of [[[1], 1, 1], [[7], 3, 5], [[2, 3], 65, 7], [[257], 7, 3]] as const) {
      const rows = prod(lead);
      for (const withBias of [true, false]) {
        const inputs = [randomArray(rng, rows * inF), randomArray(rng, outF * inF)];
        const shapes: number[][] = [[...lead, inF], [outF, inF]];
        if (withBias) {
          inputs.push(randomArray(rng, outF));
          shapes.push([outF]);
        }
        gradCheck({
          inputs,
          shapes,
          op: ([x, w, b]) => ops.linear(x, w, b),
          ref: ([x, w, b]) => refLinear(x, w, withBias ? b : null, rows, outF, inF),
          seed,
          maxCoords: 32,
          what: `linear ${lead}x${inF}->${outF} bias=${withBias}`,
        });
      }
    }
  });

  test('exact small case; bad shapes are errors', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const w = tensor([1, 0, 0, 0, 1, 0], [2, 3]);
    const y = noGrad(() => ops.linear(x, w, tensor([10, 20])));
    expect(Array.from(y.toFloat32Array())).toEqual([11, 22, 14, 25]);
    expect(errorOf(() => ops.linear(x, zeros([2, 4])))).toMatch(/linear: x: expected last dimension 4.*got \[2, 3\]/);
    expect(errorOf(() => ops.linear(x, w, zeros([3])))).toMatch(/linear: bias: expected shape \[2\], got \[3\]/);
    expect(errorOf(() => ops.linear(x, zeros([6])))).toMatch(/linear: weight: expected rank 2, got rank 1/);
  });

  test('no leaks through forward + backward inside scope', () => {
    const before = memoryStats().count;
    const w = tensor(new Float32Array(12).fill(0.5), [4, 3], { requiresGrad: true });
    scope(() => {
      const x = tensor(new Float32Array(6).fill(1), [2, 3]);
      const y = ops.linear(x, w);
      const z = ops.matmul(y, w);
      z.backward(tensor(new Float32Array(6).fill(1), [2, 3]));
    });
    expect(w.grad).not.toBeNull();
    w.dispose();
    expect(memoryStats().count).toBe(before);
  });
});

test('blasSgemmRate returns a positive GFLOP/s', () => {
  expect(ops.blasSgemmRate(64, 2)).toBeGreaterThan(0);
  expect(errorOf(() => ops.blasSgemmRate(0, 1))).toMatch(/n: expected an integer in \[1, 16384\]/);
});
