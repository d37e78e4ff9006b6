// Adapters from public search-log schemas to SessionRecords (research/data.md §1.2, §1.3, §2).
// Both stream: KuaiSAR rows are grouped while consecutive, JDsearch is one line per user.
import { readCsv, readLines } from './readers';
import { type ReadOptions, RecordStream } from './report';
import type { FeatureSpec, Id, SessionRecord } from './schema';
import { normaliseId } from './sessions';

// ---------------------------------------------------------------------------------------------
// KuaiSAR src_inter.csv: one row per (search session, shown item). A KuaiSAR "search session" is one
// query and its results, so it maps to one record (request = search_session_id). Visits (our
// `session`) are not in the file: the splitter derives them from time gaps.

/** Feature groups the KuaiSAR adapter emits (per shown item). */
export const KUAISAR_FEATURE_SPEC: FeatureSpec = {
  groups: [
    { name: 'item', kind: 'categorical', features: ['item_type'], description: 'VIDEO, USER, IMAGE_ATLAS, LIVE, COMMODITY, MUSIC, ADVERT' },
    { name: 'query_side', kind: 'categorical', features: ['search_source'], description: 'how the query was issued (typed, suggested...), repeated per item' },
  ],
};

const KUAISAR_COLUMNS = ['user_id', 'search_session_id', 'search_session_timestamp', 'keyword', 'search_source', 'item_id', 'click_cnt', 'item_type'] as const;

function intField(row: Record<string, string>, col: string): number {
  const s = row[col];
  const v = Number(s);
  if (s === undefined || s.trim() === '' || !Number.isFinite(v)) throw new Error(`${col}: expected a number, got ${JSON.stringify(s)}`);
  return v;
}

/** KuaiSAR ids are int64; keep them as numbers when exact, else as strings. */
function int64Id(row: Record<string, string>, col: string): Id {
  const s = (row[col] ?? '').trim();
  if (!/^-?\d+(\.0+)?$/.test(s)) throw new Error(`${col}: expected an integer id, got ${JSON.stringify(row[col])}`);
  const digits = s.replace(/\.0+$/, '');
  const n = Number(digits);
  return Number.isSafeInteger(n) ? n : digits;
}

/** Parses KuaiSAR's keyword cell, e.g. "[20, 34, 3]". */
export function parseKeyword(s: string): number[] {
  const t = s.trim();
  if (!t.startsWith('[') || !t.endsWith(']')) throw new Error(`keyword: expected a list like [20, 34, 3], got ${JSON.stringify(s)}`);
  const inner = t.slice(1, -1).trim();
  if (inner === '') return [];
  return inner.split(',').map((x) => {
    const v = Number(x.trim());
    if (!Number.isInteger(v)) throw new Error(`keyword: ${JSON.stringify(x.trim())} is not an integer token id`);
    return v;
  });
}

/**
 * Streams KuaiSAR `src_inter.csv` as one SessionRecord per search session (query). Rows of one search
 * session must be consecutive (as in the released file); a session id seen again later, or a row
 * whose user/time/keyword disagrees with its session's first row, is a bad record at file:line.
 */
