// Training on a search-log file (src/qgs/log-data.ts and `qgs train/eval --data`): the spec
// inference, the id / query / feature mappings a checkpoint keeps, and the CLI round trip.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runCli } from '../src/cli/main';
import { inferFeatureSpec, type SessionRecord } from '../src/data/schema';
import { hashTerm } from '../src/data/vocab';
import { LogMapper, parseLogVocab, prepareLogData, readLogRecords } from '../src/qgs/log-data';
import { ITEM_OFFSET, NO_QUERY, TERM_OFFSET } from '../src/qgs/dataset';
import { loadCheckpoint, saveCheckpoint } from '../src/qgs/checkpoint';
import { generateSessions } from '../src/data/synthetic';
import { runVariant, VARIANTS } from '../src/qgs/experiment';
import { QgsBackend } from '../src/qgs/backend';
import { scoreRequest } from '../src/qgs/scoring';
import { CandidateBatch } from '../src/qgs/serving/packed';
import { packHistory, DEFAULT_LIMITS } from '../src/qgs/serving/validate';
import { Ranker } from '../src/qgs/serving';
import type { Interaction } from '../src/qgs/serving/backend';
import { captureIO, errorOf, relError } from './helpers';

const capture = captureIO;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qgs-log-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const MIN = 60e3;
/** Two users, three sessions each (30+ min apart) so the per-user time split has train, valid and test. */
function records(acme: string | number = 'acme'): SessionRecord[] {
  const out: SessionRecord[] = [];
  for (const [u, user] of ['alice', 'bob'].entries()) {
    for (let s = 0; s < 3; s++) {
      const ts = 1.7e12 + u * 1e9 + s * 60 * MIN;
      // Item 'new-<user>' is shown only in the last (test) session.
      const shown = s === 2 ? ['sku-1', `new-${user}`] : ['sku-1', 'sku-2', 'sku-3'];
      const n = shown.length;
      out.push({
        user,
        ts,
        query: s === 1 ? null : { text: s === 0 ? 'Red Shoes' : 'blue hat' },
        shown,
        clicks: shown.map((_, i) => (i === s % n ? 1 : 0)),
        features: {
          price: shown.map((_, i) => (i === 0 ? null : 10 + i)),
          brand: shown.map((_, i) => (i === 2 ? 'zed' : acme)),
          tags: shown.map(() => ['x', 'y']),
          ctx: shown.flatMap((_, i) => [i, Math.log1p(i)]),
        },
      });
    }
  }
  return out;
}

describe('inferFeatureSpec', () => {
  test('kinds and widths from the records; a width that changes is an error naming the record', () => {
    const spec = inferFeatureSpec(records());
    expect(spec.groups).toEqual([
      { name: 'price', kind: 'numeric', features: ['price_0'] },
      { name: 'brand', kind: 'categorical', features: ['brand_0'] },
      { name: 'tags', kind: 'bag', features: ['tags_0'] },
      { name: 'ctx', kind: 'numeric', features: ['ctx_0', 'ctx_1'] },
    ]);
    const bad = records();
    bad[3] = { ...bad[3], features: { ...bad[3].features, ctx: [1, 2, 3] } };
    expect(() => inferFeatureSpec(bad)).toThrow(/records\[3\]\.features\.ctx has 3 values for 3 shown items|records\[3\]\.features\.ctx has 1 values per item, records\[0\] had 2/);
  });
});

