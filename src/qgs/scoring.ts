// Scoring one ranking request with a trained model: the history becomes pair tokens, the request's
// query becomes the read-out token, and the candidates go through the ranking head with their
// feature groups (position pinned to rank 1). Used by `qgs rank` and the serving backend's cold path.
import { tensor, scope } from '../tensor';
import { noGrad } from '../autograd';
import * as ops from '../ops';
import { buildTokens, ITEM_OFFSET, NO_QUERY, TERM_OFFSET, type PreparedRequest, type UserTimeline } from './dataset';
import { scaleFeatures, type ScalerState } from './features';
import type { QgsModel } from './model';
import { LogMapper, checkCategory, setIndicator, type CategoricalSlot, type LogVocab } from './log-data';
import { isId } from '../data/schema';

export interface RankQuery {
  /** Query term ids (as in the training data). */
  terms?: readonly number[];
  /** Query text: read by models trained on a log (hashed tokens) when `terms` is absent or empty. */
  text?: string;
}

/** An item id: the model's integer id, or for a model trained on a log, the log's raw id. */
export type RankItemId = number | string;

export interface RankHistoryEvent {
  query?: RankQuery | null;
  item: RankItemId;
}

export type FeatureValues = Readonly<Record<string, Readonly<Record<string, number | string | null>>>>;

export interface RankCandidate {
  item: RankItemId;
  /** group → feature → value (missing groups/features count as missing values). */
  features?: FeatureValues;
}

export interface RankRequest {
  history?: readonly RankHistoryEvent[];
  query: RankQuery | null;
  candidates: readonly RankCandidate[];
}

/** Item id → item token id, with a clear error naming `where` for bad or out-of-catalogue ids. */
export function checkItem(v: unknown, where: string, vocab: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`${where}: expected a non-negative integer item id, got ${JSON.stringify(v)}`);
  if (v + ITEM_OFFSET >= vocab) throw new Error(`${where}: item ${v} is outside the model's catalogue (0..${vocab - ITEM_OFFSET - 1})`);
  return v + ITEM_OFFSET;
}

/** Query → term token ids (at most maxTerms; [NO_QUERY] when empty; unseen terms → NO_QUERY). */
export function termIds(q: RankQuery | null | undefined, where: string, model: QgsModel): Int32Array {
  const t = q?.terms ?? [];
  if (!Array.isArray(t)) throw new Error(`${where}.terms: expected an array of term ids, got ${JSON.stringify(t)}`);
  if (t.length === 0) return Int32Array.of(NO_QUERY);
  // A plain loop: Int32Array.from with a mapping function took ~0.4 µs per query, 0.4 ms of a
  // 1,000-event cold encode in the serving worker.
  const n = Math.min(t.length, model.cfg.maxTerms);
  const vocab = model.cfg.termVocab;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const x: unknown = t[i];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw new Error(`${where}.terms[${i}]: expected a non-negative integer, got ${JSON.stringify(x)}`);
    out[i] = termToken(x, vocab);
  }
  return out;
}

/**
 * A non-negative term id's token: TERM_OFFSET-shifted; unseen terms map to "no query" rather than
 * failing (the vocabulary is the training data's).
 */
export function termToken(term: number, termVocab: number): number {
  return term + TERM_OFFSET < termVocab ? term + TERM_OFFSET : NO_QUERY;
}

/**
 * How a model reads a request's item ids and queries: the synthetic data's integer ids (checkItem,
 * termIds), or a log's vocabulary (LogMapper: raw ids, unseen items → the model's unseen-item row,
 * hashed term ids or text tokens, the way prepareLogData mapped the training log). `qgs rank` and
 * the serving backend share it.
 */
export interface InputMap {
  /** True when ids go through a vocabulary (callers then skip their integer fast paths). */
  readonly vocabulary: boolean;
  /** Item token of an item id; throws naming `where` for a malformed (or, without a vocabulary, out-of-catalogue) id. */
  item(id: unknown, where: string): number;
  /** Term tokens of a query (at most maxTerms; [NO_QUERY] when it has none). */
  terms(q: RankQuery | null | undefined, where: string): Int32Array;
  /** A log-trained model's categorical features in its layout (raw values set their indicator columns); [] otherwise. */
  readonly categorical: readonly CategoricalSlot[];
}