export function readKuaisarSearch(file: string, opts: ReadOptions = {}): RecordStream<SessionRecord> {
  return new RecordStream<SessionRecord>(async function* (report) {
    interface Open {
      rec: { user: Id; ts: number; request: Id; query: { terms: number[] }; shown: Id[]; clicks: number[]; features: { item: string[]; query_side: string[] } };
      line: string;
      keyword: string;
    }
    let open: Open | null = null;
    const closed = new Set<string>();
    let checkedHeader = false;
    // CSV-level problems (quoting, field counts) are reported by the row reader into our report.
    const rows = readCsv(file, (row, location) => ({ row, location }), { keepBad: 0, onBadRecord: (b) => report.reject(b.location, b.message) });
    {
      for await (const { row, location } of rows) {
        if (!checkedHeader) {
          const missing = KUAISAR_COLUMNS.filter((c) => !(c in row));
          if (missing.length) throw new Error(`${location}: not a KuaiSAR src_inter.csv: missing column(s) ${missing.join(', ')}`);
          checkedHeader = true;
        }
        let user: Id, sid: Id, ts: number, item: Id, click: number, keyword: number[];
        try {
          user = int64Id(row, 'user_id');
          sid = int64Id(row, 'search_session_id');
          ts = intField(row, 'search_session_timestamp');
          item = int64Id(row, 'item_id');
          click = intField(row, 'click_cnt');
          if (click < 0) throw new Error(`click_cnt: must be >= 0, got ${click}`);
          keyword = parseKeyword(row.keyword);
        } catch (e) {
          report.reject(location, (e as Error).message);
          continue;
        }
        if (open !== null && open.rec.request !== sid) {
          closed.add(String(open.rec.request));
          yield open.rec;
          open = null;
        }
        if (open === null) {
          if (closed.has(String(sid))) {
            report.reject(location, `search_session_id ${sid} appears again after other sessions (rows of a session must be consecutive)`);
            continue;
          }
          open = {
            rec: { user, ts, request: sid, query: { terms: keyword }, shown: [], clicks: [], features: { item: [], query_side: [] } },
            line: location,
            keyword: row.keyword.trim(),
          };
        } else if (open.rec.user !== user || open.rec.ts !== ts || open.keyword !== row.keyword.trim()) {
          report.reject(location, `row disagrees with its search session ${sid} (started at ${open.line}) on user_id, timestamp or keyword`);
          continue;
        }
        open.rec.shown.push(item);
        open.rec.clicks.push(click);
        open.rec.features.item.push(row.item_type ?? '');
        open.rec.features.query_side.push(row.search_source ?? '');
      }
    }
    if (open !== null) yield open.rec;
  }, opts);
}

/**
 * Streams KuaiSAR `rec_inter.csv` (recommendation feed) as query-less single-item interactions
 * (data.md §2: fold rec_inter into history with query = null).
 */
export function readKuaisarRec(file: string, opts: ReadOptions = {}): RecordStream<SessionRecord> {
  return readCsv(
    file,
    (row): SessionRecord => {
      const click = intField(row, 'click');
      if (click < 0) throw new Error(`click: must be >= 0, got ${click}`);
      return { user: int64Id(row, 'user_id'), ts: intField(row, 'timestamp'), query: null, shown: [int64Id(row, 'item_id')], clicks: [click] };
    },
    opts,
  );
}

// ---------------------------------------------------------------------------------------------
// JDsearch release_data.txt: one TSV line per test user:
// query, candidate_wid_list, candidate_label_list, history_qry_list, history_wid_list,
// history_type_list, history_time_list. Term ids within a query are joined by \x18, list elements
// by '_'. The line has no user id, so the user is `jd:<line number>`.

/** Interaction levels of the JDsearch history (ORD purchase, CART, CLICK, FLW follow) as labels. */
export const JD_ACTION_LABEL: Readonly<Record<string, number>> = { CLICK: 1, CART: 2, ORD: 3, FLW: 1 };

export interface JdsearchOptions extends ReadOptions {
  /** Milliseconds per unit of history_time_list (the README does not state the unit; default 1000, i.e. seconds). */
  timeUnitMs?: number;
  /** Timestamp of each user's first behaviour (default 0): the file holds only gaps. */
  originMs?: number;
}

const JD_HEADER = 'query\tcandidate_wid_list\tcandidate_label_list\thistory_qry_list\thistory_wid_list\thistory_type_list\thistory_time_list';

function jdQuery(s: string, field: string): { terms: number[] } | null {
  if (s === '-1') return null;
  const terms = s.split('\x18').map((t) => {
    if (!/^\d+$/.test(t)) throw new Error(`${field}: term ${JSON.stringify(t)} is not a non-negative integer id`);
    return Number(t);
  });
  return { terms };
}

function jdList(s: string, field: string): string[] {
  if (s === '') throw new Error(`${field}: empty list`);
  return s.split('_');
}

