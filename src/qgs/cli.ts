// `qgs train`, `qgs eval`, `qgs rank`, `qgs demo` and `qgs study` (issue 6). Every command that prints results
// takes --json (one JSON object per line).
import * as fs from 'fs';
import * as path from 'path';
import { GENERATOR_DEFAULTS } from '../data/synthetic';
import { type CliIO, type Row, printRows } from '../cli/io';
import { intOption, numberOption, registerCommand } from '../cli/registry';
import { VARIANTS, prepareSynthetic, runVariant, variantByName, type ComparisonRow } from './experiment';
import { saveCheckpoint, loadCheckpoint } from './checkpoint';
import { evaluate } from './train';
import { scoreRequest, type RankRequest } from './scoring';
import { prepareTimelines, type FeatureLayout, type PreparedData } from './dataset';
import { LOG_FORMATS, prepareLogData, readLogRecords, type LogCatalogue, type LogData, type LogFormat, type LogVocab } from './log-data';
import { splitByUserTime } from '../data/split';
import { parseFeatureSpec, type FeatureSpec } from '../data/schema';
import { defaultMetaPath } from '../cli/generate';
import { generateSessions } from '../data/synthetic';
import { writeFileAtomicSync } from '../io/atomic';
import { runStudy, summarizeBars, type StudyRow } from './study';
import { SETTABLE_KEYS, collectSetting, parseModelOverrides } from './model-overrides';

const SET_HELP = `model setting key=value, repeatable (e.g. hfgHeads=4, decayInit=0.99, dk=32); keys: ${SETTABLE_KEYS.join(', ')}`;

function metricsRow(r: ComparisonRow): Row {
  return { model: r.model, gauc: r.gauc, auc: r.auc, ndcg10: r.ndcg10, mrr: r.mrr, valid_gauc: r.valid_gauc, epochs: r.epochs, train_s: Math.round(r.train_s * 10) / 10 };
}

export interface DemoOptions {
  seed: number;
  users?: number;
  items?: number;
  epochs: number;
  out: string;
  json: boolean;
  models: string[];
}

