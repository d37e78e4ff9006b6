// Seeded synthetic search-session generator, following research/data.md §4 and its recommended
// defaults (§4.7). The latent world (topics with sibling ambiguity, shared facets, items with
// quality, users with per-topic facet taste) drives a behaviour process (sessions, topic switches
// inside sessions, an exposure policy, position-biased clicks) and emits position-free relevance
// labels for evaluation plus hand-crafted features computed only from earlier sessions.
//
// Where data.md leaves a detail open the choice is marked "interpretation:" below. Nothing here is
// tuned toward any model; the defaults are data.md's.
import { Random } from '../tensor';
import type { FeatureSpec, SessionRecord } from './schema';

export interface GeneratorOptions {
  seed?: number;
  users?: number;
  items?: number;
  topics?: number;
  facets?: number;
  /** Words per topic (including its ambiguous words shared with the sibling topic). */
  topicWords?: number;
  /** Words each pair of sibling topics shares. */
  ambiguousWords?: number;
  facetWords?: number;
  noiseWords?: number;
  /** Attractiveness bias b. */
  bias?: number;
  /** Position-bias exponent: P(examine rank r) = r^-eta. */
  eta?: number;
  gGlob?: number;
  gTopic?: number;
  wF?: number;
  /** User topic-interest Dirichlet concentration per topic (θ_u ~ Dirichlet(α·T·π)). */
  userAlpha?: number;
  /** Zipf exponent of topic popularity π. */
  topicZipf?: number;
  lexicalSlots?: number;
  semanticSlots?: number;
  personalSlots?: number;
  randomSlots?: number;
  listSize?: number;
  /** Probability that a semantic slot retrieves from the sibling topic (retriever error). */
  siblingRate?: number;
  /** Production ranker: weight of BM25. */
  prodBm25?: number;
  /** Probability that the next query in a session keeps the topic. */
  pStay?: number;
  /** Probability that a query names a facet word. */
  facetQueryProb?: number;
  /** Probability that an item's observable category is random instead of its topic. */
  categoryNoise?: number;
  /** Mean number of sessions per user (2 + geometric). */
  meanSessions?: number;
  maxQueriesPerSession?: number;
  /** Start of the shared clock (ms). */
  startMs?: number;
}

export type ResolvedGeneratorOptions = Required<GeneratorOptions>;

/** data.md §4 defaults (recommended config of §4.7; sizes of §4.9: about 1 minute of training). */
export const GENERATOR_DEFAULTS: ResolvedGeneratorOptions = {
  seed: 7,
  users: 1000,
  items: 2000,
  topics: 12,
  facets: 4,
  topicWords: 8,
  ambiguousWords: 2,
  facetWords: 3,
  noiseWords: 30,
  bias: -4.6,
  eta: 0.7,
  gGlob: 0.5,
  gTopic: 1.8,
  wF: 2.6,
  userAlpha: 0.25,
  topicZipf: 1,
  lexicalSlots: 4,
  semanticSlots: 14,
  personalSlots: 3,
  randomSlots: 3,
  listSize: 20,
  siblingRate: 0.15,
  prodBm25: 0.2,
  pStay: 0.55,
  facetQueryProb: 0.25,
  categoryNoise: 0.1,
  meanSessions: 8,
  maxQueriesPerSession: 4,
  startMs: Date.UTC(2026, 0, 1),
};

/** The unit-test size of data.md §4.9 (50 users, 200 items, 4 topics). */
export const GENERATOR_TINY: GeneratorOptions = { users: 50, items: 200, topics: 4 };

/** Per-item feature groups of the generated records. */
export const SYNTHETIC_FEATURE_SPEC: FeatureSpec = {
  groups: [
    { name: 'text_match', kind: 'numeric', features: ['bm25'], description: 'BM25(query, title), k1=1.2, b=0.75: blind to facet taste, confused by ambiguous and noise words' },
    { name: 'item_stats', kind: 'numeric', features: ['item_ctr', 'log_impressions'], description: 'smoothed log CTR and log(1+impressions) from sessions that ended before this one (all users): mixes position bias with quality' },
    { name: 'user_item', kind: 'numeric', features: ['user_item_clicks', 'user_cat_share'], description: "the user's clicks on the item and smoothed share of their clicks in its category, from their earlier sessions" },
    { name: 'query_side', kind: 'numeric', features: ['query_terms'], description: 'number of query terms (same for every item of a request)' },
    { name: 'context', kind: 'numeric', features: ['log_rank'], description: 'log of the logged rank (1-based): an exposure confounder; score with 0 (rank 1) at evaluation' },
  ],
};

