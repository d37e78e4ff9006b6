import { createHash } from 'crypto';
import { generateSessions, GENERATOR_DEFAULTS, GENERATOR_TINY, SYNTHETIC_FEATURE_SPEC, type SyntheticDataset } from '../src/data/synthetic';
import { referenceTable, referenceScores, evaluateOnRel } from '../src/data/reference';
import { splitByUserTime, TEST, splitIndices } from '../src/data/split';
import { validateRecord } from '../src/data/schema';

function digest(ds: SyntheticDataset, n: number): string {
  return createHash('sha256').update(JSON.stringify(ds.records.slice(0, n))).digest('hex').slice(0, 16);
}

describe('synthetic generator: determinism, schema, speed', () => {
  let tiny: SyntheticDataset;
  beforeAll(() => {
    tiny = generateSessions(GENERATOR_TINY);
  });
  test('the unit-test size generates in well under a second (data.md §4.9)', () => {
    // Wall time on a loaded 2-core machine: measured ~0.4 s unloaded; the bound only catches blow-ups.
    expect(tiny.stats.generationMs).toBeLessThan(5000);
    expect(tiny.stats.requests).toBeGreaterThan(800);
    expect(tiny.stats.requests).toBeLessThan(1600);
  });
  test('same seed gives identical data; another seed differs', () => {
    const again = generateSessions(GENERATOR_TINY);
    expect(digest(again, again.records.length)).toBe(digest(tiny, tiny.records.length));
    const other = generateSessions({ ...GENERATOR_TINY, seed: 8 });
    expect(digest(other, 50)).not.toBe(digest(tiny, 50));
  });
  test('golden hash of the first 50 records pins the generator (update deliberately on intended changes)', () => {
    expect(digest(tiny, 50)).toMatchInlineSnapshot(`"a77e9a41ab3498cf"`);
  });
  test('every record validates against the feature spec; records are in time order', () => {
    for (const r of tiny.records) validateRecord(r, SYNTHETIC_FEATURE_SPEC);
    for (let i = 1; i < tiny.records.length; i++) expect(tiny.records[i].ts).toBeGreaterThanOrEqual(tiny.records[i - 1].ts);
    expect(tiny.records.every((r) => r.shown.length >= 1 && r.shown.length <= 20 && new Set(r.shown).size === r.shown.length)).toBe(true);
  });
  test('hidden truth is not in the records', () => {
    const text = JSON.stringify(tiny.records[0]);
    for (const k of ['topic', 'facet', 'quality', 'pAttr', 'p_attr']) expect(text).not.toContain(`"${k}"`);
  });
  test('bad options are rejected with the option name', () => {
    expect(() => generateSessions({ users: 0 })).toThrow(/users must be an integer >= 1/);
    expect(() => generateSessions({ pStay: 2 })).toThrow(/pStay must be in \[0, 1\]/);
    expect(() => generateSessions({ meanSessions: 1 })).toThrow(/meanSessions/);
  });
});

describe('features are causal (only earlier sessions)', () => {
  test('recomputing item and user-item statistics naively from earlier sessions matches', () => {
    const ds = generateSessions({ ...GENERATOR_TINY, users: 25 });
    const T = ds.options.topics;
    const cat = ds.catalogue.category;
    // Session spans.
    const span = new Map<number, { start: number; end: number }>();
    for (const r of ds.records) {
      const s = span.get(r.session as number) ?? { start: Infinity, end: -Infinity };
      s.start = Math.min(s.start, r.ts);
      s.end = Math.max(s.end, r.ts);
      span.set(r.session as number, s);
    }
    for (let k = 0; k < ds.records.length; k += 7) {
      const r = ds.records[k];
      const start = span.get(r.session as number)!.start;
      const imp = new Map<number, number>();
      const clk = new Map<number, number>();
      let ti = 0;
      let tc = 0;
      const uic = new Map<number, number>();
      const ucat = new Float64Array(T);
      for (const p of ds.records) {
        if (!(span.get(p.session as number)!.end < start)) continue;
        p.shown.forEach((it, j) => {
          const i = it as number;
          imp.set(i, (imp.get(i) ?? 0) + 1);
          ti++;
          if (p.clicks[j]) {
            clk.set(i, (clk.get(i) ?? 0) + 1);
            tc++;
            if (p.user === r.user) {
              uic.set(i, (uic.get(i) ?? 0) + 1);
              ucat[cat[i]]++;
            }
          }
        });
      }
      const g = (tc + 5) / (ti + 100);
      const utot = ucat.reduce((a, b) => a + b, 0);
      r.shown.forEach((it, j) => {
        const i = it as number;
        const f = r.features!;
        expect(f.item_stats[2 * j]).toBeCloseTo(Math.log(((clk.get(i) ?? 0) + 20 * g) / ((imp.get(i) ?? 0) + 20)), 5);
        expect(f.item_stats[2 * j + 1]).toBeCloseTo(Math.log1p(imp.get(i) ?? 0), 5);
        expect(f.user_item[2 * j]).toBe(uic.get(i) ?? 0);
        expect(f.user_item[2 * j + 1]).toBeCloseTo((ucat[cat[i]] + 1) / (utot + T), 5);
        expect(f.context[j]).toBeCloseTo(Math.log(j + 1), 5);
      });
    }
  });
});

