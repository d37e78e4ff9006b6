// Elementwise suite: add (1M same shape, 1M row broadcast), exp (1M), sum over 1M — ours vs a
// naive TypeScript-style loop vs TensorFlow.js CPU and WASM backends, all in one run; prints
// time per call and the ratios (baseline ms / ours ms: > 1 means we are faster).
'use strict';
const { data, runSuite, printTable, saveRows, loadTf, quick } = require('../lib');
const q = require('../../dist');

const R = 1000;
const C = 1000; // 1M elements


const xa = data(R * C, 1);
const xb = data(R * C, 2);
const row = data(C, 3);

// Case names (rows of the table).
const CASES = ['add 1M same shape', 'add 1M + row [1000]', 'exp 1M', 'sum 1M'];

function oursCases() {
  const a = q.tensor(xa, [R, C]);
  const b = q.tensor(xb, [R, C]);
  const r = q.tensor(row, [C]);
  const fns = [
    () => q.ops.add(a, b).dispose(),
    () => q.ops.add(a, r).dispose(),
    () => q.ops.exp(a).dispose(),
    () => q.ops.sum(a).dispose(),
  ];
  return { fns, dispose: () => [a, b, r].forEach((t) => t.dispose()) };
}

// What a user would write without a tensor library (allocating its output like the ops do).
function naiveCases() {
  const fns = [
    () => {
      const o = new Float32Array(xa.length);
      for (let i = 0; i < o.length; i++) o[i] = xa[i] + xb[i];
      return o;
    },
    () => {
      const o = new Float32Array(xa.length);
      for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) o[i * C + j] = xa[i * C + j] + row[j];
      return o;
    },
    () => {
      const o = new Float32Array(xa.length);
      for (let i = 0; i < o.length; i++) o[i] = Math.exp(xa[i]);
      return o;
    },
    () => {
      let s = 0;
      for (let i = 0; i < xa.length; i++) s += xa[i];
      return s;
    },
  ];
  return { fns, dispose: () => undefined };
}

function tfCases(tf) {
  const a = tf.tensor2d(xa, [R, C]);
  const b = tf.tensor2d(xb, [R, C]);
  const r = tf.tensor1d(row);
  const fns = [
    () => tf.add(a, b).dispose(),
    () => tf.add(a, r).dispose(),
    () => tf.exp(a).dispose(),
    () => tf.sum(a).dispose(),
  ];
  return { fns, dispose: () => [a, b, r].forEach((t) => t.dispose()) };
}

async function measure(label, made) {
  const res = await runSuite(
    `elementwise-${label}`,
    made.fns.map((fn, i) => ({ name: CASES[i], fn })),
    quick ? { maxTime: 0.2, minSamples: 3 } : undefined,
  );
  made.dispose();
  return CASES.map((c) => (res[c] ? res[c].ms : NaN));
}

async function run() {
  const cols = {};
  cols.ours = await measure('ours', oursCases());
  cols.naive = await measure('naive-ts', naiveCases());
  for (const backend of ['cpu', 'wasm']) {
    const tf = await loadTf(backend);
    if (tf === null) {
      console.log(`tfjs ${backend}: not available (skipped)`);
      cols[`tfjs-${backend}`] = CASES.map(() => NaN);
      continue;
    }
    cols[`tfjs-${backend}`] = await measure(`tfjs-${backend}`, tfCases(tf));
  }
  const rows = CASES.map((c, i) => ({
    case: c,
    'ours ms': cols.ours[i],
    'naive ms': cols.naive[i],
    'tfjs-cpu ms': cols['tfjs-cpu'][i],
    'tfjs-wasm ms': cols['tfjs-wasm'][i],
    'naive/ours': cols.naive[i] / cols.ours[i],
    'tfjs-cpu/ours': cols['tfjs-cpu'][i] / cols.ours[i],
    'tfjs-wasm/ours': cols['tfjs-wasm'][i] / cols.ours[i],
  }));
  printTable(`elementwise (threads ${require('../../dist/native').native().numThreads()}; ratio > 1 = ours faster)`, rows);
  saveRows('elementwise', rows);
}

module.exports = { run };