describe('prepareLogData', () => {
  test('items from the training split only (model item 0 = unseen), hashed query terms, expanded categories', () => {
    const recs = records();
    const { data, vocab, stats } = prepareLogData(recs, { termBuckets: 1000, maxCategories: 1 });
    // Sessions 0 / 1 / 2 of each user are train / valid / test.
    expect([stats.train, stats.valid, stats.test]).toEqual([2, 2, 2]);
    expect(vocab.items).toEqual(['sku-1', 'sku-2', 'sku-3']);
    expect(data.itemVocab).toBe(vocab.items.length + 1 + ITEM_OFFSET);
    expect(data.termVocab).toBe(1000 + TERM_OFFSET);
    expect(stats.unseenItems).toBe(2); // new-alice, new-bob
    const alice = data.users[0].requests;
    expect(Array.from(alice[0].items)).toEqual([1, 2, 3].map((i) => i + ITEM_OFFSET));
    expect(Array.from(alice[2].items)).toEqual([1 + ITEM_OFFSET, 0 + ITEM_OFFSET]);
    // Text → lower-cased tokens → FNV buckets; a null query → NO_QUERY.
    expect(Array.from(alice[0].terms)).toEqual(['red', 'shoes'].map((t) => hashTerm(t, 1000) + TERM_OFFSET));
    expect(Array.from(alice[1].terms)).toEqual([NO_QUERY]);
    // The bag group is dropped; brand keeps its most frequent training value plus "other".
    expect(vocab.dropped).toEqual(['tags']);
    expect(vocab.categorical).toEqual([{ group: 'brand', feature: 'brand_0', values: ['acme'] }]);
    expect(vocab.spec.groups.map((g) => [g.name, g.features])).toEqual([
      ['price', ['price_0']],
      ['brand', ['brand_0=acme', 'brand_0=<other>']],
      ['ctx', ['ctx_0', 'ctx_1']],
    ]);
    expect(data.layout.dim).toBe(5);
    // Rows: price (null → NaN), brand one-hot, ctx as is.
    const f = alice[0].features;
    const row = (i: number): number[] => Array.from(f.subarray(i * 5, i * 5 + 5));
    expect(row(0)).toEqual([NaN, 1, 0, 0, 0]);
    expect(row(1)[0]).toBe(11);
    expect(row(1).slice(1, 3)).toEqual([1, 0]);
    expect(row(2).slice(1, 3)).toEqual([0, 1]); // 'zed' is not among the kept values
    expect(row(2)[3]).toBe(2);
    expect(row(2)[4]).toBeCloseTo(Math.log1p(2), 6);
  });

  test('an item catalogue by raw id becomes the side tables by model item id, titles hashed like queries', () => {
    const catalogue = { ids: ['sku-2', 'sku-1', 'gone'], category: [4, 7, 9], style: [-1, 2, 0], titles: [['Hat'], [3, 'red'], ['x']] };
    const { data } = prepareLogData(records(), { termBuckets: 1000, catalogue });
    const { side } = data;
    const row = (m: number): number => m + ITEM_OFFSET; // model item m (1 = sku-1, 2 = sku-2, 3 = sku-3)
    expect([side.category[row(1)], side.category[row(2)], side.category[row(3)], side.category[row(0)]]).toEqual([8, 5, 0, 0]);
    expect([side.style[row(1)], side.style[row(2)]]).toEqual([3, 0]);
    const title = (m: number): number[] => Array.from(side.title.subarray(row(m) * side.maxTitle, row(m) * side.maxTitle + 2));
    expect(title(1)).toEqual([hashTerm(3, 1000) + TERM_OFFSET, hashTerm('red', 1000) + TERM_OFFSET]);
    expect(title(2)).toEqual([hashTerm('Hat', 1000) + TERM_OFFSET, 0]);
    expect(() => prepareLogData(records(), { catalogue: { ids: ['sku-1'], category: [1.5] } })).toThrow(/catalogue\.category\[0\] must be an integer id >= -1, got 1\.5/);
  });

  test("a checkpoint's vocabulary (through JSON) maps the same log to the same data", () => {
    const recs = records();
    const first = prepareLogData(recs);
    const vocab = parseLogVocab(JSON.parse(JSON.stringify(first.vocab)), 'vocab');
    expect(vocab).toEqual(first.vocab);
    const again = prepareLogData(recs, { vocab, termBuckets: 7 /* ignored: the vocabulary decides */ });
    expect(again.data.users.map((u) => u.requests.map((r) => [Array.from(r.items), Array.from(r.terms), Array.from(r.features)]))).toEqual(
      first.data.users.map((u) => u.requests.map((r) => [Array.from(r.items), Array.from(r.terms), Array.from(r.features)])),
    );
    // The mapper serves raw requests the same way: 7 and "7" are one id; unseen items → 0.
    const m = new LogMapper(vocab, 4);
    expect(m.item('sku-2')).toBe(2);
    expect(m.item('never-seen')).toBe(0);
    expect(m.terms({ text: 'RED, shoes!' })).toEqual(m.terms({ text: 'red shoes' }));
    expect(m.terms({ terms: [5, 6], text: 'ignored when terms are given' })).toEqual([5, 6].map((t) => hashTerm(t, vocab.termBuckets)));
  });

  test('bad options and bad vocabularies are refused by name', () => {
    expect(() => prepareLogData([])).toThrow(/no records/);
    expect(() => prepareLogData(records(), { termBuckets: 1 })).toThrow(/termBuckets must be an integer in \[2, /);
    expect(() => prepareLogData(records(), { maxTerms: 0 })).toThrow(/maxTerms must be an integer in \[1, 64\], got 0/);
    const v = JSON.parse(JSON.stringify(prepareLogData(records(), { maxCategories: 1 }).vocab));
    expect(() => parseLogVocab({ ...v, items: ['a', 'a'] }, 'vocab')).toThrow(/vocab\.items: an item id appears twice/);
    expect(() => parseLogVocab({ ...v, termBuckets: 1.5 }, 'vocab')).toThrow(/vocab\.termBuckets: expected an integer >= 2, got 1\.5/);
    const wrong = { ...v, categorical: [{ ...v.categorical[0], values: ['acme', 'zed'] }] };
    expect(() => parseLogVocab(wrong, 'vocab')).toThrow(/group 'brand' has 2 columns, its categorical features need 3/);
    expect(() => parseLogVocab({ ...v, spec: { groups: [{ name: 'x', kind: 'weird', features: ['a'] }] } }, 'vocab')).toThrow(/vocab\.spec\.groups\[0\]\.kind: expected one of numeric, categorical, bag/);
  });

  test('KuaiSAR and JDsearch fixtures read through their adapters and prepare', async () => {
    const fx = path.join(__dirname, 'fixtures');
    const k = readLogRecords(path.join(fx, 'kuaisar', 'src_inter.csv'), 'kuaisar');
    const kd = prepareLogData(await k.stream.toArray(), { spec: k.spec });
    // KuaiSAR's two categorical groups become indicator columns (item_type, search_source).
    expect(kd.vocab.spec.groups.map((g) => g.name)).toEqual(['item', 'query_side']);
    expect(kd.vocab.categorical.map((c) => c.feature)).toEqual(['item_type', 'search_source']);
    // int64 ids beyond 2^53 stay exact as strings in the vocabulary.
    expect(kd.vocab.items.every((id) => /^\d+$/.test(id))).toBe(true);
    const j = readLogRecords(path.join(fx, 'jdsearch', 'release_data.txt'), 'jdsearch');
    const jd = prepareLogData(await j.stream.toArray());
    expect(jd.stats.records).toBe(j.stream.report.records);
    expect(jd.data.layout.dim).toBe(0);
  });
});

describe('qgs train / eval --data', () => {
  test('train on a generated JSONL log, then eval with the saved vocabulary reproduces the test metrics', async () => {
    const data = path.join(dir, 'log.jsonl');
    expect(await runCli(['generate', '--users', '60', '--items', '300', '--seed', '5', '--out', data], capture())).toBe(0);
    const out = path.join(dir, 'model');
    const io = capture();
    expect(await runCli(['train', '--data', data, '--epochs', '2', '--out', out, '--json'], io)).toBe(0);
    const row = JSON.parse(io.stdout.join('').trim()) as { gauc: number; auc: number };
    expect(Number.isFinite(row.gauc)).toBe(true);
    const { config, model } = loadCheckpoint(out);
    model.dispose();
    expect(config.vocab).toBeDefined();
    // The generator's metadata sidecar was used: its feature names and its position feature.
    expect(config.vocab!.spec.groups.flatMap((g) => g.features)).toContain('log_rank');
    expect(config.model.layout.positionColumn).toBeGreaterThanOrEqual(0);
    // ... and its item catalogue: items carry categories and title terms.
    expect(config.model.side.category.some((c) => c > 0)).toBe(true);
    expect(config.model.side.title.some((t) => t > 0)).toBe(true);
    const io2 = capture();
    expect(await runCli(['eval', '--model', out, '--data', data, '--json'], io2)).toBe(0);
    const ev = JSON.parse(io2.stdout.join('').trim()) as { gauc: number; auc: number };
    expect(ev.gauc).toBe(row.gauc);
    expect(ev.auc).toBe(row.auc);
    // A log-trained model needs its log; a synthetic one has no vocabulary to map a log with.
    const io3 = capture();
    expect(await runCli(['eval', '--model', out], io3)).not.toBe(0);
    expect(io3.stderr.join('')).toMatch(/trained on a log file; pass --data/);
    // --users / --items size the synthetic data: refused with --data, by eval as by train.
    for (const cmd of [['eval', '--model', out], ['train', '--epochs', '1', '--out', path.join(dir, 'm3')]]) {
      const io4 = capture();
      expect(await runCli([...cmd, '--data', data, '--users', '10'], io4)).not.toBe(0);
      expect(io4.stderr.join('')).toMatch(/--users and --items size the synthetic data; they do not apply with --data/);
    }
  });

  test('bad --data arguments fail with the option named', async () => {
    const io = capture();
    expect(await runCli(['train', '--data', path.join(dir, 'missing.jsonl'), '--epochs', '1', '--out', path.join(dir, 'm2')], io)).not.toBe(0);
    expect(io.stderr.join('')).toMatch(/--data: .*missing\.jsonl does not exist/);
    const io2 = capture();
    expect(await runCli(['train', '--data', path.join(__dirname, 'fixtures', 'sessions', 'sessions.jsonl'), '--format', 'xml'], io2)).not.toBe(0);
    expect(io2.stderr.join('')).toMatch(/--format: expected one of jsonl, csv, tsv, parquet, kuaisar, jdsearch, got 'xml'/);
    const io3 = capture();
    expect(await runCli(['train', '--format', 'csv'], io3)).not.toBe(0);
    expect(io3.stderr.join('')).toMatch(/--format, --strict and --spec apply to --data only/);
    const io4 = capture();
    expect(await runCli(['train', '--data', path.join(__dirname, 'fixtures', 'sessions', 'sessions.jsonl'), '--strict'], io4)).not.toBe(0);
    expect(io4.stderr.join('')).toMatch(/sessions\.jsonl:\d+: /);
  });
});

describe('serving a log-trained model', () => {
  test('raw item ids and query text map through the vocabulary: steps = encode, cached = cold = Ranker', async () => {
    // A generated log whose item ids are shifted far past the catalogue size: served unmapped, they
    // would be out of the model's item table, so agreement below needs the vocabulary.
    const SHIFT = 5_000_000;
    const ds = generateSessions({ users: 40, items: 150, seed: 4 });
    const recs = ds.records.map((r) => ({ ...r, shown: r.shown.map((id) => Number(id) + SHIFT) }));
    const { data, vocab } = prepareLogData(recs, { spec: ds.spec });
    const { result } = runVariant(data, VARIANTS[0], { epochs: 1, seed: 3, batchTokens: 400 });
    const { model, scaler } = result;
    const raw = vocab.items.slice(0, 6).map(Number);
    const history: Interaction[] = [
      { query: { text: 't1.0 f2.1' }, item: raw[0] },
      { query: { terms: [3, 9] }, item: raw[1] },
      { query: { text: 'T1.0, F2.1' }, item: raw[2] },
    ];
    const query = { text: 't1.0 t1.1' };
    const unseen = 77; // never shown in training: the unseen-item row, not an error
    const items = Int32Array.from([raw[3], raw[4], unseen, raw[5]]);
    const cols = scaler.mean.length;
    const columns = model.cfg.layout.groups.flatMap((g) => g.features.map((f) => ({ group: g.name, feature: f })));
    const values = Float32Array.from({ length: items.length * cols }, (_, i) => (i % 5) * 0.3);
    const be = new QgsBackend(model, scaler, vocab);
    let st = be.emptyState();
    for (const e of history) st = be.step(st, e);
    expect(relError(st, be.encode(history))).toBeLessThan(1e-5);
    expect(be.encodePacked(packHistory(history, 'history', DEFAULT_LIMITS))).toEqual(be.encode(history));
    const [cached] = be.scoreBatch([{ state: st, query, candidates: new CandidateBatch({ items, columns, values, extras: [] }) }]);
    const candidates = Array.from(items, (item, i) => {
      const features: Record<string, Record<string, number>> = {};
      columns.forEach((c, j) => ((features[c.group] ??= {})[c.feature] = values[i * cols + j]));
      return { item, features };
    });
    const cold = scoreRequest(model, scaler, { history, query, candidates }, vocab);
    expect(relError(cached, cold)).toBeLessThan(1e-4);
    // Without the vocabulary the same request is refused: the shifted ids are outside the item table.
    expect(errorOf(() => scoreRequest(model, scaler, { history, query, candidates }))).toMatch(/outside the model's catalogue/);
    // The query text is read (hashed tokens), not dropped: the read-out token changes the scores.
    const noQuery = scoreRequest(model, scaler, { history, query: null, candidates }, vocab);
    expect(relError(noQuery, cold)).toBeGreaterThan(1e-3);
    // String ids map too (the vocabulary keys ids as strings: 7 and "7" are one id).
    const asStrings = scoreRequest(model, scaler, { history, query, candidates: candidates.map((c) => ({ ...c, item: String(c.item) })) }, vocab);
    expect(Array.from(asStrings)).toEqual(Array.from(cold));
    // Through the Ranker (default backend, the checkpoint's vocabulary): cold and cached.
    const out = path.join(dir, 'served');
    saveCheckpoint(out, model, scaler, {}, vocab);
    be.dispose(); // and the model
    const ranker = await Ranker.load(out);
    try {
      const viaCold = await ranker.score({ history, query, candidates });
      expect(relError(viaCold, cold)).toBeLessThan(1e-4);
      await ranker.observe('u', history);
      const viaCached = await ranker.score({ user: 'u', query, candidates });
      expect(relError(viaCached, cold)).toBeLessThan(1e-4);
      // String ids and integers past int32 through the Ranker (packed beside the int32 ids): the
      // vocabulary keys ids as strings, and an id it never saw is the unseen-item row like 77.
      const keyed = candidates.map((c) => ({ ...c, item: c.item === unseen ? 2 ** 40 : String(c.item) }));
      const historyKeyed = history.map((e) => ({ ...e, item: String(e.item) }));
      expect(Array.from(await ranker.score({ history: historyKeyed, query, candidates: keyed }))).toEqual(Array.from(viaCold));
      await ranker.observe('k', historyKeyed);
      expect(Array.from(await ranker.score({ user: 'k', query, candidates: keyed }))).toEqual(Array.from(viaCached));
      // The columnar form takes the same ids as an array.
      const keyedColumns = { items: keyed.map((c) => c.item), columns, values };
      expect(Array.from(await ranker.score({ user: 'k', query, candidates: keyedColumns }))).toEqual(Array.from(viaCached));
    } finally {
      await ranker.close();
    }
  });

  test('raw categorical values set their indicator columns as in training: qgs rank scoring, the backend and Ranker agree', async () => {
    const { data, vocab } = prepareLogData(records(), { termBuckets: 1000, maxCategories: 1 });
    expect(vocab.categorical).toEqual([{ group: 'brand', feature: 'brand_0', values: ['acme'] }]);
    const { result } = runVariant(data, VARIANTS[0], { epochs: 1, seed: 3, batchTokens: 400 });
    const { model, scaler } = result;
    const slots = new LogMapper(vocab).categoricalSlots(model.cfg.layout);
    expect(slots.map(({ group, feature, offset, width }) => ({ group, feature, offset, width }))).toEqual([{ group: 'brand', feature: 'brand_0', offset: 1, width: 2 }]);
    const base = (i: number): Record<string, Record<string, number>> => ({ price: { price_0: 10 + i }, ctx: { ctx_0: i, ctx_1: Math.log1p(i) } });
    const ids = ['sku-1', 'sku-2', 'sku-3', 'sku-2', 'sku-1'];
    // Raw values (a kept one, one training never kept, a number, a null, none) and the same as indicator columns.
    const brands: (string | number | null | undefined)[] = ['acme', 'zed', 7, null, undefined];
    const indicator = (b: string | number | null | undefined): Record<string, number> | undefined =>
      b === null || b === undefined ? undefined : b === 'acme' ? { 'brand_0=acme': 1, 'brand_0=<other>': 0 } : { 'brand_0=acme': 0, 'brand_0=<other>': 1 };
    const rawCands = ids.map((item, i) => ({ item, features: { ...base(i), ...(brands[i] === undefined ? {} : { brand: { brand_0: brands[i] } }) } }));
    const colCands = ids.map((item, i) => ({ item, features: { ...base(i), ...(indicator(brands[i]) === undefined ? {} : { brand: indicator(brands[i])! }) } }));
    const history: Interaction[] = [{ query: { text: 'red shoes' }, item: 'sku-1' }];
    const query = { text: 'blue hat' };
    const viaColumns = scoreRequest(model, scaler, { history, query, candidates: colCands }, vocab);
    const viaRaw = scoreRequest(model, scaler, { history, query, candidates: rawCands }, vocab);
    expect(Array.from(viaRaw)).toEqual(Array.from(viaColumns));
    // The brand matters (else the comparison above could not fail): acme vs other moves the score.
    const flipped = scoreRequest(model, scaler, { history, query, candidates: rawCands.map((c) => ({ ...c, features: { ...c.features, brand: { brand_0: 'acme' } } })) }, vocab);
    expect(flipped[1]).not.toBe(viaRaw[1]);
    expect(errorOf(() => scoreRequest(model, scaler, { history, query, candidates: [{ item: 'sku-1', features: { brand: { brand_0: [1] as unknown as string } } }] }, vocab))).toMatch(/candidates\[0\]\.features\.brand\.brand_0: expected a category \(a string or a finite number\) or null, got \[1\]/);
    const out = path.join(dir, 'served-categorical');
    saveCheckpoint(out, model, scaler, {}, vocab);
    model.dispose();
    const ranker = await Ranker.load(out);
    try {
      const rankedRaw = await ranker.score({ history, query, candidates: rawCands });
      const rankedColumns = await ranker.score({ history, query, candidates: colCands });
      expect(Array.from(rankedRaw)).toEqual(Array.from(rankedColumns));
      expect(relError(rankedRaw, viaRaw)).toBeLessThan(1e-4);
      await expect(ranker.score({ history, query, candidates: [{ item: 'sku-1', features: { brand: { brand_0: ['a'] } } }] })).rejects.toThrow(/candidates\[0\]\.features\.brand\.brand_0: expected a category/);
    } finally {
      await ranker.close();
    }
  });

  test('a category sent as a number reaches the Ranker exact: 2^24 + 1 is not its float32 neighbour 2^24', async () => {
    const big = 2 ** 24 + 1;
    const { data, vocab } = prepareLogData(records(big), { termBuckets: 1000, maxCategories: 1 });
    expect(vocab.categorical).toEqual([{ group: 'brand', feature: 'brand_0', values: [String(big)] }]);
    const { result } = runVariant(data, VARIANTS[0], { epochs: 1, seed: 3, batchTokens: 400 });
    const { model, scaler } = result;
    const out = path.join(dir, 'served-big-category');
    saveCheckpoint(out, model, scaler, {}, vocab);
    const history: Interaction[] = [{ query: { text: 'red shoes' }, item: 'sku-1' }];
    const query = { text: 'blue hat' };
    const brands = [big, 2 ** 24, 0.1, big];
    // All-numeric candidates, 40 (the compiled reader) and 4 (the generic packer), against the
    // object path of qgs rank (no float32 on the way) and against the indicator columns.
    const cands = (n: number, brand: (i: number) => Record<string, number>) =>
      Array.from({ length: n }, (_, i) => ({ item: ['sku-1', 'sku-2', 'sku-3'][i % 3], features: { price: { price_0: 10 + (i % 5) }, ctx: { ctx_0: i % 4, ctx_1: Math.log1p(i % 4) }, brand: brand(i) } }));
    const raw = (i: number) => ({ brand_0: brands[i % brands.length] });
    const kept = { [`brand_0=${big}`]: 1, 'brand_0=<other>': 0 };
    const other = { [`brand_0=${big}`]: 0, 'brand_0=<other>': 1 };
    const ind = (i: number) => (brands[i % brands.length] === big ? kept : other);
    const ranker = await Ranker.load(out);
    try {
      for (const n of [40, 4]) {
        const viaObjects = scoreRequest(model, scaler, { history, query, candidates: cands(n, raw) }, vocab);
        const viaIndicators = scoreRequest(model, scaler, { history, query, candidates: cands(n, ind) }, vocab);
        expect(Array.from(viaObjects)).toEqual(Array.from(viaIndicators));
        const ranked = await ranker.score({ history, query, candidates: cands(n, raw) });
        expect(relError(ranked, viaObjects)).toBeLessThan(1e-4);
        // The category matters (else the comparison could not fail): as "other", row 0 scores differently.
        const asOther = await ranker.score({ history, query, candidates: cands(n, () => other) });
        expect(Math.abs(asOther[0] - ranked[0])).toBeGreaterThan(1e-4);
      }
    } finally {
      await ranker.close();
      model.dispose();
    }
  });
});