/** Hidden ground truth: models must never see it (data.md §4.4). */
export interface SyntheticTruth {
  itemTopic: Int32Array;
  itemFacet: Int32Array;
  itemQuality: Float64Array;
  /** θ_u, [users × topics]. */
  userTheta: Float64Array;
  /** φ_{u,t}, [users × topics × facets]. */
  userPhi: Float64Array;
  /** Per record (same order as `records`). */
  requests: {
    topic: number;
    /** Facet named by the query, or -1. */
    namedFacet: number;
    /** σ(logit) per shown item. */
    pAttr: Float64Array;
    /** Whether the user had clicked the shown item before this request. */
    repeat: Uint8Array;
  }[];
}

export interface GeneratorStats {
  users: number;
  items: number;
  sessions: number;
  requests: number;
  impressions: number;
  clicks: number;
  ctr: number;
  zeroClickRate: number;
  /** Share of within-session query transitions that change topic. */
  topicSwitchRate: number;
  /** Share of requests whose first click has the latent topic of the user's previous click (in an earlier request). */
  nextClickSameTopic: number;
  clicksPerUserMedian: number;
  clicksPerUserP90: number;
  relRate: number;
  generationMs: number;
}

/** Observable item catalogue (data.md §4.5 items.tsv). */
export interface SyntheticCatalogue {
  /** Title term ids per item. */
  titles: number[][];
  /** Observable category (the latent topic with probability 1 − categoryNoise). */
  category: Int32Array;
  /** Observable style (= latent facet). */
  style: Int32Array;
  /** Word names by term id (index 0 is unused). */
  words: string[];
}

export interface SyntheticDataset {
  options: ResolvedGeneratorOptions;
  spec: FeatureSpec;
  /** All requests in global time order. Users and items are integer ids 0..n-1. */
  records: SessionRecord[];
  catalogue: SyntheticCatalogue;
  truth: SyntheticTruth;
  stats: GeneratorStats;
}

// ---------------------------------------------------------------------------------------------

function mix(seed: number, stream: number): number {
  let x = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream + 0x7f4a7c15, 0x85ebca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) >>> 0;
  return (x ^ (x >>> 12)) >>> 0;
}

