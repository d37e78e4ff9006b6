import { Vocab, hashTerm, queryKey, queryTermIds, tokenize } from '../src/data/vocab';
import { splitByUserTime, splitIndices, TRAIN, VALID, TEST } from '../src/data/split';
import { SessionIndex, batchIndices, rankingBatches, shuffledOrder, packJagged, timeBucket } from '../src/data/batching';
import type { SessionRecord } from '../src/data/schema';
import { generateSessions, GENERATOR_TINY } from '../src/data/synthetic';
import { prepareData } from '../src/data/prepare';

const MIN = 60e3;
const DAY = 86400e3;

describe('vocab and hashed terms', () => {
  test('ids map to 1..n, 0 is unknown/padding, 7 and "7" are one id', () => {
    const v = new Vocab();
    expect(v.add(7)).toBe(1);
    expect(v.add('x')).toBe(2);
    expect(v.add('7')).toBe(1);
    expect(v.size).toBe(3);
    v.freeze();
    expect(v.add('new')).toBe(0);
    expect(v.get('nope')).toBe(0);
    expect(v.idAt(2)).toBe('x');
    expect(() => v.idAt(0)).toThrow(/out of range/);
    const w = Vocab.fromJSON(v.toJSON());
    expect(w.get(7)).toBe(1);
    expect(w.get('x')).toBe(2);
    expect(() => Vocab.fromJSON(['a', 'a'])).toThrow(/duplicate/);
  });
  test('hashTerm is stable, in [1, buckets), and distinguishes numbers from text', () => {
    // FNV-1a of "#42": fixed value, so checkpoints stay valid across versions.
    expect(hashTerm(42, 1 << 15)).toBe(hashTerm(42, 1 << 15));
    const seen = new Set<number>();
    for (let t = 0; t < 2000; t++) {
      const h = hashTerm(t, 97);
      expect(h).toBeGreaterThanOrEqual(1);
      expect(h).toBeLessThan(97);
      seen.add(h);
    }
    expect(seen.size).toBe(96); // every bucket used
    expect(hashTerm('a', 2)).toBe(1);
    expect(() => hashTerm(1, 1)).toThrow(/buckets/);
    // FNV-1a 32-bit of "a" is 0xe40c292c; 1 + (h mod 1000)
    expect(hashTerm('a', 1001)).toBe(1 + (0xe40c292c % 1000));
  });
  test('query keys and terms from ids or text', () => {
    expect(queryKey({ terms: [3, 1] })).toBe('t:3 1');
    expect(queryKey({ text: 'Red  Shoes!' })).toBe('x:red shoes');
    expect(tokenize('Größe 42, rot')).toEqual(['größe', '42', 'rot']);
    expect(queryTermIds({ text: 'red shoes' }, 100)).toEqual([hashTerm('red', 100), hashTerm('shoes', 100)]);
    expect(queryTermIds({ terms: [5, 6, 7] }, 100, 2)).toEqual([hashTerm(5, 100), hashTerm(6, 100)]);
    expect(queryTermIds(null, 100)).toEqual([]);
  });
});

function rec(user: string, ts: number, shown: number[], clicks: number[], extra: Partial<SessionRecord> = {}): SessionRecord {
  return { user, ts, query: { terms: [1] }, shown, clicks, ...extra };
}

describe('splitByUserTime', () => {
  test('last session test, the one before validation, by session id', () => {
    const rs = [
      rec('a', 3 * DAY, [1], [0], { session: 's3' }),
      rec('a', 1 * DAY, [1], [0], { session: 's1' }),
      rec('a', 2 * DAY, [1], [0], { session: 's2' }),
      rec('a', 3 * DAY + MIN, [1], [0], { session: 's3' }),
      rec('a', 0, [1], [0], { session: 's0' }),
      rec('b', 5, [1], [0], { session: 'only' }),
      rec('c', 0, [1], [0], { session: 'c1' }),
      rec('c', DAY, [1], [0], { session: 'c2' }),
    ];
    const codes = splitByUserTime(rs);
    expect(Array.from(codes)).toEqual([TEST, TRAIN, VALID, TEST, TRAIN, TEST, VALID, TEST]);
    expect(splitIndices(codes, VALID)).toEqual([2, 6]);
  });
  test('sessions from inactivity gaps when records have no session id', () => {
    const rs = [rec('u', 0, [1], [0]), rec('u', 10 * MIN, [1], [0]), rec('u', 2 * DAY, [1], [0]), rec('u', 5 * DAY, [1], [0]), rec('u', 5 * DAY + 29 * MIN, [1], [0])];
    expect(Array.from(splitByUserTime(rs))).toEqual([TRAIN, TRAIN, VALID, TEST, TEST]);
    expect(Array.from(splitByUserTime(rs, { sessionGapMs: 5 * MIN, testSessions: 2, validSessions: 0 }))).toEqual([TRAIN, TRAIN, TRAIN, TEST, TEST]);
    expect(() => splitByUserTime(rs, { testSessions: -1 })).toThrow(/integers >= 0/);
  });
});

