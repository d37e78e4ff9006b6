// Ranking metrics over scored candidate lists. Every metric treats tied scores as a random order and
// returns the *expected* value under it (average ranks for AUC; exact expectations for NDCG@k,
// HR@k and MRR), so a constant scorer gets the chance level rather than whatever order the input
// happened to be in.

/** Scores and labels of one list or of a whole flat collection. */
export type Numeric = ArrayLike<number>;

function checkPair(fn: string, scores: Numeric, labels: Numeric): void {
  if (scores.length !== labels.length) {
    throw new Error(`${fn}: scores and labels must have the same length, got ${scores.length} and ${labels.length}`);
  }
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i])) throw new Error(`${fn}: scores[${i}] must be finite, got ${scores[i]}`);
    if (!Number.isFinite(labels[i]) || labels[i] < 0) {
      throw new Error(`${fn}: labels[${i}] must be a finite number >= 0, got ${labels[i]}`);
    }
  }
}

/** Indices sorted by score, descending (stable, so ties keep input order; callers handle ties). */
function orderDesc(scores: Numeric, begin = 0, end = scores.length): number[] {
  const idx: number[] = [];
  for (let i = begin; i < end; i++) idx.push(i);
  idx.sort((a, b) => scores[b] - scores[a]);
  return idx;
}

/**
 * AUC of `scores` against binary labels (label > 0 is positive): the probability that a random
 * positive outranks a random negative, ties counting one half (Mann-Whitney with average ranks).
 * Returns NaN when one class is absent.
 */
export function auc(scores: Numeric, labels: Numeric): number {
  checkPair('auc', scores, labels);
  return aucRange(scores, labels, 0, scores.length);
}

function aucRange(scores: Numeric, labels: Numeric, begin: number, end: number): number {
  const idx: number[] = [];
  for (let i = begin; i < end; i++) idx.push(i);
  idx.sort((a, b) => scores[a] - scores[b]); // ascending for ranks
  let nPos = 0;
  let rankSumPos = 0;
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j < idx.length && scores[idx[j]] === scores[idx[i]]) j++;
    const avgRank = (i + 1 + j) / 2; // ranks i+1..j averaged
    for (let t = i; t < j; t++) {
      if (labels[idx[t]] > 0) {
        nPos++;
        rankSumPos += avgRank;
      }
    }
    i = j;
  }
  const nNeg = idx.length - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Result of a grouped AUC. */
export interface GaucResult {
  /** Impression-weighted mean of the per-group AUCs (NaN when no group has both classes). */
  gauc: number;
  /** Groups that had both classes and were averaged. */
  groups: number;
  /** Groups skipped because all their labels were one class. */
  skipped: number;
}

/**
 * GAUC: AUC per group (e.g. per query / request), averaged with weights = the group's impression
 * count; groups with a single class are skipped (their AUC is undefined). Groups are given as
 * packed offsets (group g = [offsets[g], offsets[g+1])) — the layout the batching code produces.
 */
export function gauc(scores: Numeric, labels: Numeric, offsets: Numeric): GaucResult {
  checkPair('gauc', scores, labels);
  checkOffsets('gauc', offsets, scores.length);
  let num = 0;
  let den = 0;
  let groups = 0;
  let skipped = 0;
  for (let g = 0; g + 1 < offsets.length; g++) {
    const a = aucRange(scores, labels, offsets[g], offsets[g + 1]);
    if (Number.isNaN(a)) {
      skipped++;
      continue;
    }
    const w = offsets[g + 1] - offsets[g];
    num += w * a;
    den += w;
    groups++;
  }
  return { gauc: den > 0 ? num / den : NaN, groups, skipped };
}

/**
 * Packed offsets from per-row group ids, requiring each group's rows to be contiguous
 * (a group id reappearing after another group is an error, since it usually means unsorted input).
 */
export function offsetsFromGroups(groups: ArrayLike<number | string>): Int32Array {
  const out: number[] = [0];
  const seen = new Set<number | string>();
  for (let i = 0; i < groups.length; i++) {
    if (i > 0 && groups[i] === groups[i - 1]) continue;
    if (seen.has(groups[i])) {
      throw new Error(`offsetsFromGroups: group ${String(groups[i])} is not contiguous (reappears at row ${i}); sort rows by group first`);
    }
    seen.add(groups[i]);
    if (i > 0) out.push(i);
  }
  if (groups.length > 0) out.push(groups.length);
  return Int32Array.from(out);
}