export function inputMap(model: QgsModel, vocab?: LogVocab): InputMap {
  const itemVocab = model.cfg.itemVocab;
  if (vocab === undefined) {
    return { vocabulary: false, item: (id, where) => checkItem(id, where, itemVocab), terms: (q, where) => termIds(q, where, model), categorical: [] };
  }
  const mapper = logMapper(vocab, model.cfg.maxTerms);
  return {
    vocabulary: true,
    categorical: mapper.categoricalSlots(model.cfg.layout),
    item(id, where) {
      if (!isId(id)) {
        throw new Error(`${where}: expected an item id (a non-empty string or a finite number), got ${JSON.stringify(id)}`);
      }
      return mapper.item(id) + ITEM_OFFSET;
    },
    terms(q, where) {
      if (q !== null && q !== undefined) {
        if (q.terms !== undefined && (!Array.isArray(q.terms) || !q.terms.every((t) => Number.isInteger(t)))) {
          throw new Error(`${where}.terms: expected an array of integer term ids, got ${JSON.stringify(q.terms)}`);
        }
        if (q.text !== undefined && typeof q.text !== 'string') throw new Error(`${where}.text: expected a string, got ${JSON.stringify(q.text)}`);
      }
      const ids = mapper.terms(q === undefined || q === null ? null : { terms: q.terms, text: q.text });
      return ids.length === 0 ? Int32Array.of(NO_QUERY) : Int32Array.from(ids, (t) => t + TERM_OFFSET);
    },
  };
}

// A LogMapper indexes every vocabulary item (a Map of the catalogue): built once per vocabulary, not
// once per scoreRequest call.
const mappers = new WeakMap<LogVocab, LogMapper>();
function logMapper(vocab: LogVocab, maxTerms: number): LogMapper {
  let m = mappers.get(vocab);
  if (m === undefined || m.maxTerms !== maxTerms) mappers.set(vocab, (m = new LogMapper(vocab, maxTerms)));
  return m;
}

/**
 * Dense feature rows [candidates × F] in the model's layout (NaN = missing). With `slots` (a
 * log-trained model's categorical features), a raw value (`brand: "acme"`) sets its indicator
 * columns as in training, overriding indicator columns given directly.
 */
export function featureRows(model: QgsModel, candidates: readonly RankCandidate[], slots: readonly CategoricalSlot[] = []): Float32Array {
  const layout = model.cfg.layout;
  const rows = new Float32Array(candidates.length * layout.dim).fill(Number.NaN);
  candidates.forEach((c, i) => {
    if (c.features === undefined) return;
    for (const g of layout.groups) {
      const vals = c.features[g.name];
      if (vals === undefined) continue;
      g.features.forEach((f, j) => {
        const v = vals[f];
        if (v === undefined || v === null) return;
        if (typeof v !== 'number') throw new Error(`candidates[${i}].features.${g.name}.${f}: expected a number or null, got ${JSON.stringify(v)}`);
        rows[i * layout.dim + g.offset + j] = v;
      });
    }
    for (const slot of slots) {
      const v = checkCategory((c.features[slot.group] as Record<string, unknown> | undefined)?.[slot.feature], `candidates[${i}].features.${slot.group}.${slot.feature}`);
      if (v !== null) setIndicator(rows, i * layout.dim, slot, v);
    }
  });
  return rows;
}

/** Scores one request by re-encoding its history (the cold path). */
export function scoreRequest(model: QgsModel, scaler: ScalerState, req: RankRequest, vocab?: LogVocab): Float32Array {
  if (req === null || typeof req !== 'object') throw new Error(`request: expected an object, got ${JSON.stringify(req)}`);
  if (!Array.isArray(req.candidates)) throw new Error('request.candidates: expected an array');
  const map = inputMap(model, vocab);
  const history = req.history ?? [];
  if (!Array.isArray(history)) throw new Error('request.history: expected an array');
  // Each past click is a one-click request in the timeline; the scored request is the last one.
  const requests: PreparedRequest[] = history.map((e, i) => ({
    split: 0,
    ts: i,
    terms: map.terms(e.query, `history[${i}].query`),
    items: Int32Array.of(map.item(e.item, `history[${i}].item`)),
    clicks: Float32Array.of(1),
    rel: null,
    features: new Float32Array(model.cfg.layout.dim),
  }));
  const items = Int32Array.from(req.candidates, (c, i) => map.item(c?.item, `candidates[${i}].item`));
  const target: PreparedRequest = {
    split: 2,
    ts: history.length,
    terms: map.terms(req.query, 'query'),
    items,
    clicks: new Float32Array(items.length),
    rel: null,
    features: featureRows(model, req.candidates, map.categorical),
  };
  if (items.length === 0) return new Float32Array(0);
  const timeline: UserTimeline = { user: 0, requests: [...requests, target] };
  return scope(() =>
    noGrad(() => {
      const tb = buildTokens([timeline], model.cfg.variant, model.cfg.maxTerms);
      const h = model.encode(tb);
      const last = ops.gather(h, tensor(Int32Array.of(requests.length), [1], { dtype: 'i32' }), 0);
      const ctx = ops.broadcastTo(last, [items.length, model.cfg.dim]);
      const feats = scaleFeatures(scaler, target.features, true);
      return model.rankLogits(ctx, items, tensor(feats, [items.length, scaler.mean.length])).toFloat32Array();
    }),
  );
}
