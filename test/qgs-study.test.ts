// The quality study (qgs study): bar gaps from hand-made rows, runs over data × model seeds on tiny
// data, argument errors, and the CLI's JSON rows and atomic --out file.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { QUALITY_BARS, summarizeBars, runStudy, studentT975, type StudyRow } from '../src/qgs/study';
import { prepareSynthetic, runVariant, VARIANTS } from '../src/qgs/experiment';
import { runCli } from '../src/cli/main';
import { errorOf } from './helpers';

function row(model: string, gauc: number, dataSeed: number, modelSeed: number): StudyRow {
  return { model, gauc, auc: 0.5, ndcg10: 0.5, mrr: 0.5, valid_gauc: 0.5, epochs: 1, train_s: 1, data_seed: dataSeed, model_seed: modelSeed };
}

describe('summarizeBars', () => {
  test('one gap per run that has both models; mean, range and held count by hand', () => {
    const rows = [
      row('qgs', 0.76, 7, 1),
      row('qgs-quadratic', 0.763, 7, 1), // gap -0.003: within 0.005
      row('concat-mlp', 0.759, 7, 1), // +0.001: held
      row('qgs', 0.77, 1, 1),
      row('qgs-quadratic', 0.777, 1, 1), // -0.007: missed
      row('concat-mlp', 0.771, 1, 1), // -0.001: missed
      row('qgs', 0.75, 2, 1), // no baselines on this run
    ];
    const byName = new Map(summarizeBars(rows).map((b) => [b.bar.name, b]));
    const lin = byName.get('linear vs quadratic HSTU')!;
    expect(lin.gaps.map((g) => [g.dataSeed, g.modelSeed])).toEqual([[7, 1], [1, 1]]);
    expect(lin.gaps[0].gap).toBeCloseTo(-0.003, 12);
    expect(lin.gaps[1].gap).toBeCloseTo(-0.007, 12);
    expect(lin.mean).toBeCloseTo(-0.005, 12);
    expect(lin.min).toBeCloseTo(-0.007, 12);
    expect(lin.max).toBeCloseTo(-0.003, 12);
    expect(lin.held).toBe(1);
    const hfg = byName.get('HFG vs concat-MLP')!;
    expect(hfg.held).toBe(1);
    expect(hfg.mean).toBeCloseTo(0, 12);
    const flat = byName.get('QGS vs flattened')!;
    expect(flat.gaps).toEqual([]);
    expect(flat.mean).toBeNaN();
    expect(flat.held).toBe(0);
    expect(flat.perDataSeed).toEqual([]);
    // Two runs: sd = |g1 − g2| / √2 = 0.004/√2; the 95% interval is mean ± t(1) · sd / √2 = ± 12.706 · 0.002.
    expect(lin.sd).toBeCloseTo(0.004 / Math.SQRT2, 12);
    expect(lin.ci95[0]).toBeCloseTo(-0.005 - 12.706 * 0.002, 12);
    expect(lin.ci95[1]).toBeCloseTo(-0.005 + 12.706 * 0.002, 12);
    expect(lin.perDataSeed.map((d) => [d.dataSeed, d.runs, d.held])).toEqual([[7, 1, true], [1, 1, false]]);
  });
  test('per data seed: the mean over its model seeds decides; one run has no interval', () => {
    const rows = [
      row('qgs', 0.760, 7, 1), row('concat-mlp', 0.762, 7, 1), // -0.002
      row('qgs', 0.760, 7, 2), row('concat-mlp', 0.757, 7, 2), // +0.003 -> seed 7 mean +0.0005: held
      row('qgs', 0.770, 1, 1), row('concat-mlp', 0.771, 1, 1), // -0.001
      row('qgs', 0.770, 1, 2), row('concat-mlp', 0.770, 1, 2), //  0     -> seed 1 mean -0.0005: missed
    ];
    const hfg = summarizeBars(rows).find((b) => b.bar.name === 'HFG vs concat-MLP')!;
    expect(hfg.perDataSeed.map((d) => d.dataSeed)).toEqual([7, 1]);
    expect(hfg.perDataSeed[0].mean).toBeCloseTo(0.0005, 12);
    expect(hfg.perDataSeed.map((d) => [d.runs, d.held])).toEqual([[2, true], [2, false]]);
    expect(hfg.held).toBe(2); // +0.003 and 0
    // Sample sd of (-0.002, 0.003, -0.001, 0), by hand: mean 0; squares 4e-6 + 9e-6 + 1e-6 + 0 = 14e-6 over 3.
    expect(hfg.sd).toBeCloseTo(Math.sqrt(14e-6 / 3), 12);
    expect(hfg.ci95[1] - hfg.ci95[0]).toBeCloseTo((2 * 3.182 * Math.sqrt(14e-6 / 3)) / 2, 12);
    const one = summarizeBars([row('qgs', 0.7, 7, 1), row('concat-mlp', 0.69, 7, 1)]).find((b) => b.bar.name === 'HFG vs concat-MLP')!;
    expect(one.sd).toBeNaN();
    expect(one.ci95[0]).toBeNaN();
  });
  test('studentT975: table values, the large-df approximation near the normal quantile, bad df', () => {
    expect(studentT975(1)).toBe(12.706);
    expect(studentT975(8)).toBe(2.306);
    expect(studentT975(30)).toBe(2.042);
    // Published values: t(40) = 2.021, t(60) = 2.000, t(120) = 1.980; large df → 1.960.
    expect(studentT975(40)).toBeCloseTo(2.021, 3);
    expect(studentT975(60)).toBeCloseTo(2.0, 3);
    expect(studentT975(120)).toBeCloseTo(1.98, 3);
    expect(studentT975(1e6)).toBeCloseTo(1.96, 3);
    expect(studentT975(31)).toBeLessThan(studentT975(30));
    expect(errorOf(() => studentT975(0))).toMatch(/studentT975: df: expected an integer >= 1, got 0/);
    expect(errorOf(() => studentT975(2.5))).toMatch(/got 2.5/);
  });
  test('the bars are the issue\'s thresholds; a model twice in one run is an error', () => {
    expect(QUALITY_BARS.map((b) => [b.baseline, b.minGap])).toEqual([
      ['flattened', 0.02],
      ['item-only', 0.04],
      ['qgs-quadratic', -0.005],
      ['concat-mlp', 0],
    ]);
    expect(errorOf(() => summarizeBars([row('qgs', 0.7, 7, 1), row('qgs', 0.71, 7, 1)]))).toMatch(/model 'qgs' appears twice for data seed 7, model seed 1/);
  });
});

