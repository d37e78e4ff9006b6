// CUDA vs CPU for ops.groupedAttention (forward + q/k/v gradients, masks with fully masked rows,
// every Tq/Tk/d of the CPU tests, a large N) and for nn.HFGAttention end to end (run with
// `node --test test-gpu/` on a machine with a GPU and the CUDA build in build-cuda/; needs only dist/
// and node-gyp-build, no jest). Skips itself when no GPU answers. QGS_GPU_TEST_DEVICE=cpu runs the
// same comparisons CPU-vs-CPU, which is how the test logic was checked on a machine without a GPU.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const q = require('../dist');

const DEV = process.env.QGS_GPU_TEST_DEVICE ?? 'cuda';
const skip = DEV === 'cuda' && !q.backendInfo().cuda ? 'no GPU answered' : false;
const TOL = 1e-4; // DESIGN.md §8: fp32 CUDA

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

function rnd(rng, n, scale = 1) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * rng.normal();
  return a;
}

function attention(device, host, dims, scale) {
  const { N, H, Tq, Tk, d } = dims;
  return q.scope(() => {
    const o = { device, requiresGrad: true };
    const qt = q.tensor(host.q, [N, H, Tq, d], o);
    const kt = q.tensor(host.k, [N, H, Tk, d], o);
    const vt = q.tensor(host.v, [N, H, Tk, d], o);
    const mask = host.mask ? q.tensor(host.mask, [N, Tk], { device }) : null;
    const y = q.ops.groupedAttention(qt, kt, vt, { keyMask: mask, scale });
    y.backward(q.tensor(host.g, y.shape, { device }));
    return { y: y.toFloat32Array(), grads: [qt, kt, vt].map((t) => t.grad.toFloat32Array()) };
  });
}

test('groupedAttention: CUDA matches the CPU kernels (fwd + dq/dk/dv, masks, fully masked rows)', { skip }, () => {
  const seed = (Math.random() * 2 ** 31) | 0;
  const rng = new q.Random(seed);
  const cases = [];
  for (const Tq of [1, 3]) for (const Tk of [1, 2, 9, 33, 64]) for (const d of [1, 3, 8, 32, 64, 128]) cases.push({ N: 2 + rng.int(9), H: 1 + rng.int(3), Tq, Tk, d });
  cases.push({ N: 20011, H: 4, Tq: 10, Tk: 10, d: 32 }); // many blocks, the bench shape
  for (const dims of cases) {
    for (const masked of [false, true]) {
      const { N, H, Tq, Tk, d } = dims;
      const host = { q: rnd(rng, N * H * Tq * d), k: rnd(rng, N * H * Tk * d), v: rnd(rng, N * H * Tk * d), g: rnd(rng, N * H * Tq * d) };
      if (masked) {
        host.mask = new Float32Array(N * Tk);
        for (let n = 0; n < N; n++) for (let j = 0; j < Tk; j++) host.mask[n * Tk + j] = n % 3 !== 1 && rng.uniform() > 0.3 ? 1 : 0;
      }
      const scale = (0.5 + rng.uniform()) / Math.sqrt(d);
      const c = attention('cpu', host, dims, scale);
      const g = attention(DEV, host, dims, scale);
      const what = `${JSON.stringify(dims)}${masked ? ' masked' : ''} (seed ${seed})`;
      assert.ok(rel(g.y, c.y) < TOL, `forward ${what}: relative error ${rel(g.y, c.y)}`);
      ['dq', 'dk', 'dv'].forEach((n, i) => assert.ok(rel(g.grads[i], c.grads[i]) < TOL, `${n} ${what}: relative error ${rel(g.grads[i], c.grads[i])}`));
      if (masked) {
        const row = H * Tq * d;
        assert.ok(g.y.subarray(row, 2 * row).every((x) => x === 0), `fully masked row not zero ${what}`);
      }
    }
  }
});

test('nn.HFGAttention on CUDA matches the CPU module (every pooling, forward and parameter grads)', { skip }, () => {
  const seed = (Math.random() * 2 ** 31) | 0;
  const rng = new q.Random(seed);
  const N = 257, D = 32, G = 6;
  const host = { ctx: rnd(rng, N * D), item: rnd(rng, N * D), tok: rnd(rng, N * G * D), g: rnd(rng, N * D) };
  const mask = new Float32Array(N * G).map(() => (rng.uniform() < 0.75 ? 1 : 0));
  for (const pooling of ['context', 'mean', 'attention']) {
    const cpuM = new q.nn.HFGAttention({ dim: D, numGroups: G, heads: 4, layers: 2, pooling, seed });
    const devM = new q.nn.HFGAttention({ dim: D, numGroups: G, heads: 4, layers: 2, pooling, seed: seed + 1, device: DEV });
    devM.loadStateDict(cpuM.stateDict());
    const run = (m, device) =>
      q.scope(() => {
        const y = m.forward(q.tensor(host.ctx, [N, D], { device }), q.tensor(host.item, [N, D], { device }), q.tensor(host.tok, [N, G, D], { device }), q.tensor(mask, [N, G], { device }));
        y.backward(q.tensor(host.g, [N, D], { device }));
        return { y: y.toFloat32Array(), grads: m.parameters().map((p) => p.grad.toFloat32Array()) };
      });
    const c = run(cpuM, 'cpu');
    const g = run(devM, DEV);
    assert.ok(rel(g.y, c.y) < TOL, `HFGAttention ${pooling} forward: relative error ${rel(g.y, c.y)} (seed ${seed})`);
    const names = cpuM.namedParameters().map(([n]) => n);
    c.grads.forEach((gc, i) => assert.ok(rel(g.grads[i], gc) < 1e-3, `HFGAttention ${pooling} grad ${names[i]}: relative error ${rel(g.grads[i], gc)} (seed ${seed})`));
    cpuM.dispose();
    devM.dispose();
  }
});
