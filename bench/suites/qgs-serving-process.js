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
  // p99 is the 1-in-100 slow request, and on this VM those come from preemption and steal (a
  // thread of the pool descheduled mid-request), not from the request: of 300 samples p99 is the
  // third largest, and the bench's p99 moved 2x between runs minutes apart. So each case takes
  // ~2,000 samples of a ~1 ms request (1,000 of the slower ones; a few seconds each), and besides
  // the p99 of all of them reports the least and largest p99 of the run's four quarters — how much
  // p99 moved within this one run.
  const time = async (fn, reps) => {
    reps = quick ? 10 : reps;
    for (let i = 0; i < Math.min(50, reps); i++) await fn();
    const ms = [];
    for (let i = 0; i < reps; i++) {
      const t0 = process.hrtime.bigint();
      await fn();
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const q = Math.floor(reps / 4);
    const quarterP99 = [0, 1, 2, 3].map((k) => pct(ms.slice(k * q, (k + 1) * q).sort((a, b) => a - b), 99));
    ms.sort((a, b) => a - b);
    return { p50: pct(ms, 50), p99: pct(ms, 99), p99Low: Math.min(...quarterP99), p99High: Math.max(...quarterP99) };
  };
  const cold = await time(() => ranker.score({ history, query, candidates }), 1000);
  await ranker.observe('bench-user', history);
  const cached = await time(() => ranker.score({ user: 'bench-user', query, candidates }), 2000);
  // The same candidates in columnar form (no per-candidate objects to validate on the main thread).
  const columns = groups.flatMap((g) => g.features.map((f) => ({ group: g.name, feature: f })));
  const columnar = {
    items: Int32Array.from(candidates, (c) => c.item),
    columns,
    values: Float32Array.from(candidates.flatMap((c) => columns.map((k) => c.features[k.group][k.feature]))),
  };
  const cachedColumnar = await time(() => ranker.score({ user: 'bench-user', query, candidates: columnar }), 2000);
  let ev = 0;
  const observe = await time(() => ranker.observe('bench-user-2', history[ev++ % history.length]), 2000);
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
  const directCold = await time(() => backend.scoreBatch([{ state: backend.encodePacked(packed.history), query, candidates: batch() }]), 1000);
  const directCached = await time(() => backend.scoreBatch([{ state, query, candidates: batch() }]), 2000);
  backend.dispose();
  const a = q.randn([384, 384], { seed: 1 });
  const floor = await time(() => q.scope(() => q.ops.matmul(a, a)), 2000);
  a.dispose();
  const row = (t) => ({ p50_ms: t.p50, p99_ms: t.p99, p99_quarters_min_ms: t.p99Low, p99_quarters_max_ms: t.p99High });
  const none = { p99_ms: NaN, p99_quarters_min_ms: NaN, p99_quarters_max_ms: NaN };
  return [
    { case: 'cold: 1,000-event history re-encoded + 1,000 candidates', ...row(cold), target_p99_ms: 5 },
    { case: 'cached: user state + 1,000 candidates', ...row(cached), target_p99_ms: 2 },
    { case: 'cached, columnar candidates (Int32Array + Float32Array)', ...row(cachedColumnar), target_p99_ms: 2 },
    { case: 'observe: one interaction (state step)', ...row(observe), target_p99_ms: NaN },
    { case: `throughput at concurrency ${conc} (cached, requests/s)`, p50_ms: (rounds * conc) / scoreSecs, ...none, target_p99_ms: NaN },
    { case: `observes at concurrency ${conc} (interactions/s)`, p50_ms: (perClient * conc) / observeSecs, ...none, target_p99_ms: NaN },
    { case: 'in-process backend, cold (encodePacked + scoreBatch)', ...row(directCold), target_p99_ms: NaN },
    { case: 'in-process backend, cached (scoreBatch)', ...row(directCached), target_p99_ms: NaN },
    { case: 'noise floor: fixed 384^3 matmul (p99/p50 = machine jitter)', ...row(floor), target_p99_ms: NaN },
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
