// Bench harness shared by every suite: runs cases with benny (one run, side by side), saves JSON +
// an HTML chart under bench/results/, and prints a table of ratios against a named baseline case.
// Performance claims come only from here (DESIGN.md §9), never from timed unit tests.
'use strict';
const path = require('path');
const fs = require('fs');
const b = require('benny');

const resultsDir = path.join(__dirname, 'results');

/** Quick mode (BENCH_QUICK=1) trims sizes and samples, for smoke runs. */
const quick = process.env.BENCH_QUICK === '1';

/**
 * Runs one benny suite. `cases` is [{ name, fn }] where fn is a synchronous or async function doing
 * one iteration (set-up belongs outside fn). Returns { name -> { ops, ms, margin } }.
 */
async function runSuite(name, cases, { maxTime = quick ? 0.3 : 1.5, minSamples = quick ? 3 : 8 } = {}) {
  fs.mkdirSync(resultsDir, { recursive: true });
  const out = {};
  const file = name.replace(/[^a-zA-Z0-9_.-]+/g, '_');
  await b.suite(
    name,
    ...cases.map((c) => b.add(c.name, c.fn)),
    b.configure({ cases: { maxTime, minSamples } }),
    b.cycle(() => undefined),
    b.complete((summary) => {
      for (const r of summary.results) out[r.name] = { ops: r.ops, ms: 1000 / r.ops, margin: r.margin };
    }),
    b.save({ file, folder: resultsDir, format: 'json', details: false }),
    b.save({ file, folder: resultsDir, format: 'chart.html', details: false }),
  );
  return out;
}

/** A small LCG: a function returning deterministic uniform [0, 1) numbers (no dependence on the library's RNG). */
function lcg(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Deterministic uniform [-1, 1) floats from lcg (inputs that do not depend on the library's RNG). */
function data(n, seed) {
  const a = new Float32Array(n);
  const rnd = lcg(seed);
  for (let i = 0; i < n; i++) a[i] = rnd() * 2 - 1;
  return a;
}

/** The p-th percentile of ascending `sorted` samples (NaN for none). */
function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Median wall time in ms of fn over `reps` runs after `warmup` runs (for long single cases). */
function medianMs(fn, { reps = quick ? 3 : 7, warmup = 1 } = {}) {
  for (let i = 0; i < warmup; i++) fn();
  const t = [];
  for (let i = 0; i < reps; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  t.sort((a, c) => a - c);
  return t[Math.floor(t.length / 2)];
}

/** Prints rows as an aligned table. rows: array of plain objects with the same keys. */
function printTable(title, rows) {
  if (rows.length === 0) return;
  const keys = Object.keys(rows[0]);
  // Integers (sizes, counts) as they are; other numbers to ~3 significant digits.
  const fmt = (v) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3)) : String(v));
  const cells = rows.map((r) => keys.map((k) => fmt(r[k])));
  const widths = keys.map((k, i) => Math.max(k.length, ...cells.map((c) => c[i].length)));
  console.log(`\n## ${title}`);
  console.log(keys.map((k, i) => k.padEnd(widths[i])).join('  '));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(c.map((v, i) => v.padEnd(widths[i])).join('  '));
}

/** Writes a suite's table rows to bench/results/<name>.table.json (atomically). */
function saveRows(name, rows) {
  fs.mkdirSync(resultsDir, { recursive: true });
  const f = path.join(resultsDir, `${name}.table.json`);
  fs.writeFileSync(`${f}.tmp`, JSON.stringify({ name, date: new Date().toISOString(), rows }, null, 2));
  fs.renameSync(`${f}.tmp`, f);
}

/** Loads tfjs with the requested backend ('cpu' | 'wasm'); null when not installed. */
async function loadTf(backend) {
  try {
    const tf = require('@tensorflow/tfjs');
    if (backend === 'wasm') require('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend(backend);
    await tf.ready();
    return tf;
  } catch (e) {
    return null;
  }
}

module.exports = { runSuite, data, lcg, pct, medianMs, printTable, saveRows, loadTf, quick, resultsDir };
