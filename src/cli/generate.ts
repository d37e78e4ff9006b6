// `qgs generate`: the seeded synthetic search log of research/data.md §4.
import * as path from 'path';
import { generateSessions, GENERATOR_DEFAULTS, type GeneratorOptions, type SyntheticDataset } from '../data/synthetic';
import { referenceTable } from '../data/reference';
import { writeSessionsJsonl } from '../data/write';
import { writeFileAtomicSync } from '../io/atomic';
import { type CliIO, type Row, printRows } from './io';
import { intOption, numberOption, registerCommand } from './registry';

export interface GenerateCommandOptions extends GeneratorOptions {
  out?: string;
  meta?: string;
  truth?: string;
  reference?: boolean;
  json?: boolean;
}

/** Sidecar written next to the records: options, feature spec, observable item catalogue, stats. */
export function datasetMeta(ds: SyntheticDataset): Record<string, unknown> {
  return {
    format: 'qgs-synthetic-sessions',
    version: 1,
    options: ds.options,
    spec: ds.spec,
    catalogue: { titles: ds.catalogue.titles, category: Array.from(ds.catalogue.category), style: Array.from(ds.catalogue.style), words: ds.catalogue.words },
    stats: ds.stats,
  };
}

/** Runs the command: generates, writes the requested files, prints statistics rows. */
export function runGenerate(opts: GenerateCommandOptions, io: CliIO): SyntheticDataset {
  const { out, meta, truth, reference, json, ...gen } = opts;
  const ds = generateSessions(gen);
  const rows: Row[] = [{ ...statsRow(ds), ...(out ? { out } : {}) }];
  if (out) {
    writeSessionsJsonl(out, ds.records);
    const metaFile = meta ?? defaultMetaPath(out);
    writeFileAtomicSync(metaFile, JSON.stringify(datasetMeta(ds)));
  }
  if (truth) {
    const t = ds.truth;
    writeFileAtomicSync(
      truth,
      JSON.stringify({
        itemTopic: Array.from(t.itemTopic),
        itemFacet: Array.from(t.itemFacet),
        itemQuality: Array.from(t.itemQuality),
        requests: t.requests.map((r) => ({ topic: r.topic, namedFacet: r.namedFacet, pAttr: Array.from(r.pAttr, (p) => Math.round(p * 1e6) / 1e6) })),
      }),
    );
  }
  printRows(io, rows, json === true);
  if (reference) {
    const ref = referenceTable(ds).map((r): Row => ({ scorer: r.scorer, auc: r.auc, gauc: r.gauc, ndcg10: r.ndcg10, mrr: r.mrr }));
    if (!json) io.out('\nreference scorers on the test split (last session per user), position-free labels:');
    printRows(io, ref, json === true);
  }
  return ds;
}

export function defaultMetaPath(out: string): string {
  const ext = path.extname(out);
  return `${ext ? out.slice(0, -ext.length) : out}.meta.json`;
}

function statsRow(ds: SyntheticDataset): Row {
  const s = ds.stats;
  return {
    seed: ds.options.seed,
    users: s.users,
    items: s.items,
    sessions: s.sessions,
    requests: s.requests,
    impressions: s.impressions,
    clicks: s.clicks,
    ctr: s.ctr,
    zero_click: s.zeroClickRate,
    topic_switch: s.topicSwitchRate,
    ms: s.generationMs,
  };
}

registerCommand('generate', (program, io) => {
  const d = GENERATOR_DEFAULTS;
  program
    .command('generate')
    .description('generate the seeded synthetic search-session log (research/data.md §4) and print its statistics')
    .option('--seed <n>', 'random seed', intOption('--seed'), d.seed)
    .option('--users <n>', 'number of users', intOption('--users', 1), d.users)
    .option('--items <n>', 'number of items', intOption('--items', 1), d.items)
    .option('--topics <n>', 'number of latent topics', intOption('--topics', 1), d.topics)
    .option('--facets <n>', 'number of facets (styles) shared across topics', intOption('--facets', 1), d.facets)
    .option('--bias <b>', 'attractiveness bias b (lower: fewer clicks)', numberOption('--bias'), d.bias)
    .option('--eta <x>', 'position-bias exponent', numberOption('--eta'), d.eta)
    .option('--g-glob <x>', 'global share of facet taste', numberOption('--g-glob'), d.gGlob)
    .option('--g-topic <x>', 'per-topic share of facet taste (the query-conditioning knob)', numberOption('--g-topic'), d.gTopic)
    .option('--out <file.jsonl>', 'write the session records (JSONL, atomically) and <file>.meta.json')
    .option('--meta <file>', 'where to write the metadata sidecar (default: next to --out)')
    .option('--truth <file>', 'also write the hidden ground truth (evaluation only) as JSON')
    .option('--reference', 'also print the reference scorers (oracles, LR on features) on the test split')
    .option('--json', 'print machine-readable JSON rows')
    .action((o: GenerateCommandOptions) => {
      runGenerate(o, io);
    });
});
