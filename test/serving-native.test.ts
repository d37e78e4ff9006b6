// The serving worker with the real native addon inside it (a toy model whose scores go through
// native tensors), and the compiled Ranker (dist/) starting the compiled worker.js.
import * as fs from 'fs';
import * as path from 'path';
import { Ranker, decodeState } from '../src/qgs/serving';
import { Random } from '../src';
import { expectClose, freshSeed } from './helpers';

const FIX = path.join(__dirname, 'fixtures', 'serving');

test('the native addon loads and runs inside the serving worker; scores equal the toy backend', async () => {
  const nat = await Ranker.load(FIX, { backendModule: path.join(FIX, 'native-backend.js') });
  const toy = await Ranker.load(FIX, { backendModule: path.join(FIX, 'toy-backend.js') });
  try {
    expect(nat.stateTag).toMatch(/^native:qgs\.node:threads=\d+$/);
    const req = {
      history: [{ query: { terms: [3, 4] }, item: 10 }, { query: { id: 7 }, item: 11, action: 1 }],
      query: { text: 'red shoes' },
      candidates: Array.from({ length: 33 }, (_, i) => ({ item: i * 7, features: { stats: { ctr: i / 100 } } })),
    };
    const [a, b] = await Promise.all([nat.score(req), toy.score(req)]);
    expect(Array.from(a)).toEqual(Array.from(b));
    // concurrent calls through the native path, batched
    const many = await Promise.all(Array.from({ length: 16 }, () => nat.score(req)));
    for (const s of many) expect(Array.from(s)).toEqual(Array.from(b));
  } finally {
    await nat.close();
    await toy.close();
  }
});

test('a recurrence backend on the native kernels: cached steps match the chunked cold encode', async () => {
  const r = await Ranker.load(FIX, { backendModule: path.join(FIX, 'linrec-backend.js'), backendOptions: { heads: 2, dim: 8, vocab: 512 } });
  try {
    expect(r.stateSize).toBe(2 * 8 * 8);
    const seed = freshSeed();
    const rng = new Random(seed);
    const history = Array.from({ length: 150 }, () => ({ query: { terms: [rng.int(10_000), rng.int(10_000)] }, item: rng.int(100_000) }));
    const query = { terms: [rng.int(10_000)], text: 'blue' };
    const candidates = Array.from({ length: 300 }, () => ({ item: rng.int(100_000), features: { stats: { ctr: rng.int(100) / 100 } } }));
    // cached: 100 events in one observe (100 native steps), then 50 one call at a time
    await r.observe('u', history.slice(0, 100));
    for (const e of history.slice(100)) await r.observe('u', e);
    const cached = await r.score({ user: 'u', query, candidates });
    const cold = await r.score({ history, query, candidates });
    expectClose(cached, cold, 1e-5, 'cached vs cold scores', seed);
    // the states themselves agree to float rounding too
    const a = decodeState((await r.exportState('u'))!, { stateSize: r.stateSize, tag: r.stateTag });
    await r.score({ user: 'v', history, query, candidates: [] });
    const b = decodeState((await r.exportState('v'))!, { stateSize: r.stateSize, tag: r.stateTag });
    expectClose(a, b, 1e-5, 'cached vs cold state', seed);
    // and differ from a state missing the last event (the test is not vacuous)
    const c = await r.score({ history: history.slice(0, -1), query, candidates });
    expect(Array.from(c)).not.toEqual(Array.from(cold));
  } finally {
    await r.close();
  }
});

const dist = path.join(__dirname, '..', 'dist', 'qgs', 'serving', 'index.js');
// `npm test` builds dist/ first; a bare `npx jest` without a build skips this one.
(fs.existsSync(dist) ? test : test.skip)('the compiled Ranker (dist/) runs its compiled worker', async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const compiled = require(dist) as typeof import('../src/qgs/serving');
  const r = await compiled.Ranker.load(FIX, { backendModule: path.join(FIX, 'toy-backend.js') });
  const t = await Ranker.load(FIX, { backendModule: path.join(FIX, 'toy-backend.js') });
  try {
    const req = { history: [{ query: { id: 1 }, item: 2 }], query: { terms: [5] }, candidates: [{ item: 1 }, { item: 9 }] };
    expect(Array.from(await r.score(req))).toEqual(Array.from(await t.score(req)));
    await r.observe('u', { query: { id: 1 }, item: 2 });
    const bytes = await r.exportState('u');
    await t.importState('u', bytes as Uint8Array);
    expect(Array.from(await t.score({ user: 'u', query: { id: 3 }, candidates: [{ item: 4 }] }))).toEqual(
      Array.from(await r.score({ user: 'u', query: { id: 3 }, candidates: [{ item: 4 }] })),
    );
    // an ES-module backend loads too (through import(); the compiled worker keeps it native)
    const m = await compiled.Ranker.load(FIX, { backendModule: path.join(FIX, 'toy-backend.mjs') });
    try {
      expect(Array.from(await m.score(req))).toEqual(Array.from(await t.score(req)));
    } finally {
      await m.close();
    }
  } finally {
    await r.close();
    await t.close();
  }
});
