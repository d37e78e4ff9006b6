// CUDA vs CPU for the elementwise / reduce / movement ops, forward and backward (run with
// `node --test test-gpu/` on a machine with a GPU and the CUDA build in build-cuda/; needs only
// dist/ and node-gyp-build, no jest). Skips itself when no GPU answers.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const q = require('../dist');

const cuda = q.backendInfo().cuda;

function rel(out, ref) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(out[i])) return Infinity;
    num += (out[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return num === 0 ? 0 : Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

function rnd(rng, shape, positive = false) {
  const n = shape.reduce((p, d) => p * d, 1);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = rng.normal();
    a[i] = positive ? 0.2 + Math.abs(v) : Math.sign(v || 1) * (0.5 + Math.abs(v));
  }
  return a;
}

// Runs fn on CPU and on CUDA copies of the same inputs; compares outputs and input gradients.
function compare(name, shapes, fn, { positive = false, tol = 1e-4 } = {}) {
  const seed = (Math.random() * 2 ** 31) | 0;
  const rng = new q.Random(seed);
  const host = shapes.map((s) => rnd(rng, s, positive));
  const run = (device) =>
    q.scope(() => {
      const xs = host.map((h, i) => q.tensor(h, shapes[i], { device, requiresGrad: true }));
      const y = fn(xs);
      const g = q.tensor(rnd(new q.Random(seed ^ 7), y.shape), y.shape, { device });
      y.backward(g);
      return { y: y.toFloat32Array(), grads: xs.map((x) => x.grad.toFloat32Array()) };
    });
  const c = run('cpu');
  const d = run('cuda');
  const e = rel(d.y, c.y);
  assert.ok(e < tol, `${name} forward: relative error ${e} (seed ${seed})`);
  c.grads.forEach((gc, i) => {
    const eg = rel(d.grads[i], gc);
    assert.ok(eg < tol, `${name} grad ${i}: relative error ${eg} (seed ${seed})`);
  });
}

test('elementwise ops match the CPU on CUDA', { skip: !cuda && 'no GPU answered' }, () => {
  const o = q.ops;
  const pairs = [[[7], [7]], [[1], [65]], [[3, 1, 5], [4, 1]], [[], [3, 7]], [[257, 129], [129]], [[1024, 1025], [1024, 1]]];
  for (const [a, b] of pairs) {
    for (const f of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum']) compare(`${f} ${JSON.stringify([a, b])}`, [a, b], ([x, y]) => o[f](x, y));
    compare(`where ${JSON.stringify([a, b])}`, [a, b], ([x, y]) => o.where(o.greater(x, y), x, y));
  }
  const unary = ['neg', 'exp', 'tanh', 'sigmoid', 'silu', 'relu', 'gelu', 'abs', 'square'];
  for (const shape of [[1], [65], [1000, 1001]]) {
    for (const f of unary) compare(`${f} ${shape}`, [shape], ([x]) => o[f](x));
    for (const f of ['log', 'sqrt']) compare(`${f} ${shape}`, [shape], ([x]) => o[f](x), { positive: true });
    compare('powScalar', [shape], ([x]) => o.powScalar(x, 2.5), { positive: true });
    compare('clamp', [shape], ([x]) => o.clamp(x, -0.7, 0.9));
    compare('affine', [shape], ([x]) => o.addScalar(o.mulScalar(x, -3), 2));
  }
});

test('reductions and movement match the CPU on CUDA', { skip: !cuda && 'no GPU answered' }, () => {
  const o = q.ops;
  for (const [shape, axes] of [[[7], undefined], [[3, 65, 5], 1], [[3, 65, 5], [0, 2]], [[1 << 20], undefined], [[4096, 300], 0], [[300, 4096], 1]]) {
    for (const f of ['sum', 'mean', 'max', 'min']) compare(`${f} ${JSON.stringify([shape, axes])}`, [shape], ([x]) => o[f](x, axes));
  }
  compare('transpose', [[65, 33, 7]], ([x]) => o.transpose(x, [2, 0, 1]));
  compare('broadcastTo', [[3, 1]], ([x]) => o.broadcastTo(x, [5, 3, 7]));
  compare('concat', [[3, 5], [3, 7]], ([x, y]) => o.concat([x, y], 1));
  compare('slice', [[9, 11]], ([x]) => o.slice(x, [2, 3], [5, -1]));
  compare('split', [[9, 12]], ([x]) => o.split(x, 3, 1)[1]);
  const idx = new Int32Array(1000).map((_, i) => (i * 7919) % 65);
  compare('gather', [[4, 65, 33]], ([x]) => o.gather(x, q.tensor(idx, [1000], { dtype: 'i32', device: x.device }), 1));
});

test('dropout masks are identical on CPU and CUDA', { skip: !cuda && 'no GPU answered' }, () => {
  const n = 1 << 20;
  const x = q.tensor(new Float32Array(n).fill(1), [n]);
  const a = q.ops.dropout(x, 0.3, { seed: 12345 }).toFloat32Array();
  const b = q.ops.dropout(x.to('cuda'), 0.3, { seed: 12345 }).toFloat32Array();
  assert.ok(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), 'dropout masks differ between CPU and CUDA');
});

test('i32 ops and out-of-range gather on CUDA', { skip: !cuda && 'no GPU answered' }, () => {
  const a = q.tensor(new Int32Array([1, -2, 2147483647]), [3], { device: 'cuda' });
  const b = q.tensor(new Int32Array([3]), [1], { device: 'cuda' });
  assert.deepStrictEqual(Array.from(q.ops.add(a, b).toInt32Array()), [4, 1, -2147483646]);
  assert.deepStrictEqual(Array.from(q.ops.mul(a, b).toInt32Array()), [3, -6, Math.imul(2147483647, 3)]);
  assert.throws(() => q.ops.gather(q.zeros([4], { device: 'cuda' }), q.tensor(new Int32Array([4]), [1], { dtype: 'i32', device: 'cuda' })), /out of range/);
});