describe('SessionIndex / packed ranking batches', () => {
  const records: SessionRecord[] = [
    rec('a', 1000, [10, 11, 12], [0, 1, 1], { session: 1, query: { terms: [5] }, features: { f: [1, 2, 3], g: [0.5, 1, NaN as unknown as number, 2, 3, 4] as number[] } }),
    rec('b', 1500, [11], [1], { session: 2, query: null }),
    rec('a', 61000, [12, 13], [1, 0], { session: 1, query: { terms: [6, 7] }, features: { f: [4, 5], g: [1, 1, 1, 1] } }),
    rec('a', 3 * DAY, [10, 14], [0, 0], { session: 3, query: { text: 'unseen query' }, rel: [1, 0], features: { f: [6, 7], g: [2, 2, 2, 2] } }),
  ];
  test('histories hold strictly earlier events, oldest first, truncated to maxHistory', () => {
    const idx = new SessionIndex(records, { maxHistory: 2, termBuckets: 1000 });
    expect(idx.historyLength(0)).toBe(0);
    expect(idx.historyLength(2)).toBe(2); // the two clicks of record 0
    expect(idx.historyLength(3)).toBe(3);
    const b = idx.rankingBatch([0, 2, 3, 1]);
    expect(b.size).toBe(4);
    expect(Array.from(b.histOffsets)).toEqual([0, 0, 2, 4, 4]);
    const it = (id: number): number => idx.items.get(id);
    // record 2 sees items 11, 12 (record 0's clicks); record 3 sees the last two of 11, 12, 12
    expect(Array.from(b.histItems)).toEqual([it(11), it(12), it(12), it(12)]);
    expect(Array.from(b.histActions)).toEqual([1, 1, 1, 1]);
    const q5 = idx.queries.get(queryKey({ terms: [5] }));
    const q67 = idx.queries.get(queryKey({ terms: [6, 7] }));
    expect(Array.from(b.histQueries)).toEqual([q5, q5, q5, q67]);
    expect(Array.from(b.histTermOffsets)).toEqual([0, 1, 2, 3, 5]);
    expect(Array.from(b.histTerms)).toEqual([hashTerm(5, 1000), hashTerm(5, 1000), hashTerm(5, 1000), hashTerm(6, 1000), hashTerm(7, 1000)]);
    expect(Array.from(b.histDtBuckets.slice(0, 2))).toEqual([timeBucket(60000), timeBucket(60000)]);
    expect(Array.from(b.candOffsets)).toEqual([0, 3, 5, 7, 8]);
    expect(Array.from(b.candItems)).toEqual([it(10), it(11), it(12), it(12), it(13), it(10), it(14), it(11)]);
    expect(Array.from(b.candClicks)).toEqual([0, 1, 1, 1, 0, 0, 0, 1]);
    expect(Array.from(b.candPositions)).toEqual([1, 2, 3, 1, 2, 1, 2, 1]);
    expect(b.candRel).toBeNull(); // not every request has rel
    // Without a split every query is in the vocabulary; the query-less record gets 0.
    expect(Array.from(b.queryIds)).toEqual([q5, q67, idx.queries.get(queryKey({ text: 'unseen query' })), 0]);
    expect(b.queryIds[2]).toBe(3);
    expect(Array.from(b.queryTermOffsets)).toEqual([0, 1, 3, 5, 5]);
    expect(Array.from(b.queryTerms.slice(3))).toEqual([hashTerm('unseen', 1000), hashTerm('query', 1000)]);
    // Features: group g is 2 wide; the NaN marks candidate 2 missing; record 1 has no features.
    expect(Array.from(b.features.f)).toEqual([1, 2, 3, 4, 5, 6, 7, 0]);
    expect(Array.from(b.features.g)).toEqual([0.5, 1, 0, 2, 3, 4, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0]);
    expect(Array.from(b.featureMissing.g)).toEqual([0, 1, 0, 0, 0, 0, 0, 1]);
    expect(Array.from(b.featureMissing.f)).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    expect(() => idx.rankingBatch([9])).toThrow(/out of range/);
  });
  test('with a split, only training queries enter the query vocabulary', () => {
    const split = Uint8Array.from([TRAIN, TRAIN, VALID, TEST]);
    const idx = new SessionIndex(records, { split });
    expect(idx.queries.get(queryKey({ terms: [5] }))).toBe(1);
    expect(idx.queries.get(queryKey({ terms: [6, 7] }))).toBe(0);
    expect(() => new SessionIndex(records, { split: new Uint8Array(2) })).toThrow(/split has 2 codes for 4 records/);
  });
  test('sequence windows: next-event targets with the target query and impressed-unclicked negatives', () => {
    const idx = new SessionIndex(records, { maxHistory: 2, termBuckets: 1000 });
    const wins = idx.sequenceWindows();
    // user a has 3 events (11, 12 from record 0; 12 from record 2): window length 3 covers them
    expect(wins).toHaveLength(1);
    const b = idx.sequenceBatch(wins);
    const it = (id: number): number => idx.items.get(id);
    expect(Array.from(b.offsets)).toEqual([0, 3]);
    expect(Array.from(b.items)).toEqual([it(11), it(12), it(12)]);
    expect(Array.from(b.targetItems)).toEqual([it(12), it(12), 0]);
    const q67 = idx.queries.get(queryKey({ terms: [6, 7] }));
    expect(b.targetQueries[1]).toBe(q67);
    expect(Array.from(b.targetTermOffsets)).toEqual([0, 1, 3, 3]);
    // negatives of target events: record 0 -> [10]; record 2 -> [13]
    expect(Array.from(b.negOffsets)).toEqual([0, 1, 2, 2]);
    expect(Array.from(b.negItems)).toEqual([it(10), it(13)]);
    expect(Array.from(b.dtBuckets)).toEqual([0, 0, timeBucket(60000)]);
  });
  test('long timelines are cut into overlapping windows: every event after the first is a target once', () => {
    const ds = generateSessions({ ...GENERATOR_TINY, users: 10 });
    const idx = new SessionIndex(ds.records, { maxHistory: 5 });
    const wins = idx.sequenceWindows();
    const b = idx.sequenceBatch(wins);
    let targets = 0;
    for (let p = 0; p < b.targetItems.length; p++) if (b.targetItems[p] > 0) targets++;
    let events = 0;
    let users = 0;
    const perUser = new Map<number, number>();
    for (const w of wins) perUser.set(w.user, 0);
    users = perUser.size;
    idx.records.forEach((r) => r.clicks.forEach((c) => (events += c > 0 ? 1 : 0)));
    expect(targets).toBe(events - users);
    expect(wins.every((w) => w.events.length <= 6)).toBe(true);
  });
});

