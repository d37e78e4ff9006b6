// The QGS serving measurements (issue 6), run in a process of their own by bench/suites/qgs.js:
//   node bench/suites/qgs-serving-process.js CHECKPOINT_DIR  → one JSON line of rows on stdout.
// A server loads a checkpoint and serves; measuring inside the process that generated the data and
// trained the model would add that process's heap (its garbage collections, on the main thread that
// validates requests) to every latency. Side by side in the same run (so the Ranker's overhead and
// this machine's own jitter are ratios, not guesses): the backend called on this thread with the
// packed request (what the worker runs), and a fixed native workload — its p99 / p50 is the machine's
// noise floor.
'use strict';
const path = require('path');
const { lcg, pct, quick } = require('../lib');

const dist = path.join(__dirname, '..', '..', 'dist');
const q = require(dist);
const { loadCheckpoint } = require(path.join(dist, 'qgs', 'checkpoint'));
const { createBackend } = require(path.join(dist, 'qgs', 'backend'));
const { packScoreRequest } = require(path.join(dist, 'qgs', 'serving', 'validate'));
const { CandidateBatch } = require(path.join(dist, 'qgs', 'serving', 'packed'));

async function measure(dir) {
  const ck = loadCheckpoint(dir);
  const { layout, itemVocab } = ck.model.cfg;
  ck.model.dispose();
  const ranker = await q.Ranker.load(dir);
  const rnd = lcg(11);
  const nItems = itemVocab - 1;
  const groups = layout.groups;
  const history = Array.from({ length: 1000 }, () => ({ query: { terms: [1 + Math.floor(rnd() * 50)] }, item: Math.floor(rnd() * nItems) }));
  const candidates = Array.from({ length: 1000 }, () => {
    const features = {};
    for (const g of groups) {
      features[g.name] = {};
      for (const f of g.features) features[g.name][f] = rnd() * 2;
    }
    return { item: Math.floor(rnd() * nItems), features };
  });
  const query = { terms: [3, 17] };
  // p99 needs a few hundred samples (of 60 it is the largest: one VM hiccup decides it).
  const reps = quick ? 10 : 300;
  const time = async (fn) => {
    await fn();
    const ms = [];
    for (let i = 0; i < reps; i++) {
      const t0 = process.hrtime.bigint();
      await fn();
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    ms.sort((a, b) => a - b);
    return { p50: pct(ms, 50), p99: pct(ms, 99) };
  };
  const cold = await time(() => ranker.score({ history, query, candidates }));
  await ranker.observe('bench-user', history);
  const cached = await time(() => ranker.score({ user: 'bench-user', query, candidates }));
  // The same candidates in columnar form (no per-candidate objects to validate on the main thread).
  const columns = groups.flatMap((g) => g.features.map((f) => ({ group: g.name, feature: f })));
  const columnar = {
    items: Int32Array.from(candidates, (c) => c.item),
    columns,
    values: Float32Array.from(candidates.flatMap((c) => columns.map((k) => c.features[k.group][k.feature]))),
  };
  const cachedColumnar = await time(() => ranker.score({ user: 'bench-user', query, candidates: columnar }));
  let ev = 0;
  const observe = await time(() => ranker.observe('bench-user-2', history[ev++ % history.length]));
  const conc = 64;
  const rounds = quick ? 2 : 8;
  let t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) await Promise.all(Array.from({ length: conc }, () => ranker.score({ user: 'bench-user', query, candidates })));
  const scoreSecs = Number(process.hrtime.bigint() - t0) / 1e9;
  // Observes from 64 clients at once (each its own user): what a stream of interactions costs.
  const perClient = quick ? 5 : 50;
  t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: conc }, async (_, c) => {
    for (let k = 0; k < perClient; k++) await ranker.observe(`stream-${c}`, history[(c + k) % history.length]);
  }));
  const observeSecs = Number(process.hrtime.bigint() - t0) / 1e9;
  await ranker.close();
  const backend = createBackend(dir);
  backend.warmup();
  const packed = packScoreRequest({ history, query, candidates });
  const state = backend.encodePacked(packed.history);
  const batch = () => new CandidateBatch(packed.candidates);
  const directCold = await time(() => backend.scoreBatch([{ state: backend.encodePacked(packed.history), query, candidates: batch() }]));
  const directCached = await time(() => backend.scoreBatch([{ state, query, candidates: batch() }]));
  backend.dispose();
  const a = q.randn([384, 384], { seed: 1 });
  const floor = await time(() => q.scope(() => q.ops.matmul(a, a)));
  a.dispose();
  return [
    { case: 'cold: 1,000-event history re-encoded + 1,000 candidates', p50_ms: cold.p50, p99_ms: cold.p99, target_p99_ms: 5 },
    { case: 'cached: user state + 1,000 candidates', p50_ms: cached.p50, p99_ms: cached.p99, target_p99_ms: 2 },
    { case: 'cached, columnar candidates (Int32Array + Float32Array)', p50_ms: cachedColumnar.p50, p99_ms: cachedColumnar.p99, target_p99_ms: 2 },
    { case: 'observe: one interaction (state step)', p50_ms: observe.p50, p99_ms: observe.p99, target_p99_ms: NaN },
    { case: `throughput at concurrency ${conc} (cached, requests/s)`, p50_ms: (rounds * conc) / scoreSecs, p99_ms: NaN, target_p99_ms: NaN },
    { case: `observes at concurrency ${conc} (interactions/s)`, p50_ms: (perClient * conc) / observeSecs, p99_ms: NaN, target_p99_ms: NaN },
    { case: 'in-process backend, cold (encodePacked + scoreBatch)', p50_ms: directCold.p50, p99_ms: directCold.p99, target_p99_ms: NaN },
    { case: 'in-process backend, cached (scoreBatch)', p50_ms: directCached.p50, p99_ms: directCached.p99, target_p99_ms: NaN },
    { case: 'noise floor: fixed 384^3 matmul (p99/p50 = machine jitter)', p50_ms: floor.p50, p99_ms: floor.p99, target_p99_ms: NaN },
  ];
}

module.exports = { measure };

if (require.main === module) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node bench/suites/qgs-serving-process.js CHECKPOINT_DIR');
    process.exit(2);
  }
  measure(path.resolve(dir)).then(
    // NaN is not JSON: absent values travel as null.
    (rows) => process.stdout.write(`${JSON.stringify(rows)}\n`),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
