// Serving benchmark (issue 6): latency p50/p99 for 1,000 candidates with a 1,000-event history,
// cold (history re-encoded per request) and cached (user state from the cache), one observe (step),
// and throughput at concurrency 64; plus, in the same run, the backend called directly on the main
// thread (no worker, no batching) so the serving overhead is a ratio, not a guess.
//
// Backend: QGS_SERVING_BACKEND=/path/to/module.js (exporting createBackend), checkpoint
// QGS_SERVING_CHECKPOINT=dir, options QGS_SERVING_OPTIONS='{"...": ...}'. Default: the toy backend of
// the tests (test/fixtures/serving/toy-backend.js, dim 16), which measures the serving machinery;
// QGS_SERVING_BACKEND=test/fixtures/serving/linrec-backend.js is a QGS-shaped stand-in on the native
// linear-recurrence kernels (4 heads x 32 x 32 state), until the QGS backend (dist/qgs/backend.js) lands.
// Targets (issue 6, with the QGS backend on this machine): p99 <= 5 ms cold, <= 2 ms cached.
'use strict';
const path = require('path');
const { lcg, pct, printTable, saveRows, quick } = require('../lib');

const root = path.join(__dirname, '..', '..');

function summary(name, ms, extra = {}) {
  const s = Float64Array.from(ms).sort();
  let sum = 0;
  for (const x of s) sum += x;
  return { case: name, n: s.length, p50_ms: pct(s, 50), p99_ms: pct(s, 99), mean_ms: sum / s.length, ...extra };
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

function makeHistory(rnd, n) {
  return Array.from({ length: n }, (_, t) => ({
    query: { terms: [Math.floor(rnd() * 50000), Math.floor(rnd() * 50000), Math.floor(rnd() * 50000)] },
    item: Math.floor(rnd() * 1e6),
    ts: 1.7e9 + t * 60,
    action: Math.floor(rnd() * 3),
  }));
}

function makeCandidates(rnd, n) {
  return Array.from({ length: n }, () => ({
    item: Math.floor(rnd() * 1e6),
    features: {
      text: { bm25: rnd() * 10, title_match: rnd() },
      item: { ctr: rnd() * 0.1, price: rnd() * 100, popularity: rnd() },
      user_item: { past_clicks: Math.floor(rnd() * 5), seen: rnd() < 0.3 ? 1 : 0 },
      context: { hour: Math.floor(rnd() * 24) },
    },
  }));
}

async function timeLoop(n, fn) {
  const ms = new Array(n);
  for (let i = 0; i < n; i++) {
    const t = now();
    await fn(i);
    ms[i] = now() - t;
  }
  return ms;
}

async function run() {
  const { Ranker, packCandidates, CandidateBatch, DEFAULT_LIMITS } = require(path.join(root, 'dist', 'qgs', 'serving'));
  // The direct baseline packs candidates the way the Ranker does (validation included).
  const batch = (c) => new CandidateBatch(packCandidates(c, 'candidates', DEFAULT_LIMITS));
  const backendModule = process.env.QGS_SERVING_BACKEND
    ? path.resolve(process.env.QGS_SERVING_BACKEND)
    : path.join(root, 'test', 'fixtures', 'serving', 'toy-backend.js');
  const checkpoint = process.env.QGS_SERVING_CHECKPOINT
    ? path.resolve(process.env.QGS_SERVING_CHECKPOINT)
    : path.join(root, 'test', 'fixtures', 'serving');
  const backendOptions = process.env.QGS_SERVING_OPTIONS ? JSON.parse(process.env.QGS_SERVING_OPTIONS) : process.env.QGS_SERVING_BACKEND ? {} : { dim: 16 };
  const HIST = 1000;
  const CANDS = 1000;
  const reps = quick ? 20 : 300;
  const concurrency = 64;
  const loadSeconds = quick ? 0.5 : 5;

  const rnd = lcg(12345);
  const histories = Array.from({ length: 8 }, () => makeHistory(rnd, HIST));
  const cands = Array.from({ length: 8 }, () => makeCandidates(rnd, CANDS));
  const query = { terms: [17, 4242], text: 'running shoes' };
  const label = path.relative(root, backendModule);
  console.log(`serving bench: backend ${label}, checkpoint ${path.relative(root, checkpoint) || '.'}, ${HIST}-event histories, ${CANDS} candidates, ${reps} reps${quick ? ' (BENCH_QUICK)' : ''}`);

  // --- the backend called directly on this thread (the baseline: no worker, no queue, no copy) ---
  const mod = require(backendModule);
  const direct = await mod.createBackend(checkpoint, backendOptions);
  for (let i = 0; i < 3; i++) direct.scoreBatch([{ state: direct.encode(histories[i % 8]), query, candidates: batch(cands[i % 8]) }]);
  const dCold = await timeLoop(reps, (i) => direct.scoreBatch([{ state: direct.encode(histories[i % 8]), query, candidates: batch(cands[i % 8]) }]));
  const dState = direct.encode(histories[0]);
  const dCached = await timeLoop(reps, (i) => direct.scoreBatch([{ state: dState, query, candidates: batch(cands[i % 8]) }]));
  direct.dispose();

  // --- through the Ranker ---
  const ranker = await Ranker.load(checkpoint, { backendModule, backendOptions, maxBatch: 64 });
  const rows = [];
  try {
    for (let i = 0; i < 3; i++) await ranker.score({ history: histories[i % 8], query, candidates: cands[i % 8] });
    const cold = await timeLoop(reps, (i) => ranker.score({ history: histories[i % 8], query, candidates: cands[i % 8] }));
    // warm the cache: one encode per user, then cached scoring
    for (let u = 0; u < concurrency; u++) await ranker.score({ user: u, history: histories[u % 8], query, candidates: cands[0].slice(0, 1) });
    const cached = await timeLoop(reps, (i) => ranker.score({ user: i % concurrency, query, candidates: cands[i % 8] }));
    const ev = makeHistory(rnd, reps);
    const observe = await timeLoop(reps, (i) => ranker.observe(i % concurrency, ev[i]));
    const exp = await timeLoop(Math.min(reps, 50), (i) => ranker.exportState(i % concurrency));
    // the bare thread hop: a call that does no backend work (queue, postMessage, worker wake-up, reply)
    const hop = await timeLoop(reps, () => ranker.forget('nobody'));

    // throughput: 64 clients, each scoring its own cached user in a loop
    const before = await ranker.stats();
    const lat = [];
    const tEnd = now() + loadSeconds * 1000;
    const t0 = now();
    let done = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, c) => {
        let k = 0;
        while (now() < tEnd) {
          const t = now();
          await ranker.score({ user: c, query, candidates: cands[(c + k++) % 8] });
          lat.push(now() - t);
          done++;
        }
      }),
    );
    const secs = (now() - t0) / 1000;
    const after = await ranker.stats();
    const batches = after.batchesSent - before.batchesSent - 1;
    const tput = done / secs;

    const dc = summary('direct: pack + encode + scoreBatch (main thread)', dCold);
    const dk = summary('direct: pack + scoreBatch (given state)', dCached);
    rows.push(dc, dk);
    rows.push(summary('ranker: cold (history re-encode)', cold, { vs_direct: pct(Float64Array.from(cold).sort(), 50) / dc.p50_ms }));
    rows.push(summary('ranker: cached state', cached, { vs_direct: pct(Float64Array.from(cached).sort(), 50) / dk.p50_ms }));
    rows.push(summary('ranker: observe (one step)', observe));
    rows.push(summary('ranker: exportState', exp));
    rows.push(summary('ranker: round trip, no backend work', hop));
    rows.push(summary(`ranker: cached, concurrency ${concurrency} (per request)`, lat, { req_per_s: tput, mean_batch: done / Math.max(1, batches) }));
    for (const r of rows) for (const k of ['vs_direct', 'req_per_s', 'mean_batch']) if (!(k in r)) r[k] = '';
    printTable(`serving latency (ms), ${HIST}-event history, ${CANDS} candidates, backend ${label}`, rows);
    const coldP99 = rows[2].p99_ms;
    const cachedP99 = rows[3].p99_ms;
    console.log(`targets (issue 6, QGS backend): cold p99 ${coldP99.toFixed(2)} ms (<= 5), cached p99 ${cachedP99.toFixed(2)} ms (<= 2); throughput ${tput.toFixed(0)} req/s at concurrency ${concurrency}`);
    console.log(`cache: ${after.cache.entries} users, ${after.cache.bytes} bytes, hits ${after.cache.hits}, misses ${after.cache.misses}; worker busy ${after.busyMs.toFixed(0)} ms`);
    saveRows('serving', rows.map((r) => ({ backend: label, quick, ...r })));
  } finally {
    await ranker.close();
  }
  return rows;
}

module.exports = { run };

if (require.main === module) {
  run().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