describe('deterministic batching', () => {
  test('seeded shuffles: same (seed, epoch) same order, another epoch differs, a permutation always', () => {
    const a = shuffledOrder(100, 5, 0);
    expect(Array.from(a)).toEqual(Array.from(shuffledOrder(100, 5, 0)));
    expect(Array.from(a)).not.toEqual(Array.from(shuffledOrder(100, 5, 1)));
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
  test('batchIndices sizes, dropLast and validation', () => {
    const xs = Array.from({ length: 10 }, (_, i) => i);
    expect([...batchIndices(xs, { batchSize: 4 })]).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect([...batchIndices(xs, { batchSize: 4, dropLast: true })].length).toBe(2);
    const shuffled = [...batchIndices(xs, { batchSize: 3, seed: 1 })].flat();
    expect(shuffled.sort((a, b) => a - b)).toEqual(xs);
    expect(() => [...batchIndices(xs, { batchSize: 0 })]).toThrow(/batchSize/);
  });
  test('rankingBatches over generated data cover every request once, identically per seed', () => {
    const ds = generateSessions({ ...GENERATOR_TINY, users: 10 });
    const idx = new SessionIndex(ds.records, { maxHistory: 50 });
    const all = ds.records.map((_, i) => i);
    const run = (): number[] => [...rankingBatches(idx, all, { batchSize: 32, seed: 9, epoch: 2 })].flatMap((b) => Array.from(b.records));
    const first = run();
    expect(first).toEqual(run());
    expect([...first].sort((a, b) => a - b)).toEqual(all);
    const b = idx.rankingBatch(all.slice(0, 16));
    expect(b.candRel).not.toBeNull();
    expect(Object.keys(b.features).sort()).toEqual(['context', 'item_stats', 'query_side', 'text_match', 'user_item']);
    expect(b.features.item_stats.length).toBe(2 * b.candItems.length);
  });
  test('packJagged and timeBucket', () => {
    const p = packJagged([[1, 2], [], [3]]);
    expect(Array.from(p.offsets)).toEqual([0, 2, 2, 3]);
    expect(Array.from(p.flat)).toEqual([1, 2, 3]);
    expect(timeBucket(0)).toBe(0);
    expect(timeBucket(1000)).toBe(1);
    expect(timeBucket(3000)).toBe(2);
    expect(timeBucket(-5)).toBe(0);
    expect(timeBucket(1e15)).toBe(31);
  });
});

describe('prepareData', () => {
  test('splits, indexes with the training query vocabulary, and lists each split', () => {
    const ds = generateSessions({ ...GENERATOR_TINY, users: 10 });
    const p = prepareData(ds.records, { index: { maxHistory: 20 } });
    expect(p.train.length + p.valid.length + p.test.length).toBe(ds.records.length);
    expect(new Set(p.test.map((i) => ds.records[i].user)).size).toBe(10); // every user has a test session
    // test queries unseen in training map to 0
    const b = p.index.rankingBatch(p.test);
    const unseen = p.test.filter((i) => !p.train.some((j) => queryKey(ds.records[j].query!) === queryKey(ds.records[i].query!)));
    expect(unseen.length).toBeGreaterThan(0);
    for (const i of unseen) expect(b.queryIds[p.test.indexOf(i)]).toBe(0);
    expect(p.index.maxHistory).toBe(20);
  });
});