/** The README's main job: data → QGS + baselines → comparison table → saved model → one request. */
export function runDemo(o: DemoOptions, io: CliIO): ComparisonRow[] {
  const t0 = Date.now();
  const { dataset, data } = prepareSynthetic({ seed: o.seed, users: o.users, items: o.items });
  if (!o.json) {
    const s = dataset.stats;
    io.out(`data: seed ${o.seed}, ${s.users} users, ${s.items} items, ${s.requests} requests, ${s.impressions} impressions, ${s.clicks} clicks (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  const rows: ComparisonRow[] = [];
  let saved = '';
  for (const name of o.models) {
    const v = variantByName(name, '--models');
    const { row, result } = runVariant(data, v, { epochs: o.epochs, seed: o.seed });
    rows.push(row);
    if (!o.json) io.out(`trained ${name}: test GAUC ${row.gauc.toFixed(4)} (${row.epochs} epochs, ${row.train_s.toFixed(1)} s)`);
    if (name === 'qgs') saved = saveCheckpoint(o.out, result.model, result.scaler, { seed: o.seed, test: metricsRow(row) });
    result.model.dispose();
  }
  if (!o.json) io.out('\ntest split (last session per user), position-free relevance labels:');
  printRows(io, rows.map(metricsRow), o.json);
  if (saved) {
    const { model, scaler } = loadCheckpoint(o.out);
    const example = exampleRequest(dataset.records, data.layout);
    const scores = scoreRequest(model, scaler, example);
    const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]);
    const top = order.slice(0, 5).map((i) => ({ item: example.candidates[i].item, score: Math.round(scores[i] * 1000) / 1000 }));
    if (o.json) io.out(JSON.stringify({ example: 'rank', model: saved, top }));
    else io.out(`\nsaved ${saved}\nexample request (${example.history?.length ?? 0} history events, ${example.candidates.length} candidates) top 5: ${JSON.stringify(top)}`);
    model.dispose();
  }
  if (!o.json) io.out(`\ntotal ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return rows;
}

/** A realistic request from the generated log: the last request of the log, with its user's clicks before it as history. */
function exampleRequest(records: ReturnType<typeof generateSessions>['records'], layout: FeatureLayout): RankRequest {
  const last = records[records.length - 1];
  const mine = records.filter((r) => r.user === last.user && r !== last);
  const history = mine.flatMap((r) => r.shown.filter((_, i) => r.clicks[i] > 0).map((item) => ({ query: { terms: [...(r.query?.terms ?? [])] }, item: Number(item) })));
  const candidates = last.shown.map((item, i) => {
    const features: Record<string, Record<string, number | null>> = {};
    for (const g of layout.groups) {
      const col = last.features?.[g.name] as readonly (number | null)[] | undefined;
      if (col === undefined) continue;
      features[g.name] = {};
      g.features.forEach((f, j) => {
        features[g.name][f] = col[i * g.width + j];
      });
    }
    return { item: Number(item), features };
  });
  return { history, query: { terms: [...(last.query?.terms ?? [])] }, candidates };
}

registerCommand('demo', (program, io) => {
  program
    .command('demo')
    .description('generate the default data, train QGS and its baselines, print the comparison, save the model and score one request')
    .option('--seed <n>', 'data and model seed', intOption('--seed'), GENERATOR_DEFAULTS.seed)
    .option('--users <n>', 'users to generate', intOption('--users', 1))
    .option('--items <n>', 'items to generate', intOption('--items', 1))
    .option('--epochs <n>', 'epochs per model (early stopping may end sooner)', intOption('--epochs', 1), 10)
    .option('--models <list>', `comma-separated subset of ${VARIANTS.map((v) => v.name).join(',')}`, VARIANTS.map((v) => v.name).join(','))
    .option('--out <dir>', 'where the QGS model is saved', 'qgs-model')
    .option('--json', 'machine-readable rows')
    .action((opts: { seed: number; users?: number; items?: number; epochs: number; models: string; out: string; json?: boolean }) => {
      runDemo({ ...opts, json: opts.json === true, models: opts.models.split(',').map((s) => s.trim()).filter(Boolean) }, io);
    });
});

registerCommand('train', (program, io) => {
  program
    .command('train')
    .description('train one model on a search-log file (--data) or on the seeded synthetic data, and save it')
    .option('--data <file>', `search-log file to train on (formats: ${LOG_FORMATS.join(', ')}); default: the seeded synthetic data`)
    .option('--format <name>', `format of --data (default: from its extension): ${LOG_FORMATS.join(', ')}`)
    .option('--strict', 'with --data: fail on the first bad record instead of skipping it')
    .option('--spec <file>', "with --data: feature spec JSON ({groups: [...]}, or a 'qgs generate' metadata file); default: <data>.meta.json when it exists, else inferred from the records")
    .option('--position-feature <name>', 'with --data: the feature holding the logged position, pinned to rank 1 at evaluation and serving', 'log_rank')
    .option('--seed <n>', 'data and model seed (with --data: the model seed)', intOption('--seed'), GENERATOR_DEFAULTS.seed)
    .option('--users <n>', 'users to generate', intOption('--users', 1))
    .option('--items <n>', 'items to generate', intOption('--items', 1))
    .option('--model <name>', `one of ${VARIANTS.map((v) => v.name).join(', ')}`, 'qgs')
    .option('--epochs <n>', 'epochs', intOption('--epochs', 1), 6)
    .option('--lr <x>', 'peak learning rate', numberOption('--lr'))
    .option('--set <key=value>', SET_HELP, collectSetting)
    .option('--out <dir>', 'checkpoint directory', 'qgs-model')
    .option('--json', 'machine-readable rows')
    .action(async (o: { data?: string; format?: string; strict?: boolean; spec?: string; positionFeature: string; seed: number; users?: number; items?: number; model: string; epochs: number; lr?: number; set?: string[]; out: string; json?: boolean }) => {
      const v = variantByName(o.model, '--model');
      const overrides = parseModelOverrides(o.set ?? []);
      let data: PreparedData;
      let vocab: LogVocab | undefined;
      const info: Record<string, unknown> = { seed: o.seed };
      if (o.data !== undefined) {
        refuseSyntheticSizes(o);
        const log = await loadLogFile(o.data, o.format, o.strict === true, io, o.json === true, { spec: o.spec, positionFeature: o.positionFeature });
        data = log.data;
        vocab = log.vocab;
        info.data = path.resolve(o.data);
        info.stats = log.stats;
      } else {
        if (o.format !== undefined || o.strict !== undefined || o.spec !== undefined) throw new Error('--format, --strict and --spec apply to --data only');
        data = prepareSynthetic({ seed: o.seed, users: o.users, items: o.items }).data;
      }
      const { row, result } = runVariant(data, v, {
        epochs: o.epochs,
        seed: o.seed,
        lr: o.lr,
        onProgress: o.json ? undefined : (p) => {
          if (p.batch === p.batches) io.err(`epoch ${p.epoch + 1}: loss ${p.loss.toFixed(4)}, ${Math.round(p.eventsPerSec)} events/s`);
        },
      }, overrides);
      const file = saveCheckpoint(o.out, result.model, result.scaler, { ...info, test: metricsRow(row) }, vocab);
      printRows(io, [{ ...metricsRow(row), saved: file }], o.json === true);
      result.model.dispose();
    });
});

registerCommand('eval', (program, io) => {
  program
    .command('eval')
    .description('evaluate a saved model on a search-log file (--data, mapped with the checkpoint\'s vocabulary) or on the seeded synthetic data')
    .requiredOption('--model <dir>', 'checkpoint directory')
    .option('--data <file>', `search-log file (formats: ${LOG_FORMATS.join(', ')}); default: the seeded synthetic data`)
    .option('--format <name>', `format of --data (default: from its extension): ${LOG_FORMATS.join(', ')}`)
    .option('--strict', 'with --data: fail on the first bad record instead of skipping it')
    .option('--seed <n>', 'data seed', intOption('--seed'), GENERATOR_DEFAULTS.seed)
    .option('--users <n>', 'users to generate', intOption('--users', 1))
    .option('--items <n>', 'items to generate', intOption('--items', 1))
    .option('--split <name>', 'train | valid | test', 'test')
    .option('--json', 'machine-readable rows')
    .action(async (o: { model: string; data?: string; format?: string; strict?: boolean; seed: number; users?: number; items?: number; split: string; json?: boolean }) => {
      const code = { train: 0, valid: 1, test: 2 }[o.split];
      if (code === undefined) throw new Error(`--split: expected train, valid or test, got '${o.split}'`);
      const { model, scaler, config } = loadCheckpoint(o.model);
      try {
        let data: PreparedData;
        if (o.data !== undefined) {
          refuseSyntheticSizes(o);
          if (config.vocab === undefined) throw new Error(`--data: ${o.model} was trained on the synthetic data (no log vocabulary in the checkpoint); evaluate it without --data`);
          data = (await loadLogFile(o.data, o.format, o.strict === true, io, o.json === true, { vocab: config.vocab, maxTerms: model.cfg.maxTerms })).data;
        } else {
          if (config.vocab !== undefined) throw new Error(`${o.model} was trained on a log file; pass --data with a file of that log`);
          const ds = generateSessions({ seed: o.seed, users: o.users, items: o.items });
          data = prepareTimelines(ds.records, ds.spec, { split: splitByUserTime(ds.records), catalogue: ds.catalogue });
        }
        const m = evaluate(model, data, scaler, code);
        printRows(io, [{ model: o.model, split: o.split, gauc: m.gauc, auc: m.auc, ndcg10: m.ndcg, mrr: m.mrr, lists: m.lists }], o.json === true);
      } finally {
        model.dispose();
      }
    });
});

/** --users / --items size the synthetic data: with --data (train, eval) they are an error, not ignored. */
function refuseSyntheticSizes(o: { users?: number; items?: number }): void {
  if (o.users !== undefined || o.items !== undefined) throw new Error('--users and --items size the synthetic data; they do not apply with --data');
}

/**
 * Reads a log file and prepares it: with `vocab` (a checkpoint's mapping), else building one with the
 * spec from `spec` (a file), the data's metadata sidecar, the format's own spec or the records. The
 * read report goes to stderr.
 */
async function loadLogFile(
  file: string,
  format: string | undefined,
  strict: boolean,
  io: CliIO,
  json: boolean,
  opts: { vocab?: LogVocab; maxTerms?: number; spec?: string; positionFeature?: string },
): Promise<LogData> {
  if (format !== undefined && !(LOG_FORMATS as readonly string[]).includes(format)) throw new Error(`--format: expected one of ${LOG_FORMATS.join(', ')}, got '${format}'`);
  if (!fs.existsSync(file)) throw new Error(`--data: ${file} does not exist`);
  const read = readLogRecords(file, format as LogFormat | undefined, { strict });
  const sidecar = defaultMetaPath(file);
  const specFile = opts.spec ?? (opts.vocab === undefined && read.spec === undefined && fs.existsSync(sidecar) ? sidecar : undefined);
  const meta: { spec?: FeatureSpec; catalogue?: LogCatalogue } = specFile === undefined ? { spec: read.spec } : readSpecFile(specFile, opts.spec !== undefined ? '--spec' : 'metadata file');
  const records = await read.stream.toArray();
  const log = prepareLogData(records, { vocab: opts.vocab, maxTerms: opts.maxTerms, spec: meta.spec, catalogue: meta.catalogue, positionFeature: opts.positionFeature });
  if (!json) {
    const s = log.stats;
    const from =
      opts.vocab !== undefined
        ? "the checkpoint's vocabulary"
        : specFile !== undefined
          ? `spec${meta.catalogue ? ' and item catalogue' : ''} from ${specFile}`
          : read.spec !== undefined
            ? `the ${format} spec`
            : 'spec inferred from the records';
    io.err(`data: ${file}: ${read.stream.report.summary()}; ${s.users} users, ${s.items} items in the vocabulary (${from}), requests train/valid/test ${s.train}/${s.valid}/${s.test}, ${s.unseenItems} shown items unseen in training`);
  }
  return log;
}

/**
 * A feature spec file: {groups: [...]}, or a metadata file holding one under `spec` and optionally the
 * item catalogue under `catalogue` ({category?, style?, titles?, ids?}: what 'qgs generate' writes).
 */
function readSpecFile(file: string, where: string): { spec: FeatureSpec; catalogue?: LogCatalogue } {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${where}: cannot read ${file} as JSON: ${(e as Error).message}`);
  }
  const o = v as { groups?: unknown; spec?: unknown; catalogue?: unknown } | null;
  const wrapped = o !== null && typeof o === 'object' && o.groups === undefined && o.spec !== undefined;
  const spec = parseFeatureSpec(wrapped ? o.spec : v, `${where} (${file})`);
  if (!wrapped || o.catalogue === undefined) return { spec };
  const c = o.catalogue as Record<string, unknown> | null;
  const at = `${where} (${file}): catalogue`;
  if (typeof c !== 'object' || c === null) throw new Error(`${at}: expected an object`);
  for (const k of ['category', 'style', 'titles', 'ids']) if (c[k] !== undefined && !Array.isArray(c[k])) throw new Error(`${at}.${k}: expected an array`);
  if (Array.isArray(c.titles) && !c.titles.every((t) => Array.isArray(t))) throw new Error(`${at}.titles: expected an array of term lists`);
  return { spec, catalogue: c as LogCatalogue };
}

registerCommand('rank', (program, io) => {
  program
    .command('rank')
    .description('score candidates for one request: JSON in (file or stdin), JSON out')
    .requiredOption('--model <dir>', 'checkpoint directory')
    .option('--input <file>', 'request JSON file (default: stdin)')
    .action((o: { model: string; input?: string }) => {
      const text = fs.readFileSync(o.input ?? 0, 'utf8');
      let req: RankRequest;
      try {
        req = JSON.parse(text) as RankRequest;
      } catch (e) {
        throw new Error(`rank: input is not valid JSON: ${(e as Error).message}`);
      }
      const { model, scaler, config } = loadCheckpoint(o.model);
      const scores = scoreRequest(model, scaler, req, config.vocab);
      io.out(JSON.stringify({ model: path.resolve(o.model), scores: Array.from(scores) }));
      model.dispose();
    });
});

/** "7,1,2" → [7, 1, 2] (integers; the option name in errors). */
function seedList(name: string): (v: string) => number[] {
  const one = intOption(name);
  return (v) => v.split(',').map((x) => one(x.trim()));
}

registerCommand('study', (program, io) => {
  program
    .command('study')
    .description("issue 6's quality bars over several data seeds and model seeds: every model trained on every pair, then each bar's gap per run, mean, range and how often it held")
    .option('--seeds <list>', 'comma-separated data seeds', seedList('--seeds'), [7, 1, 2])
    .option('--model-seeds <list>', 'comma-separated model (initialisation) seeds; the demo uses 1', seedList('--model-seeds'), [1])
    .option('--models <list>', `comma-separated subset of ${VARIANTS.map((v) => v.name).join(',')}`, VARIANTS.map((v) => v.name).join(','))
    .option('--users <n>', 'users to generate', intOption('--users', 1))
    .option('--items <n>', 'items to generate', intOption('--items', 1))
    .option('--epochs <n>', 'epochs per model (early stopping may end sooner)', intOption('--epochs', 1), 10)
    .option('--set <key=value>', `${SET_HELP}; applied to every model`, collectSetting)
    .option('--out <file>', 'also write every run and the bar summary as JSON (atomically)')
    .option('--json', 'machine-readable rows')
    .action((o: { seeds: number[]; modelSeeds: number[]; models: string; users?: number; items?: number; epochs: number; set?: string[]; out?: string; json?: boolean }) => {
      const json = o.json === true;
      const overrides = parseModelOverrides(o.set ?? []);
      const models = o.models.split(',').map((s) => s.trim()).filter(Boolean);
      models.forEach((m) => variantByName(m, '--models'));
      const runRow = (r: StudyRow): Row => ({ data_seed: r.data_seed, model_seed: r.model_seed, ...metricsRow(r) });
      const rows = runStudy({ seeds: o.seeds, modelSeeds: o.modelSeeds, models, epochs: o.epochs, users: o.users, items: o.items, overrides }, (r) => {
        if (json) printRows(io, [runRow(r)], true);
        else io.out(`data seed ${r.data_seed}, model seed ${r.model_seed}: ${r.model} test GAUC ${r.gauc.toFixed(4)} (${r.epochs} epochs, ${r.train_s.toFixed(1)} s)`);
      });
      const bars = summarizeBars(rows).filter((b) => b.gaps.length > 0);
      const barRows: Row[] = bars.map((b) => ({
        bar: b.bar.name,
        required: `>= ${b.bar.minGap}`,
        mean_gap: b.mean,
        min_gap: b.min,
        max_gap: b.max,
        ci95_low: b.ci95[0],
        ci95_high: b.ci95[1],
        held: `${b.held}/${b.gaps.length}`,
        data_seeds_held: `${b.perDataSeed.filter((d) => d.held).length}/${b.perDataSeed.length}`,
      }));
      if (!json) {
        io.out('\ntest GAUC per run:');
        printRows(io, rows.map(runRow), false);
        io.out('\nquality bars (GAUC of the first model minus the second, per run; ci95: 95% interval of the mean gap; data_seeds_held: the bar on each data seed\'s mean over model seeds):');
      }
      printRows(io, barRows, json);
      if (o.out !== undefined) writeFileAtomicSync(o.out, `${JSON.stringify({ overrides, runs: rows, bars: bars.map(({ bar, ...stats }) => ({ ...bar, ...stats })) }, null, 1)}\n`);
    });
});