describe('behaviour looks like a search log (data.md §4.1 d)', () => {
  let ds: SyntheticDataset;
  beforeAll(() => {
    ds = generateSessions({ users: 300 });
  });
  test('position-based clicks: click rate ≈ r^-eta × attractiveness; relevance labels are position-free', () => {
    const eta = ds.options.eta;
    for (const r of [1, 5, 15]) {
      let clicks = 0;
      let rel = 0;
      let p = 0;
      let n = 0;
      ds.records.forEach((rec, i) => {
        if (rec.shown.length < r) return;
        clicks += rec.clicks[r - 1];
        rel += rec.rel![r - 1];
        p += ds.truth.requests[i].pAttr[r - 1];
        n++;
      });
      expect(Math.abs(rel / n - p / n)).toBeLessThan(0.02); // rel ~ Bernoulli(pAttr), no position factor
      expect(clicks / (p * Math.pow(r, -eta))).toBeGreaterThan(0.85);
      expect(clicks / (p * Math.pow(r, -eta))).toBeLessThan(1.15);
    }
  });
  test('zero-click queries, topic switches in sessions, popularity skew, user long tail, repeats', () => {
    const s = ds.stats;
    expect(s.zeroClickRate).toBeGreaterThan(0.1);
    expect(s.zeroClickRate).toBeLessThan(0.4);
    expect(s.topicSwitchRate).toBeGreaterThan(0.2);
    expect(s.topicSwitchRate).toBeLessThan(0.4);
    expect(s.clicksPerUserP90).toBeGreaterThan(2 * s.clicksPerUserMedian);
    const itemClicks = new Float64Array(ds.options.items);
    let repeats = 0;
    ds.records.forEach((r, i) => {
      r.shown.forEach((it, j) => {
        itemClicks[it as number] += r.clicks[j];
        if (r.clicks[j] && ds.truth.requests[i].repeat[j]) repeats++;
      });
    });
    const sorted = Array.from(itemClicks).sort((a, b) => b - a);
    const total = sorted.reduce((a, b) => a + b, 0);
    const top10 = sorted.slice(0, Math.floor(sorted.length / 10)).reduce((a, b) => a + b, 0);
    expect(top10 / total).toBeGreaterThan(0.3); // top 10% of items take > 30% of clicks
    expect(repeats).toBeGreaterThan(0);
  });
});

describe('signal properties on the default seeded data (data.md §4.7 CI assertions)', () => {
  test('default size and the four GAUC assertions for seed 7', () => {
    const ds = generateSessions();
    expect(ds.options).toEqual(GENERATOR_DEFAULTS);
    // data.md §4.9 sizing: ~18k queries, ~27k clicks, ~370k impressions for 1,000 users.
    expect(ds.stats.requests).toBeGreaterThan(16000);
    expect(ds.stats.requests).toBeLessThan(22000);
    expect(ds.stats.impressions).toBeGreaterThan(320000);
    expect(ds.stats.impressions).toBeLessThan(440000);
    const rows = Object.fromEntries(referenceTable(ds, ['lr_features', 'lr_pooled', 'lr_query_conditioned', 'oracle_no_history', 'oracle_no_query', 'oracle_full']).map((r) => [r.scorer, r.gauc]));
    expect(rows.oracle_full - rows.oracle_no_query).toBeGreaterThanOrEqual(0.03);
    expect(rows.oracle_full - rows.oracle_no_history).toBeGreaterThanOrEqual(0.05);
    expect(rows.lr_features).toBeGreaterThanOrEqual(0.6);
    expect(rows.lr_features).toBeLessThanOrEqual(0.75);
    expect(rows.lr_query_conditioned - rows.lr_pooled).toBeGreaterThanOrEqual(0.01);
    // And close to the measured reference (data.md: 0.88 / 0.84 / 0.77 at seed 7, b = -4.6).
    expect(Math.abs(rows.oracle_full - 0.879)).toBeLessThan(0.02);
    expect(Math.abs(rows.oracle_no_query - 0.837)).toBeLessThan(0.02);
    expect(Math.abs(rows.oracle_no_history - 0.768)).toBeLessThan(0.02);
  });
  test('oracle gaps hold for other seeds too', () => {
    for (const seed of [11, 12]) {
      const ds = generateSessions({ seed, users: 300 });
      const test = splitIndices(splitByUserTime(ds.records), TEST);
      const g = (s: 'oracle_full' | 'oracle_no_query' | 'oracle_no_history'): number => evaluateOnRel(ds, test, referenceScores(ds, test, s)).gauc;
      expect(g('oracle_full') - g('oracle_no_query')).toBeGreaterThanOrEqual(0.03);
      expect(g('oracle_full') - g('oracle_no_history')).toBeGreaterThanOrEqual(0.05);
    }
  });
});