/** Gamma(shape, 1) by Marsaglia–Tsang (boosted for shape < 1). */
function gamma(rng: Random, shape: number): number {
  if (shape < 1) {
    let u = rng.uniform();
    while (u <= 0) u = rng.uniform();
    return gamma(rng, shape + 1) * Math.pow(u, 1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.uniform();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

function dirichlet(rng: Random, alpha: ArrayLike<number>): Float64Array {
  const out = new Float64Array(alpha.length);
  let s = 0;
  for (let i = 0; i < alpha.length; i++) {
    out[i] = gamma(rng, alpha[i]);
    s += out[i];
  }
  if (s <= 0) {
    // All draws underflowed (tiny alphas): put the mass on one topic drawn by alpha.
    out[categorical(rng, alpha)] = 1;
    return out;
  }
  for (let i = 0; i < out.length; i++) out[i] /= s;
  return out;
}

function categorical(rng: Random, p: ArrayLike<number>, offset = 0, n = p.length - offset): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += p[offset + i];
  let u = rng.uniform() * total;
  for (let i = 0; i < n; i++) {
    u -= p[offset + i];
    if (u < 0) return i;
  }
  return n - 1;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function checkOptions(o: ResolvedGeneratorOptions): void {
  const posInt: (keyof GeneratorOptions)[] = ['users', 'items', 'topics', 'facets', 'topicWords', 'facetWords', 'listSize', 'maxQueriesPerSession'];
  for (const k of posInt) {
    const v = o[k];
    if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`generateSessions: ${k} must be an integer >= 1, got ${String(v)}`);
  }
  for (const k of ['noiseWords', 'ambiguousWords', 'lexicalSlots', 'semanticSlots', 'personalSlots', 'randomSlots'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`generateSessions: ${k} must be an integer >= 0, got ${o[k]}`);
  }
  for (const k of ['pStay', 'facetQueryProb', 'categoryNoise', 'siblingRate'] as const) {
    if (!(o[k] >= 0 && o[k] <= 1)) throw new Error(`generateSessions: ${k} must be in [0, 1], got ${o[k]}`);
  }
  if (!Number.isInteger(o.seed)) throw new Error(`generateSessions: seed must be an integer, got ${o.seed}`);
  if (o.ambiguousWords > o.topicWords) throw new Error(`generateSessions: ambiguousWords (${o.ambiguousWords}) cannot exceed topicWords (${o.topicWords})`);
  if (!(o.meanSessions >= 2)) throw new Error(`generateSessions: meanSessions must be >= 2 (2 + geometric), got ${o.meanSessions}`);
  if (o.lexicalSlots + o.semanticSlots + o.personalSlots + o.randomSlots < 1) throw new Error('generateSessions: at least one candidate slot is needed');
}

/**
 * BM25 index over item titles (k1 = 1.2, b = 0.75). Postings carry each (word, item) weight, so a
 * query is scored by accumulating into a dense per-item buffer (`scoreAll`), touched entries only.
 */
class Bm25 {
  private postings = new Map<number, { items: Int32Array; weights: Float64Array }>();
  private acc: Float64Array;
  private touched: number[] = [];
  constructor(titles: number[][], k1 = 1.2, b = 0.75) {
    const n = titles.length;
    this.acc = new Float64Array(n);
    const tfs = titles.map((t) => {
      const m = new Map<number, number>();
      for (const w of t) m.set(w, (m.get(w) ?? 0) + 1);
      return m;
    });
    const avgLen = titles.reduce((a, t) => a + t.length, 0) / Math.max(1, n);
    const lists = new Map<number, number[]>();
    tfs.forEach((m, i) => {
      for (const w of m.keys()) {
        let l = lists.get(w);
        if (!l) lists.set(w, (l = []));
        l.push(i);
      }
    });
    for (const [w, items] of lists) {
      const idf = Math.log(1 + (n - items.length + 0.5) / (items.length + 0.5));
      const weights = new Float64Array(items.length);
      items.forEach((i, j) => {
        const f = tfs[i].get(w) as number;
        const norm = k1 * (1 - b + (b * titles[i].length) / avgLen);
        weights[j] = (idf * (f * (k1 + 1))) / (f + norm);
      });
      this.postings.set(w, { items: Int32Array.from(items), weights });
    }
  }
  /** Scores every item for `query` (distinct words); read with `get`, then call `reset`. */
  scoreAll(query: readonly number[]): void {
    this.reset();
    for (const w of new Set(query)) {
      const p = this.postings.get(w);
      if (!p) continue;
      for (let j = 0; j < p.items.length; j++) {
        const i = p.items[j];
        if (this.acc[i] === 0) this.touched.push(i);
        this.acc[i] += p.weights[j];
      }
    }
  }
  get(item: number): number {
    return this.acc[item];
  }
  reset(): void {
    for (const i of this.touched) this.acc[i] = 0;
    this.touched.length = 0;
  }
  /** After scoreAll: the top-k items with score > 0, ties by lower item id. */
  top(k: number): number[] {
    const best: number[] = [];
    for (const i of this.touched) {
      const s = this.acc[i];
      if (!(s > 0)) continue;
      let pos = best.length;
      while (pos > 0 && (this.acc[best[pos - 1]] < s || (this.acc[best[pos - 1]] === s && best[pos - 1] > i))) pos--;
      if (pos < k) {
        best.splice(pos, 0, i);
        if (best.length > k) best.pop();
      }
    }
    return best;
  }
}

interface World {
  topicWords: number[][];
  facetWords: number[][];
  noise: number[];
  words: string[];
  pi: Float64Array;
  itemTopic: Int32Array;
  itemFacet: Int32Array;
  quality: Float64Array;
  category: Int32Array;
  titles: number[][];
  itemsByTopic: number[][];
  bm25: Bm25;
}

function buildWorld(o: ResolvedGeneratorOptions): World {
  const rng = new Random(mix(o.seed, 1));
  const T = o.topics;
  const F = o.facets;
  const words: string[] = [''];
  const newWord = (name: string): number => {
    words.push(name);
    return words.length - 1;
  };
  // Sibling topics are pairs (2k, 2k+1); they share `ambiguousWords` words (like "apple").
  const topicWords: number[][] = Array.from({ length: T }, () => []);
  for (let t = 0; t < T; t += 2) {
    const sib = t + 1 < T ? t + 1 : -1;
    const shared = sib >= 0 ? Array.from({ length: o.ambiguousWords }, (_, j) => newWord(`amb${t / 2}.${j}`)) : [];
    for (const u of sib >= 0 ? [t, sib] : [t]) {
      const own = o.topicWords - shared.length;
      for (let j = 0; j < own; j++) topicWords[u].push(newWord(`t${u}.${j}`));
      topicWords[u].push(...shared);
    }
  }
  const facetWords = Array.from({ length: F }, (_, f) => Array.from({ length: o.facetWords }, (_, j) => newWord(`f${f}.${j}`)));
  const noise = Array.from({ length: o.noiseWords }, (_, j) => newWord(`n${j}`));
  // interpretation: topic popularity π_t ∝ (t+1)^-zipf; item topics ~ π.
  const pi = new Float64Array(T);
  for (let t = 0; t < T; t++) pi[t] = Math.pow(t + 1, -o.topicZipf);
  const piSum = pi.reduce((a, b) => a + b, 0);
  for (let t = 0; t < T; t++) pi[t] /= piSum;
  const N = o.items;
  const itemTopic = new Int32Array(N);
  const itemFacet = new Int32Array(N);
  const quality = new Float64Array(N);
  const category = new Int32Array(N);
  const titles: number[][] = [];
  const itemsByTopic: number[][] = Array.from({ length: T }, () => []);
  const pick = <X>(xs: readonly X[]): X => xs[rng.int(xs.length)];
  for (let i = 0; i < N; i++) {
    const t = categorical(rng, pi);
    const f = rng.int(F);
    itemTopic[i] = t;
    itemFacet[i] = f;
    quality[i] = rng.normal();
    category[i] = rng.uniform() < o.categoryNoise ? rng.int(T) : t;
    const title: number[] = [];
    const nTopic = 2 + rng.int(2);
    for (let j = 0; j < nTopic; j++) title.push(pick(topicWords[t]));
    const nFacet = 1 + rng.int(2);
    for (let j = 0; j < nFacet; j++) title.push(pick(facetWords[f]));
    if (noise.length && rng.uniform() < 0.6) title.push(pick(noise));
    if (T > 1 && rng.uniform() < 0.1) {
      let other = rng.int(T - 1);
      if (other >= t) other++;
      title.push(pick(topicWords[other]));
    }
    titles.push(title);
    itemsByTopic[t].push(i);
  }
  return { topicWords, facetWords, noise, words, pi, itemTopic, itemFacet, quality, category, titles, itemsByTopic, bm25: new Bm25(titles) };
}

/** A generated record with concrete (numeric) fields; assignable to SessionRecord. */
interface GenRecord {
  user: number;
  ts: number;
  session: number;
  request: number;
  query: { text: string; terms: number[] };
  shown: number[];
  clicks: number[];
  rel: number[];
  features?: Record<string, number[]>;
}

interface Raw {
  record: GenRecord;
  user: number;
  session: number;
  sessionStart: number;
  sessionEnd: number;
  truth: SyntheticTruth['requests'][number];
  terms: number[];
}

/**
 * Generates a synthetic search log. Deterministic from `seed` (each user has its own random stream,
 * so the first users of a larger run equal a smaller run's users for the same world).
 */
export function generateSessions(options: GeneratorOptions = {}): SyntheticDataset {
  const started = Date.now();
  const o: ResolvedGeneratorOptions = { ...GENERATOR_DEFAULTS };
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  checkOptions(o);
  const w = buildWorld(o);
  const T = o.topics;
  const F = o.facets;
  const U = o.users;
  const userTheta = new Float64Array(U * T);
  const userPhi = new Float64Array(U * T * F);
  const raws: Raw[] = [];
  let sessionId = 0;
  let switches = 0;
  let transitions = 0;
  let sameTopicClicks = 0;
  let clickPairs = 0;
  const alpha = Array.from(w.pi, (p) => o.userAlpha * T * p);
  const geomP = 1 / (o.meanSessions - 1); // 2 + geometric(failures) with mean meanSessions

  for (let u = 0; u < U; u++) {
    const rng = new Random(mix(o.seed, 1000 + u));
    const theta = dirichlet(rng, alpha);
    userTheta.set(theta, u * T);
    const g = Array.from({ length: F }, () => rng.normal());
    for (let t = 0; t < T; t++) {
      const logits = Array.from({ length: F }, (_, f) => o.gGlob * g[f] + o.gTopic * rng.normal());
      const m = Math.max(...logits);
      const e = logits.map((x) => Math.exp(x - m));
      const s = e.reduce((a, b) => a + b, 0);
      for (let f = 0; f < F; f++) userPhi[(u * T + t) * F + f] = e[f] / s;
    }
    const phi = (t: number, f: number): number => userPhi[(u * T + t) * F + f];
    let nSessions = 2;
    while (rng.uniform() >= geomP) nSessions++;
    const clickedBefore = new Set<number>();
    let lastClickTopic = -1;
    // interpretation: each user's clock starts uniformly within the first 3 days.
    let ts = o.startMs + Math.floor(rng.uniform() * 3 * 86400e3);
    for (let s = 0; s < nSessions; s++) {
      if (s > 0) ts += Math.floor((1 + 3 * rng.uniform()) * 86400e3);
      const nQueries = 1 + rng.int(o.maxQueriesPerSession);
      const sessionStart = ts;
      const sessionEnd = ts + (nQueries - 1) * 60e3;
      const session = sessionId++;
      let topic = -1;
      for (let qi = 0; qi < nQueries; qi++) {
        const prevTopic = topic;
        if (qi === 0 || rng.uniform() >= o.pStay) topic = categorical(rng, theta);
        if (qi > 0) {
          transitions++;
          if (topic !== prevTopic) switches++;
        }
        // Query text: 1–2 topic words (ambiguous ones included), and with p = 0.25 a facet word of
        // a facet drawn from the user's taste for this topic.
        const terms: number[] = [];
        const nw = 1 + rng.int(2);
        for (let j = 0; j < nw; j++) {
          const word = w.topicWords[topic][rng.int(w.topicWords[topic].length)];
          if (!terms.includes(word)) terms.push(word);
        }
        let namedFacet = -1;
        if (rng.uniform() < o.facetQueryProb) {
          namedFacet = categorical(rng, userPhi, (u * T + topic) * F, F);
          terms.push(w.facetWords[namedFacet][rng.int(w.facetWords[namedFacet].length)]);
        }
        // Exposure policy: lexical + semantic (+ sibling errors) + personalised + random slots.
        w.bm25.scoreAll(terms);
        const cands: number[] = [...w.bm25.top(o.lexicalSlots)];
        const sib = topic % 2 === 0 ? (topic + 1 < T ? topic + 1 : topic) : topic - 1;
        for (let j = 0; j < o.semanticSlots; j++) {
          const from = rng.uniform() < o.siblingRate ? sib : topic;
          const pool = w.itemsByTopic[from].length ? w.itemsByTopic[from] : w.itemsByTopic[topic];
          if (pool.length) cands.push(pool[rng.int(pool.length)]);
        }
        for (let j = 0; j < o.personalSlots; j++) {
          const pt = categorical(rng, theta);
          const pool = w.itemsByTopic[pt];
          if (pool.length) cands.push(pool[rng.int(pool.length)]);
        }
        for (let j = 0; j < o.randomSlots; j++) cands.push(rng.int(o.items));
        const unique = [...new Set(cands)];
        const prod = unique.map((i) => o.prodBm25 * w.bm25.get(i) + 0.5 * w.quality[i] + 0.8 * (w.category[i] === topic ? 1 : 0) + 0.7 * rng.normal());
        const order = unique.map((_, j) => j).sort((a, b) => prod[b] - prod[a] || unique[a] - unique[b]);
        const shown = order.slice(0, o.listSize).map((j) => unique[j]);
        // Ground-truth attractiveness, position-based clicks, position-free relevance.
        const clicks: number[] = [];
        const rel: number[] = [];
        const pAttr = new Float64Array(shown.length);
        const repeat = new Uint8Array(shown.length);
        shown.forEach((i, r) => {
          const ti = w.itemTopic[i];
          const fi = w.itemFacet[i];
          const on = ti === topic;
          repeat[r] = clickedBefore.has(i) ? 1 : 0;
          const logit =
            o.bias +
            0.8 * w.quality[i] +
            (on ? 3.0 + (o.wF * (phi(ti, fi) - 1 / F) * F) / 2 : 0) +
            (on && namedFacet === fi ? 1.5 : 0) +
            0.7 * repeat[r] +
            0.5 * rng.normal();
          const p = sigmoid(logit);
          pAttr[r] = p;
          const examined = rng.uniform() < Math.pow(r + 1, -o.eta);
          clicks.push(examined && rng.uniform() < p ? 1 : 0);
          rel.push(rng.uniform() < p ? 1 : 0);
        });
        // Next-click topic statistic: the first click of this request vs the user's last click
        // in earlier requests (clicks within one list are not "next" clicks).
        const firstClick = clicks.indexOf(1);
        if (firstClick >= 0) {
          if (lastClickTopic >= 0) {
            clickPairs++;
            if (w.itemTopic[shown[firstClick]] === lastClickTopic) sameTopicClicks++;
          }
          for (let r = shown.length - 1; r >= 0; r--) {
            if (clicks[r]) {
              lastClickTopic = w.itemTopic[shown[r]];
              break;
            }
          }
        }
        shown.forEach((i, r) => {
          if (clicks[r]) clickedBefore.add(i);
        });
        const record = {
          user: u,
          ts: ts + qi * 60e3,
          session,
          request: 0,
          query: { text: terms.map((t) => w.words[t]).join(' '), terms },
          shown,
          clicks,
          rel,
        };
        raws.push({ record, user: u, session, sessionStart, sessionEnd, truth: { topic, namedFacet, pAttr, repeat }, terms });
      }
      ts = sessionEnd;
    }
  }
  raws.sort((a, b) => a.record.ts - b.record.ts || a.user - b.user);
  raws.forEach((r, i) => (r.record.request = i));
  computeFeatures(raws, w, o);
  const stats = computeStats(raws, o, { switches, transitions, sameTopicClicks, clickPairs, sessions: sessionId });
  stats.generationMs = Date.now() - started;
  return {
    options: o,
    spec: SYNTHETIC_FEATURE_SPEC,
    records: raws.map((r) => r.record),
    catalogue: { titles: w.titles, category: w.category, style: w.itemFacet, words: w.words },
    truth: {
      itemTopic: w.itemTopic,
      itemFacet: w.itemFacet,
      itemQuality: w.quality,
      userTheta,
      userPhi,
      requests: raws.map((r) => r.truth),
    },
    stats,
  };
}

/**
 * Hand-crafted features, strictly causal: a request's features use only sessions that ended
 * before its session started (item statistics over all users; user–item counters over the user's
 * own earlier sessions). Sessions are committed to the statistics when they end.
 */
function computeFeatures(raws: Raw[], w: World, o: ResolvedGeneratorOptions): void {
  const N = o.items;
  const T = o.topics;
  const itemImp = new Float64Array(N);
  const itemClk = new Float64Array(N);
  let totImp = 0;
  let totClk = 0;
  const userItemClicks = new Map<number, Map<number, number>>();
  const userCatClicks = new Map<number, Float64Array>();
  // Sessions in order of end time, committed once the clock passes their end.
  const sessions = new Map<number, { end: number; user: number; raws: Raw[] }>();
  for (const r of raws) {
    let s = sessions.get(r.session);
    if (!s) sessions.set(r.session, (s = { end: r.sessionEnd, user: r.user, raws: [] }));
    s.raws.push(r);
  }
  const byEnd = [...sessions.values()].sort((a, b) => a.end - b.end || a.user - b.user);
  let next = 0;
  const commit = (s: { user: number; raws: Raw[] }): void => {
    let uic = userItemClicks.get(s.user);
    if (!uic) userItemClicks.set(s.user, (uic = new Map()));
    let ucc = userCatClicks.get(s.user);
    if (!ucc) userCatClicks.set(s.user, (ucc = new Float64Array(T)));
    for (const r of s.raws) {
      r.record.shown.forEach((i, j) => {
        itemImp[i]++;
        totImp++;
        if (r.record.clicks[j]) {
          itemClk[i]++;
          totClk++;
          uic!.set(i, (uic!.get(i) ?? 0) + 1);
          ucc![w.category[i]]++;
        }
      });
    }
  };
  for (const r of raws) {
    while (next < byEnd.length && byEnd[next].end < r.sessionStart) commit(byEnd[next++]);
    // ĝ: global CTR so far. interpretation: smoothed toward 5% over 100 pseudo-impressions so
    // it is positive (and the log finite) before the first click is committed.
    const g = (totClk + 5) / (totImp + 100);
    const uic = userItemClicks.get(r.user);
    const ucc = userCatClicks.get(r.user);
    let userTotal = 0;
    if (ucc) for (let t = 0; t < T; t++) userTotal += ucc[t];
    const bm25: number[] = [];
    const stats: number[] = [];
    const ui: number[] = [];
    const qs: number[] = [];
    const ctx: number[] = [];
    w.bm25.scoreAll(r.terms);
    r.record.shown.forEach((i, j) => {
      bm25.push(round(w.bm25.get(i)));
      stats.push(round(Math.log((itemClk[i] + 20 * g) / (itemImp[i] + 20))), round(Math.log1p(itemImp[i])));
      const cat = w.category[i];
      ui.push(uic?.get(i) ?? 0, round(((ucc ? ucc[cat] : 0) + 1) / (userTotal + T)));
      qs.push(r.terms.length);
      ctx.push(round(Math.log(j + 1)));
    });
    r.record.features = { text_match: bm25, item_stats: stats, user_item: ui, query_side: qs, context: ctx };
  }
}

/** Rounds to 6 significant decimals so JSONL output stays compact and stable across platforms. */
function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function computeStats(
  raws: Raw[],
  o: ResolvedGeneratorOptions,
  c: { switches: number; transitions: number; sameTopicClicks: number; clickPairs: number; sessions: number },
): GeneratorStats {
  let impressions = 0;
  let clicks = 0;
  let rels = 0;
  let zero = 0;
  const perUser = new Float64Array(o.users);
  for (const r of raws) {
    impressions += r.record.shown.length;
    let k = 0;
    for (let j = 0; j < r.record.clicks.length; j++) {
      k += r.record.clicks[j];
      rels += r.record.rel[j];
    }
    clicks += k;
    perUser[r.user] += k;
    if (k === 0) zero++;
  }
  const sorted = Array.from(perUser).sort((a, b) => a - b);
  const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return {
    users: o.users,
    items: o.items,
    sessions: c.sessions,
    requests: raws.length,
    impressions,
    clicks,
    ctr: clicks / Math.max(1, impressions),
    zeroClickRate: zero / Math.max(1, raws.length),
    topicSwitchRate: c.switches / Math.max(1, c.transitions),
    nextClickSameTopic: c.sameTopicClicks / Math.max(1, c.clickPairs),
    clicksPerUserMedian: q(0.5),
    clicksPerUserP90: q(0.9),
    relRate: rels / Math.max(1, impressions),
    generationMs: 0,
  };
}