function checkOffsets(fn: string, offsets: Numeric, n: number): void {
  if (offsets.length < 1 || offsets[0] !== 0 || offsets[offsets.length - 1] !== n) {
    throw new Error(`${fn}: offsets must start at 0 and end at ${n} (the number of rows), got [${offsets[0]} .. ${offsets[offsets.length - 1]}] (length ${offsets.length})`);
  }
  for (let g = 0; g + 1 < offsets.length; g++) {
    if (!(offsets[g + 1] >= offsets[g]) || !Number.isInteger(offsets[g + 1])) {
      throw new Error(`${fn}: offsets must be non-decreasing integers, got offsets[${g}]=${offsets[g]}, offsets[${g + 1}]=${offsets[g + 1]}`);
    }
  }
}

/** Tie blocks of one list in descending score order: start position, size, and member indices. */
function tieBlocks(scores: Numeric, begin: number, end: number): { start: number; members: number[] }[] {
  const idx = orderDesc(scores, begin, end);
  const blocks: { start: number; members: number[] }[] = [];
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j < idx.length && scores[idx[j]] === scores[idx[i]]) j++;
    blocks.push({ start: i, members: idx.slice(i, j) });
    i = j;
  }
  return blocks;
}

/** Gain of a label for NDCG: `linear` uses the label, `exp2` uses 2^label − 1 (graded labels). */
export type GainKind = 'linear' | 'exp2';

function gainOf(label: number, kind: GainKind): number {
  return kind === 'exp2' ? 2 ** label - 1 : label;
}

/**
 * NDCG@k of one list (labels are gains, graded or binary). Tied items share the mean discount of
 * the positions their block occupies (the expectation under a random order of the tie). Returns
 * NaN for a list with no positive gain (undefined IDCG).
 */
export function ndcgAtK(scores: Numeric, labels: Numeric, k: number, gain: GainKind = 'linear'): number {
  checkPair('ndcgAtK', scores, labels);
  checkK('ndcgAtK', k);
  return ndcgRange(scores, labels, 0, scores.length, k, gain);
}

function discount(pos: number): number {
  return 1 / Math.log2(pos + 2); // pos is 0-based
}

function ndcgRange(scores: Numeric, labels: Numeric, begin: number, end: number, k: number, gain: GainKind): number {
  const gains: number[] = [];
  for (let i = begin; i < end; i++) gains.push(gainOf(labels[i], gain));
  gains.sort((a, b) => b - a);
  let idcg = 0;
  for (let p = 0; p < Math.min(k, gains.length); p++) idcg += gains[p] * discount(p);
  if (idcg <= 0) return NaN;
  let dcg = 0;
  for (const { start, members } of tieBlocks(scores, begin, end)) {
    if (start >= k) break;
    let meanDisc = 0;
    for (let p = start; p < start + members.length && p < k; p++) meanDisc += discount(p);
    meanDisc /= members.length;
    for (const i of members) dcg += gainOf(labels[i], gain) * meanDisc;
  }
  return dcg / idcg;
}

function checkK(fn: string, k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new Error(`${fn}: k must be an integer >= 1, got ${k}`);
}

/** C(n, r) / C(m, r) computed as a product (stays in range for list sizes in the thousands). */
function chooseRatio(n: number, m: number, r: number): number {
  if (r > n) return 0;
  let v = 1;
  for (let t = 0; t < r; t++) v *= (n - t) / (m - t);
  return v;
}

/**
 * HR@k of one list: 1 if some positive (label > 0) is in the top k. With ties, the expected value
 * under a random order of each tie block. NaN for a list with no positive.
 */
export function hitRateAtK(scores: Numeric, labels: Numeric, k: number): number {
  checkPair('hitRateAtK', scores, labels);
  checkK('hitRateAtK', k);
  return hrRange(scores, labels, 0, scores.length, k);
}