describe('runStudy', () => {
  const tiny = { users: 40, items: 150, epochs: 1 };
  test('every model on every (data seed, model seed); model seed 1 is the demo run; other seeds differ', () => {
    const seen: StudyRow[] = [];
    const rows = runStudy({ ...tiny, seeds: [3], modelSeeds: [1, 2], models: ['qgs', 'flattened'] }, (r) => seen.push(r));
    expect(rows.map((r) => [r.data_seed, r.model_seed, r.model])).toEqual([
      [3, 1, 'qgs'],
      [3, 1, 'flattened'],
      [3, 2, 'qgs'],
      [3, 2, 'flattened'],
    ]);
    expect(seen).toEqual(rows);
    for (const r of rows) expect(r.gauc).toBeGreaterThan(0);
    // Model seed 1 reproduces what the demo trains (no overrides); seed 2 initialises differently.
    const { data } = prepareSynthetic({ seed: 3, users: tiny.users, items: tiny.items });
    const demo = runVariant(data, VARIANTS[0], { epochs: 1, seed: 3 });
    demo.result.model.dispose();
    expect(rows[0].gauc).toBe(demo.row.gauc);
    expect(rows[2].gauc).not.toBe(rows[0].gauc);
    const bars = summarizeBars(rows);
    expect(bars[0].gaps.map((g) => g.gap)).toEqual([rows[0].gauc - rows[1].gauc, rows[2].gauc - rows[3].gauc]);
  });
  test('bad arguments name the argument', () => {
    expect(errorOf(() => runStudy({ ...tiny, seeds: [3], modelSeeds: [1], models: ['qgs', 'nope'] }))).toMatch(/runStudy: models: expected one of qgs, .*got 'nope'/);
    expect(errorOf(() => runStudy({ ...tiny, seeds: [], modelSeeds: [1] }))).toMatch(/seeds: expected at least one seed, got none/);
    expect(errorOf(() => runStudy({ ...tiny, seeds: [3], modelSeeds: [2, 2] }))).toMatch(/modelSeeds: expected distinct seeds, got 2, 2/);
  });
});

describe('qgs study (CLI)', () => {
  test('--json prints each run, then one row per bar with runs; --out holds the same numbers', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qgs-study-'));
    try {
      const out: string[] = [];
      const file = path.join(dir, 'study.json');
      const args = ['study', '--seeds', '3', '--model-seeds', '1', '--models', 'qgs,qgs-quadratic', '--users', '40', '--items', '150', '--epochs', '1', '--json', '--out', file];
      expect(await runCli(args, { out: (t) => void out.push(t), err: () => undefined })).toBe(0);
      const lines = out.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.slice(0, 2).map((l) => l.model)).toEqual(['qgs', 'qgs-quadratic']);
      expect(lines.slice(2).map((l) => l.bar)).toEqual(['linear vs quadratic HSTU']);
      const gap = (lines[0].gauc as number) - (lines[1].gauc as number);
      expect(lines[2]).toMatchObject({ required: '>= -0.005', held: `${gap >= -0.005 ? 1 : 0}/1` });
      expect(lines[2].mean_gap).toBeCloseTo(gap, 12);
      expect(lines[2].data_seeds_held).toBe(`${gap >= -0.005 ? 1 : 0}/1`);
      expect(lines[2].ci95_low).toBeNull(); // one run: no interval (NaN prints as null in JSON)
      const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as { runs: StudyRow[]; bars: { name: string; gaps: { gap: number }[] }[] };
      expect(saved.runs.map((r) => r.gauc)).toEqual([lines[0].gauc, lines[1].gauc]);
      expect(saved.bars.map((b) => b.name)).toEqual(['linear vs quadratic HSTU']);
      expect(saved.bars[0].gaps[0].gap).toBeCloseTo(gap, 12);
      expect(fs.readdirSync(dir)).toEqual(['study.json']); // no temporary left behind
      const errs: string[] = [];
      expect(await runCli(['study', '--seeds', '7,x'], { out: () => undefined, err: (t) => void errs.push(t) })).not.toBe(0);
      expect(errs.join('')).toMatch(/--seeds must be an integer, got "x"/);
      const errs2: string[] = [];
      expect(await runCli(['study', '--models', 'qgs,bogus'], { out: () => undefined, err: (t) => void errs2.push(t) })).not.toBe(0);
      expect(errs2.join('')).toMatch(/--models: expected one of .*got 'bogus'/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
