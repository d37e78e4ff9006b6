// CUDA checks for the linalg / nn / losses / optim ops: every case runs on the CPU (the reference,
// itself checked against float64 by the jest suite) and on CUDA with the same fresh random inputs;
// outputs and gradients must agree to 1e-4 relative (DESIGN.md §8). Plain `node --test` (no jest on
// the GPU machine). Needs dist/ and a CUDA build; skipped when no GPU answers.
// QGS_GPU_TEST_DEVICE=cpu runs the same script CPU-vs-CPU (to check the script itself anywhere).
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const q = require('../dist');

const dev = process.env.QGS_GPU_TEST_DEVICE ?? 'cuda';
const available = dev === 'cpu' || q.backendInfo().cuda;
const seed = Number(process.env.QGS_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`nn-cuda: device ${dev}, available ${available}, seed ${seed}, gemm ${JSON.stringify(require('../dist/native').native().gemmBackend())}`);
const rng = new q.Random(seed);

function rel(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) return Infinity;
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return num === 0 ? 0 : Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}
const randn = (n, s = 1) => Float32Array.from({ length: n }, () => s * rng.normal());

// Builds the case on a device: `inputs` are [Float32Array|Int32Array, shape, requiresGrad] triples;
// fn(tensors) returns the output tensor; backward with a fixed cotangent; returns output + grads.
function runOn(device, inputs, fn, cot) {
  return q.scope(() => {
    const ts = inputs.map(([data, shape, rg]) =>
      q.tensor(data, shape, { dtype: data instanceof Int32Array ? 'i32' : 'f32', device, requiresGrad: !!rg }));
    const y = fn(ts);
    const out = [y.toFloat32Array()];
    if (ts.some((t) => t.requiresGrad)) {
      y.backward(q.tensor(cot ?? new Float32Array(y.size).fill(1), y.shape, { device }));
      for (const t of ts) if (t.requiresGrad) out.push(t.grad ? t.grad.toFloat32Array() : t.sparseGrad.values.toFloat32Array());
    }
    return out;
  });
}

function compare(name, inputs, fn, { tol = 1e-4, cotangent = true } = {}) {
  test(name, { skip: !available && 'no CUDA device' }, () => {
    const probe = q.scope(() => fn(inputs.map(([d, s]) => q.tensor(d, s, { dtype: d instanceof Int32Array ? 'i32' : 'f32' }))).size);
    const cot = cotangent ? randn(probe) : undefined;
    const ref = runOn('cpu', inputs, fn, cot);
    const got = runOn(dev, inputs, fn, cot);
    assert.strictEqual(got.length, ref.length);
    ref.forEach((r, i) => {
      const e = rel(got[i], r);
      assert.ok(e < tol, `${name}: ${i === 0 ? 'output' : `grad ${i}`} relative error ${e.toExponential(3)} >= ${tol} (seed ${seed})`);
    });
  });
}

const ints = (n, hi) => Int32Array.from({ length: n }, () => rng.int(hi));

for (const [m, n, k] of [[1, 1, 1], [7, 65, 3], [257, 129, 65], [1024, 512, 256]]) {
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
    compare(`matmul ${m}x${k}x${n} ta=${ta} tb=${tb}`, [[randn(m * k), ta ? [k, m] : [m, k], true], [randn(k * n), tb ? [n, k] : [k, n], true]],
      ([a, b]) => q.ops.matmul(a, b, { transA: ta, transB: tb }));
  }
}
compare('matmul batched', [[randn(5 * 7 * 3), [5, 7, 3], true], [randn(5 * 3 * 9), [5, 3, 9], true]], ([a, b]) => q.ops.matmul(a, b));
compare('matmul broadcast b', [[randn(5 * 7 * 3), [5, 7, 3], true], [randn(3 * 9), [3, 9], true]], ([a, b]) => q.ops.matmul(a, b));
compare('matmul broadcast a (transA)', [[randn(3 * 7), [3, 7], true], [randn(5 * 3 * 9), [5, 3, 9], true]], ([a, b]) => q.ops.matmul(a, b, { transA: true }));
compare('linear + bias', [[randn(65 * 33), [5, 13, 33], true], [randn(17 * 33), [17, 33], true], [randn(17), [17], true]], ([x, w, b]) => q.ops.linear(x, w, b));
for (const axis of [-1, 0, 1]) {
  compare(`softmax axis ${axis}`, [[randn(7 * 257 * 3, 3), [7, 257, 3], true]], ([x]) => q.ops.softmax(x, axis));
  compare(`logSoftmax axis ${axis}`, [[randn(7 * 257 * 3, 3), [7, 257, 3], true]], ([x]) => q.ops.logSoftmax(x, axis));
}
compare('layerNorm affine', [[randn(300 * 257, 2), [300, 257], true], [randn(257), [257], true], [randn(257), [257], true]], ([x, w, b]) => q.ops.layerNorm(x, w, b));
compare('layerNorm plain', [[randn(65 * 7), [65, 7], true]], ([x]) => q.ops.layerNorm(x));
compare('embedding dense', [[randn(1000 * 65), [1000, 65], true], [ints(777, 1000), [777], false]], ([w, i]) => q.ops.embedding(w, i));
compare('embedding sparse', [[randn(1000 * 65), [1000, 65], true], [ints(777, 1000), [777], false]], ([w, i]) => q.ops.embedding(w, i, { sparse: true }));
compare('l2Normalize', [[randn(65 * 33), [65, 33], true]], ([x]) => q.ops.l2Normalize(x));
compare('bceWithLogits mean', [[randn(4099, 4), [4099], true], [Float32Array.from({ length: 4099 }, () => rng.int(2)), [4099], false]], ([x, t]) => q.ops.bceWithLogits(x, t));
compare('crossEntropy ignore', [[randn(257 * 1000, 3), [257, 1000], true], [Int32Array.from({ length: 257 }, () => (rng.uniform() < 0.2 ? -1 : rng.int(1000))), [257], false]],
  ([x, t]) => q.ops.crossEntropy(x, t, { ignoreIndex: -1 }));