function hrRange(scores: Numeric, labels: Numeric, begin: number, end: number, k: number): number {
  let anyPos = false;
  for (let i = begin; i < end; i++) if (labels[i] > 0) anyPos = true;
  if (!anyPos) return NaN;
  for (const { start, members } of tieBlocks(scores, begin, end)) {
    if (start >= k) return 0;
    const m = members.length;
    let p = 0;
    for (const i of members) if (labels[i] > 0) p++;
    if (p === 0) continue;
    const slots = Math.min(m, k - start);
    // P(no positive among the `slots` first places of a random order of the block) = C(m−p, slots)/C(m, slots)
    return 1 - chooseRatio(m - p, m, slots);
  }
  return 0;
}

/**
 * Reciprocal rank of the first positive (label > 0) in one list; with ties, its expectation under
 * a random order of the tie block that holds the first positive. NaN for a list with no positive.
 */
export function reciprocalRank(scores: Numeric, labels: Numeric): number {
  checkPair('reciprocalRank', scores, labels);
  return rrRange(scores, labels, 0, scores.length);
}

function rrRange(scores: Numeric, labels: Numeric, begin: number, end: number): number {
  for (const { start, members } of tieBlocks(scores, begin, end)) {
    const m = members.length;
    let p = 0;
    for (const i of members) if (labels[i] > 0) p++;
    if (p === 0) continue;
    // The first positive's offset j in the block: P(j) = C(m−1−j, p−1) / C(m, p).
    let e = 0;
    let prob = p / m; // P(j = 0)
    for (let j = 0; j <= m - p; j++) {
      e += prob / (start + j + 1);
      // P(j+1)/P(j) = (m−1−j−(p−1)) / (m−1−j)
      prob *= (m - j - p) / (m - 1 - j);
    }
    return e;
  }
  return NaN;
}

/** Options of {@link rankingMetrics}. */
export interface RankingMetricsOptions {
  /** Cut-off for NDCG@k and HR@k (default 10). */
  k?: number;
  /** Gain for NDCG (default `linear`). */
  gain?: GainKind;
}

/** Within-list metrics over many lists; list means skip lists without a positive. */
export interface RankingMetrics {
  /** Global AUC over all rows (binary labels: label > 0). */
  auc: number;
  /** Impression-weighted per-list AUC (lists with one class skipped). */
  gauc: number;
  ndcg: number;
  hr: number;
  mrr: number;
  k: number;
  /** Number of lists, and of lists with at least one positive (the NDCG/HR/MRR denominators). */
  lists: number;
  listsWithPositive: number;
  /** Lists used by GAUC (both classes present). */
  gaucLists: number;
  rows: number;
}

/**
 * All list metrics at once over a packed collection of lists (list g = rows
 * [offsets[g], offsets[g+1])): AUC, GAUC, NDCG@k, HR@k, MRR.
 */
export function rankingMetrics(scores: Numeric, labels: Numeric, offsets: Numeric, opts: RankingMetricsOptions = {}): RankingMetrics {
  const k = opts.k ?? 10;
  checkK('rankingMetrics', k);
  checkPair('rankingMetrics', scores, labels);
  checkOffsets('rankingMetrics', offsets, scores.length);
  const g = gauc(scores, labels, offsets);
  let ndcg = 0;
  let hr = 0;
  let mrr = 0;
  let withPos = 0;
  for (let l = 0; l + 1 < offsets.length; l++) {
    const b = offsets[l];
    const e = offsets[l + 1];
    const n = ndcgRange(scores, labels, b, e, k, opts.gain ?? 'linear');
    if (Number.isNaN(n)) continue;
    withPos++;
    ndcg += n;
    hr += hrRange(scores, labels, b, e, k);
    mrr += rrRange(scores, labels, b, e);
  }
  return {
    auc: aucRange(scores, labels, 0, scores.length),
    gauc: g.gauc,
    ndcg: withPos ? ndcg / withPos : NaN,
    hr: withPos ? hr / withPos : NaN,
    mrr: withPos ? mrr / withPos : NaN,
    k,
    lists: offsets.length - 1,
    listsWithPositive: withPos,
    gaucLists: g.groups,
    rows: scores.length,
  };
}
