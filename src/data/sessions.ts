// Session records from files: JSONL holds SessionRecord objects directly; CSV and Parquet hold one
// record per row in "flat" columns (lists as JSON arrays or space-separated values), optionally
// renamed with a column mapping.
import * as path from 'path';
import { type FeatureSpec, type Id, type SessionRecord, validateRecord } from './schema';
import { type CsvOptions, type ParquetOptions, readCsv, readJsonl, readParquet } from './readers';
import type { ReadOptions, RecordStream } from './report';

export type SessionFormat = 'jsonl' | 'csv' | 'tsv' | 'parquet';

export interface ReadSessionsOptions extends ReadOptions {
  /** File format; inferred from the extension (.jsonl/.ndjson, .csv, .tsv, .parquet) when omitted. */
  format?: SessionFormat;
  /** Checks each record's features against this spec. */
  spec?: FeatureSpec;
  /** CSV/Parquet: source column for each flat field, e.g. { user: 'uid', ts: 'time_ms' }. */
  columns?: Readonly<Partial<Record<FlatField, string>>>;
}

/** Flat columns understood in CSV/Parquet session files. `features` holds a JSON object. */
export type FlatField = 'user' | 'ts' | 'session' | 'request' | 'query' | 'query_terms' | 'shown' | 'clicks' | 'labels' | 'rel' | 'features';

export function inferFormat(file: string): SessionFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.tsv') return 'tsv';
  if (ext === '.parquet') return 'parquet';
  throw new Error(`cannot infer the format of ${file} from its extension; pass format: 'jsonl' | 'csv' | 'tsv' | 'parquet'`);
}

/** Streams SessionRecords from a JSONL, CSV/TSV or Parquet file; bad records are counted (or fail in strict mode). */
export function readSessions(file: string, opts: ReadSessionsOptions = {}): RecordStream<SessionRecord> {
  const format = opts.format ?? inferFormat(file);
  if (format === 'jsonl') return readJsonl(file, (v) => validateRecord(v, opts.spec), opts);
  const cols = opts.columns ?? {};
  const get = (row: Record<string, unknown>, f: FlatField): unknown => row[cols[f] ?? f];
  const map = (row: Record<string, unknown>): SessionRecord => validateRecord(flatToRecord((f) => get(row, f)), opts.spec);
  // The column mapping is applied here, not by the CSV reader's own renaming.
  const base: ReadOptions = { strict: opts.strict, onBadRecord: opts.onBadRecord, keepBad: opts.keepBad };
  if (format === 'parquet') return readParquet(file, map, base as ParquetOptions);
  return readCsv(file, map, { ...(base as CsvOptions), delimiter: format === 'tsv' ? '\t' : ',' });
}

/** Converts a BigInt (Parquet INT64) to a number when exact, else to its decimal string. */
export function normaliseId(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  return v;
}

function toNumber(v: unknown, field: string): number {
  const x = typeof v === 'bigint' ? Number(v) : typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new Error(`${field}: expected a number, got ${JSON.stringify(typeof v === 'bigint' ? v.toString() : v)}`);
  return x;
}

function idOf(v: unknown): unknown {
  v = normaliseId(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v) && Number.isSafeInteger(Number(v))) return Number(v);
  return v;
}

/** Parses a list cell: a JSON array, space/comma separated values, or an array (Parquet LIST). */
export function parseList(v: unknown, field: string): unknown[] {
  if (v === null || v === undefined) throw new Error(`${field}: missing`);
  if (Array.isArray(v)) return v.map(normaliseId);
  if (typeof v !== 'string') throw new Error(`${field}: expected a list, got ${JSON.stringify(v)}`);
  const s = v.trim();
  if (s === '' || s === '[]') return [];
  if (s.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(s);
      if (Array.isArray(parsed)) return parsed;
    } catch {
      /* fall through */
    }
    throw new Error(`${field}: not a valid JSON list: ${s.length > 40 ? `${s.slice(0, 37)}...` : s}`);
  }
  return s.split(/[\s,]+/);
}

function flatToRecord(get: (f: FlatField) => unknown): unknown {
  const rec: Record<string, unknown> = {
    user: idOf(get('user')),
    ts: toNumber(get('ts'), 'ts'),
  };
  const session = get('session');
  if (session !== undefined && session !== '' && session !== null) rec.session = idOf(session);
  const request = get('request');
  if (request !== undefined && request !== '' && request !== null) rec.request = idOf(request);
  const text = get('query');
  const terms = get('query_terms');
  const hasText = typeof text === 'string' && text !== '';
  const hasTerms = terms !== undefined && terms !== null && terms !== '';
  rec.query = hasText || hasTerms ? { ...(hasText ? { text } : {}), ...(hasTerms ? { terms: parseList(terms, 'query_terms').map((t) => toNumber(t, 'query_terms')) } : {}) } : null;
  rec.shown = parseList(get('shown'), 'shown').map(idOf) as Id[];
  rec.clicks = parseList(get('clicks'), 'clicks').map((x) => toNumber(x, 'clicks'));
  for (const f of ['labels', 'rel'] as const) {
    const v = get(f);
    if (v !== undefined && v !== null && v !== '') rec[f] = parseList(v, f).map((x) => toNumber(x, f));
  }
  const feats = get('features');
  if (feats !== undefined && feats !== null && feats !== '') {
    if (typeof feats === 'string') {
      try {
        rec.features = JSON.parse(feats);
      } catch (e) {
        throw new Error(`features: invalid JSON (${(e as Error).message})`);
      }
    } else rec.features = feats;
  }
  return rec;
}
