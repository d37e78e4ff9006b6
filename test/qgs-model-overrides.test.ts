// --set key=value model settings: parsing and its errors, `qgs train --set` reaching the saved model
// (HFG head shape in the checkpoint and the loaded module), checkpoints written before the HFG
// settings existed loading with the shape they were trained with, and `qgs study --set`.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseModelOverrides, collectSetting } from '../src/qgs/model-overrides';
import { DEFAULT_MODEL, type QgsConfig } from '../src/qgs/model';
import { prepareSynthetic, runVariant, VARIANTS } from '../src/qgs/experiment';
import { saveCheckpoint, loadCheckpoint } from '../src/qgs/checkpoint';
import { HFGAttention } from '../src/nn/hfg-attention';
import { runCli } from '../src/cli/main';
import { errorOf } from './helpers';

describe('parseModelOverrides', () => {
  test('typed values for numeric, integer and choice settings; nothing set is {}', () => {
    expect(parseModelOverrides(['hfgHeads=4', 'decayInit=0.99', ' dropout = 0 ', 'hfgPooling=mean', 'temperature=1e-1'])).toEqual({
      hfgHeads: 4,
      decayInit: 0.99,
      dropout: 0,
      hfgPooling: 'mean',
      temperature: 0.1,
    });
    expect(parseModelOverrides([])).toEqual({});
    expect(collectSetting('b=2', collectSetting('a=1'))).toEqual(['a=1', 'b=2']);
  });
  test('errors name the option, the setting, what it accepts and what was given', () => {
    expect(errorOf(() => parseModelOverrides(['hfgHeads']))).toMatch(/--set: expected key=value, got 'hfgHeads'/);
    expect(errorOf(() => parseModelOverrides(['=3']))).toMatch(/expected key=value, got '=3'/);
    expect(errorOf(() => parseModelOverrides(['hfgHead=4']))).toMatch(/unknown setting 'hfgHead'; expected one of dim, layers, .*hfgPooling/);
    expect(errorOf(() => parseModelOverrides(['seed=3']))).toMatch(/unknown setting 'seed' \(variant, encoder and head come from --model\(s\), seed from --seed/);
    expect(errorOf(() => parseModelOverrides(['encoder=quadratic']))).toMatch(/unknown setting 'encoder' \(/);
    expect(errorOf(() => parseModelOverrides(['hfgHeads=2.5']))).toMatch(/hfgHeads: expected an integer >= 1, got '2.5'/);
    expect(errorOf(() => parseModelOverrides(['dim=0']))).toMatch(/dim: expected an integer >= 1, got '0'/);
    expect(errorOf(() => parseModelOverrides(['decayInit=1']))).toMatch(/decayInit: expected a number > 0 and < 1, got '1'/);
    expect(errorOf(() => parseModelOverrides(['dropout=']))).toMatch(/dropout: expected a number >= 0 and < 1, got ''/);
    expect(errorOf(() => parseModelOverrides(['nceWeight=abc']))).toMatch(/nceWeight: expected a number >= 0, got 'abc'/);
    expect(errorOf(() => parseModelOverrides(['temperature=Infinity']))).toMatch(/temperature: expected a number > 0, got 'Infinity'/);
    expect(errorOf(() => parseModelOverrides(['hfgPooling=max']))).toMatch(/hfgPooling: expected one of context, mean, attention, got 'max'/);
    expect(errorOf(() => parseModelOverrides(['dk=32', 'dk=16']))).toMatch(/'dk' is set twice/);
    expect(errorOf(() => parseModelOverrides(['x=1'], '--tweak'))).toMatch(/^--tweak: /);
  });
  test('every settable key is a QgsConfig default (no setting the model would ignore)', () => {
    const err = errorOf(() => parseModelOverrides(['?=1']));
    const listed = err.replace(/.*expected one of /, '').split(', ');
    for (const k of listed) expect(Object.keys(DEFAULT_MODEL)).toContain(k);
  });
});

describe('--set reaches the model', () => {
  const tiny = { users: 40, items: 150 };
  let dir = '';
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qgs-set-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('qgs train --set: the checkpoint records the HFG shape and loads into that module', async () => {
    const out = path.join(dir, 'model');
    const rows: string[] = [];
    const args = ['train', '--seed', '3', '--users', '40', '--items', '150', '--epochs', '1', '--set', 'hfgHeads=4', '--set', 'hfgFfnMult=1', '--out', out, '--json'];
    expect(await runCli(args, { out: (t) => void rows.push(t), err: () => undefined })).toBe(0);
    const { model, config } = loadCheckpoint(out);
    try {
      expect(config.model).toMatchObject({ hfgHeads: 4, hfgFfnMult: 1, hfgLayers: 1, hfgPooling: 'context' });
      const fusion = model.head.fusion as HFGAttention;
      expect(fusion.heads).toBe(4);
      // FFN hidden width = hfgFfnMult · dim: the first FFN layer's weight is [dim, dim].
      const ffn1 = model.namedParameters().find(([n]) => n === 'head.fusion.layer0.ffn.fc0.weight');
      expect(ffn1).toBeDefined();
      expect(ffn1![1].shape).toEqual([model.cfg.dim, model.cfg.dim]);
      expect(JSON.parse(rows[0]).model).toBe('qgs');
    } finally {
      model.dispose();
    }
    const errs: string[] = [];
    expect(await runCli(['train', '--set', 'hfgHeads=0'], { out: () => undefined, err: (t) => void errs.push(t) })).not.toBe(0);
    expect(errs.join('')).toMatch(/--set: hfgHeads: expected an integer >= 1, got '0'/);
  });

  test('a checkpoint written before the HFG settings existed loads with the shape it was trained with', () => {
    const { data } = prepareSynthetic({ seed: 3, ...tiny });
    const { result } = runVariant(data, VARIANTS[0], { epochs: 1, seed: 3 });
    const cfg = result.model.cfg as Partial<QgsConfig>;
    for (const k of ['hfgHeads', 'hfgLayers', 'hfgPooling', 'hfgFfnMult'] as const) delete cfg[k];
    const old = path.join(dir, 'old');
    saveCheckpoint(old, result.model, result.scaler);
    const meta = fs.readFileSync(path.join(old, 'model.safetensors'));
    expect(meta.toString('utf8', 0, 4096)).not.toMatch(/hfgHeads/);
    const { model, config } = loadCheckpoint(old);
    try {
      expect(config.model).toMatchObject({ hfgHeads: 2, hfgLayers: 1, hfgPooling: 'context', hfgFfnMult: 2 });
      expect((model.head.fusion as HFGAttention).heads).toBe(2);
    } finally {
      model.dispose();
      result.model.dispose();
    }
  });

  test('qgs study --set applies to every model and is recorded in --out', async () => {
    const file = path.join(dir, 'study.json');
    const base = ['study', '--seeds', '3', '--model-seeds', '1', '--models', 'qgs', '--users', '40', '--items', '150', '--epochs', '1', '--json'];
    const a: string[] = [];
    const b: string[] = [];
    expect(await runCli(base, { out: (t) => void a.push(t), err: () => undefined })).toBe(0);
    expect(await runCli([...base, '--set', 'hfgPooling=mean', '--out', file], { out: (t) => void b.push(t), err: () => undefined })).toBe(0);
    const ga = JSON.parse(a[0]).gauc as number;
    const gb = JSON.parse(b[0]).gauc as number;
    expect(gb).not.toBe(ga); // a different head trained, not the default one again
    const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as { overrides: Record<string, unknown>; runs: { gauc: number }[] };
    expect(saved.overrides).toEqual({ hfgPooling: 'mean' });
    expect(saved.runs[0].gauc).toBe(gb);
  });
});