function jdId(s: string, field: string): Id {
  if (!/^\d+$/.test(s)) throw new Error(`${field}: ${JSON.stringify(s)} is not an integer id`);
  return normaliseId(BigInt(s)) as Id;
}

/** Parses one JDsearch line into the user's history records followed by the test impression. */
export function parseJdsearchLine(line: string, user: Id, opts: JdsearchOptions = {}): SessionRecord[] {
  const cols = line.split('\t');
  if (cols.length !== 7) throw new Error(`expected 7 tab-separated fields, got ${cols.length}`);
  const [query, candWid, candLabel, histQry, histWid, histType, histTime] = cols;
  const unit = opts.timeUnitMs ?? 1000;
  const hq = jdList(histQry, 'history_qry_list');
  const hw = jdList(histWid, 'history_wid_list');
  const ht = jdList(histType, 'history_type_list');
  const times = jdList(histTime, 'history_time_list').map((t) => {
    const v = Number(t);
    if (!/^\d+$/.test(t)) throw new Error(`history_time_list: ${JSON.stringify(t)} is not a non-negative integer gap`);
    return v;
  });
  if (hq.length !== hw.length || ht.length !== hw.length) {
    throw new Error(`history lists differ in length: qry ${hq.length}, wid ${hw.length}, type ${ht.length}`);
  }
  if (times.length !== hw.length + 1) throw new Error(`history_time_list has ${times.length} gaps, expected ${hw.length + 1} (one per behaviour plus the test query)`);
  const out: SessionRecord[] = [];
  let ts = opts.originMs ?? 0;
  for (let i = 0; i < hw.length; i++) {
    ts += times[i] * unit;
    const label = JD_ACTION_LABEL[ht[i]];
    if (label === undefined) throw new Error(`history_type_list[${i}]: unknown interaction type ${JSON.stringify(ht[i])} (ORD, CLICK, CART, FLW)`);
    out.push({ user, ts, query: jdQuery(hq[i], `history_qry_list[${i}]`), shown: [jdId(hw[i], `history_wid_list[${i}]`)], clicks: [1], labels: [label] });
  }
  ts += times[hw.length] * unit;
  const shown = jdList(candWid, 'candidate_wid_list').map((w, i) => jdId(w, `candidate_wid_list[${i}]`));
  const labels = jdList(candLabel, 'candidate_label_list').map((l, i) => {
    const v = Number(l);
    if (!Number.isInteger(v) || v < 0 || v > 3) throw new Error(`candidate_label_list[${i}]: expected 0.0..3.0, got ${JSON.stringify(l)}`);
    return v;
  });
  if (labels.length !== shown.length) throw new Error(`candidate_label_list has ${labels.length} labels for ${shown.length} candidates`);
  const q = jdQuery(query, 'query');
  if (q === null) throw new Error('query: the test query cannot be -1');
  out.push({ user, ts, request: `${String(user)}:test`, query: q, shown, clicks: labels.map((l) => (l > 0 ? 1 : 0)), labels });
  return out;
}

/**
 * Streams JDsearch `release_data.txt` (or the README sample, which starts with a header line): per
 * line, the history interactions (query −1 → null, type → label) then the test impression
 * (labels 0–3; clicks = label > 0). A bad line is skipped whole and reported at file:line.
 */
export function readJdsearch(file: string, opts: JdsearchOptions = {}): RecordStream<SessionRecord> {
  return new RecordStream<SessionRecord>(async function* (report) {
    for await (const { line, lineNo } of readLines(file)) {
      if (line === '' || (lineNo === 1 && line.startsWith(JD_HEADER.slice(0, 30)))) continue;
      let recs: SessionRecord[];
      try {
        recs = parseJdsearchLine(line, `jd:${lineNo}`, opts);
      } catch (e) {
        report.reject(`${file}:${lineNo}`, (e as Error).message);
        continue;
      }
      yield* recs;
    }
  }, opts);
}