compare('infoNCE per-row', [[randn(65 * 32, 0.3), [65, 32], true], [randn(65 * 32, 0.3), [65, 32], true], [randn(65 * 7 * 32, 0.3), [65, 7, 32], true]],
  ([a, p, n]) => q.ops.infoNCE(a, p, n, { temperature: 0.1 }));
compare('infoNCE shared', [[randn(65 * 32, 0.3), [65, 32], true], [randn(65 * 32, 0.3), [65, 32], true], [randn(513 * 32, 0.3), [513, 32], true]],
  ([a, p, n]) => q.ops.infoNCE(a, p, n, { temperature: 0.1 }));

test('embedding out-of-range index is an Error on the device too', { skip: !available && 'no CUDA device' }, () => {
  q.scope(() => {
    const w = q.zeros([4, 2], { device: dev });
    assert.throws(() => q.ops.embedding(w, q.tensor([0, 4], [2], { dtype: 'i32', device: dev })), /indices: expected values in \[0, 4\), got 4 at flat position 1/);
  });
});

test('AdamW / SparseAdam / clipGradNorm agree with the CPU', { skip: !available && 'no CUDA device' }, () => {
  const p0 = randn(100003), g = randn(100003);
  const table = randn(1000 * 16), rows = Int32Array.from([3, 999, 17, 0]), vals = randn(4 * 16);
  const res = {};
  for (const d of ['cpu', dev]) {
    res[d] = q.scope(() => {
      const p = q.tensor(p0, [100003], { device: d, requiresGrad: true });
      const opt = new q.optim.AdamW([p], { lr: 0.01, weightDecay: 0.1 });
      for (let s = 0; s < 3; s++) {
        p.grad = q.tensor(g, [100003], { device: d });
        opt.step();
      }
      const norm = q.optim.clipGradNorm([p], 1);
      const W = q.tensor(table, [1000, 16], { device: d, requiresGrad: true });
      W.sparseGrad = { rows: q.keep(q.tensor(rows, [4], { dtype: 'i32', device: d })), values: q.keep(q.tensor(vals, [4, 16], { device: d })) };
      new q.optim.SparseAdam([W], { lr: 0.05 }).step();
      const out = [p.toFloat32Array(), W.toFloat32Array(), p.grad.toFloat32Array(), norm];
      opt.dispose();
      W.dispose();
      return out;
    });
  }
  for (let i = 0; i < 3; i++) assert.ok(rel(res[dev][i], res.cpu[i]) < 1e-4, `optimiser output ${i}: ${rel(res[dev][i], res.cpu[i])}`);
  assert.ok(Math.abs(res[dev][3] - res.cpu[3]) / res.cpu[3] < 1e-5, 'clipGradNorm norm');
});

test('timing: matmul 4096 and AdamW 10M on the device (events-free: synchronized wall clock, median of 5)', { skip: (!available || dev === 'cpu') && 'CUDA only' }, () => {
  const nat = require('../dist/native').native();
  const med = (f) => {
    f();
    nat.cudaSynchronize();
    const t = [];
    for (let i = 0; i < 5; i++) {
      const s = process.hrtime.bigint();
      f();
      nat.cudaSynchronize();
      t.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    return t.sort((a, b) => a - b)[2];
  };
  q.scope(() => {
    const n = 4096;
    const a = q.randn([n, n], { device: dev, seed: 1 });
    const b = q.randn([n, n], { device: dev, seed: 2 });
    const ms = med(() => q.scope(() => { q.ops.matmul(a, b); }));
    console.log(`matmul ${n}: ${ms.toFixed(3)} ms, ${(2 * n ** 3 / ms / 1e9).toFixed(1)} TFLOP/s`);
    const N = 10_000_000;
    const p = q.zeros([N], { device: dev, requiresGrad: true });
    p.grad = q.ones([N], { device: dev });
    const opt = new q.optim.AdamW([p]);
    const ams = med(() => opt.step());
    console.log(`AdamW ${N}: ${ams.toFixed(3)} ms, ${(N * 4 * 7 / ams / 1e6).toFixed(0)} GB/s (7 floats moved per element)`);
    opt.dispose();
  });
});
