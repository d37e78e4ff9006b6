// Group-relative advantages (DESIGN.md §4.3, research/papers.md §6.1, §7.3). Small host-side
// arithmetic over rewards: one value per sampled response, grouped by prompt.
//   GRPO:    A_i = (R_i − mean_g) / (std_g + eps)        std_g unbiased (torch.std, as in verl)
//   Dr.GRPO: A_i = R_i − mean_g
//   RLOO:    A_i = R_i − mean_{j≠i in g} R_j = G/(G−1) · (R_i − mean_g)
// A group of one response has no baseline: verl uses mean 0 and std 1 there, and so do we (every
// mode then gives A_i = R_i, GRPO divides by 1 + eps).

/** Which responses belong together: contiguous groups of `groupSize`, or a group id per response. */
export type Grouping = { groupSize: number } | { groupIds: ArrayLike<number | string> };

export type AdvantageMode = 'grpo' | 'drgrpo' | 'rloo';

export interface GroupAdvantageOptions {
  /** Default 'grpo'. */
  mode?: AdvantageMode;
  /** Added to the std (GRPO). Default 1e-6 (verl). */
  eps?: number;
  /** Standard deviation estimator for GRPO: 'unbiased' (G−1, verl/torch default) or 'biased' (G). */
  std?: 'unbiased' | 'biased';
}

export function checkFiniteArray(op: string, name: string, a: unknown): ArrayLike<number> {
  if (a === null || typeof a !== 'object' || typeof (a as { length?: unknown }).length !== 'number') {
    throw new TypeError(`${op}: ${name}: expected an array of numbers, got ${a === null ? 'null' : typeof a}`);
  }
  const arr = a as ArrayLike<unknown>;
  for (let i = 0; i < arr.length; i++) {
    const v = arr[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${op}: ${name}: expected finite numbers, got ${String(v)} at index ${i}`);
  }
  return arr as ArrayLike<number>;
}

/** Group index (0..G-1 in order of first appearance) of each of n responses, and the groups. */
export function resolveGroups(op: string, n: number, grouping: Grouping): { groupOf: Int32Array; members: number[][] } {
  if (grouping === null || typeof grouping !== 'object') throw new TypeError(`${op}: grouping: expected { groupSize } or { groupIds }, got ${grouping === null ? 'null' : typeof grouping}`);
  const groupOf = new Int32Array(n);
  const members: number[][] = [];
  if ('groupSize' in grouping) {
    const g = grouping.groupSize;
    if (typeof g !== 'number' || !Number.isInteger(g) || g < 1) throw new RangeError(`${op}: groupSize: expected a positive integer, got ${String(g)}`);
    if (n % g !== 0) throw new RangeError(`${op}: groupSize: expected a divisor of the number of responses ${n}, got ${g}`);
    for (let i = 0; i < n; i++) {
      const k = Math.floor(i / g);
      groupOf[i] = k;
      if (members[k] === undefined) members[k] = [];
      members[k].push(i);
    }
  } else if ('groupIds' in grouping) {
    const ids = grouping.groupIds;
    if (ids === null || typeof ids !== 'object' || ids.length !== n) {
      throw new RangeError(`${op}: groupIds: expected ${n} ids (one per response), got ${ids === null || typeof ids !== 'object' ? String(ids) : ids.length}`);
    }
    const index = new Map<number | string, number>();
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      if (typeof id !== 'number' && typeof id !== 'string') throw new TypeError(`${op}: groupIds: expected numbers or strings, got ${typeof id} at index ${i}`);
      let k = index.get(id);
      if (k === undefined) {
        k = members.length;
        index.set(id, k);
        members.push([]);
      }
      groupOf[i] = k;
      members[k].push(i);
    }
  } else {
    throw new TypeError(`${op}: grouping: expected { groupSize } or { groupIds }`);
  }
  return { groupOf, members };
}

/** One advantage per response (constant over its tokens). */
export function groupAdvantages(rewards: ArrayLike<number>, grouping: Grouping, opts: GroupAdvantageOptions = {}): Float64Array {
  const op = 'groupAdvantages';
  const r = checkFiniteArray(op, 'rewards', rewards);
  const mode = opts.mode ?? 'grpo';
  if (mode !== 'grpo' && mode !== 'drgrpo' && mode !== 'rloo') throw new Error(`${op}: mode: expected 'grpo', 'drgrpo' or 'rloo', got ${JSON.stringify(mode)}`);
  const eps = opts.eps ?? 1e-6;
  if (typeof eps !== 'number' || !(eps >= 0) || !Number.isFinite(eps)) throw new RangeError(`${op}: eps: expected a finite number >= 0, got ${String(eps)}`);
  const stdKind = opts.std ?? 'unbiased';
  if (stdKind !== 'unbiased' && stdKind !== 'biased') throw new Error(`${op}: std: expected 'unbiased' or 'biased', got ${JSON.stringify(stdKind)}`);
  const { members } = resolveGroups(op, r.length, grouping);
  const out = new Float64Array(r.length);
  for (const g of members) {
    const G = g.length;
    if (G === 1) {
      out[g[0]] = mode === 'grpo' ? r[g[0]] / (1 + eps) : r[g[0]];
      continue;
    }
    let mean = 0;
    for (const i of g) mean += r[i];
    mean /= G;
    let ss = 0;
    for (const i of g) ss += (r[i] - mean) ** 2;
    const std = Math.sqrt(ss / (stdKind === 'unbiased' ? G - 1 : G));
    for (const i of g) {
      const c = r[i] - mean;
      out[i] = mode === 'grpo' ? c / (std + eps) : mode === 'drgrpo' ? c : (c * G) / (G - 1);
    }
  }
  return out;
}

export interface StepwiseOptions {
  /** 'std' (group-normalised, default) or 'mean' (baseline only, Dr.GRPO style). */
  normalize?: 'std' | 'mean';
  eps?: number;
}

/**
 * Step-wise advantages (AFRL Stepwise-GRPO, research/papers.md §4.2, INFERRED): response i has
 * rewards r_{i,k} for its steps k = 0..S_i−1 (step 0 = the answer token). Each step index gets its
 * own group-normalised advantage over the responses of the group that have that step:
 * A_{i,k} = (r_{i,k} − mean_j r_{j,k}) / (std_j r_{j,k} + eps). Returns A as ragged arrays.
 */
export function stepwiseAdvantages(stepRewards: readonly (readonly number[])[], grouping: Grouping, opts: StepwiseOptions = {}): number[][] {
  const op = 'stepwiseAdvantages';
  if (!Array.isArray(stepRewards)) throw new TypeError(`${op}: stepRewards: expected an array (one array of step rewards per response), got ${typeof stepRewards}`);
  stepRewards.forEach((s, i) => checkFiniteArray(op, `stepRewards[${i}]`, s));
  const normalize = opts.normalize ?? 'std';
  if (normalize !== 'std' && normalize !== 'mean') throw new Error(`${op}: normalize: expected 'std' or 'mean', got ${JSON.stringify(normalize)}`);
  const eps = opts.eps ?? 1e-6;
  const { members } = resolveGroups(op, stepRewards.length, grouping);
  const out = stepRewards.map((s) => new Array<number>(s.length).fill(0));
  for (const g of members) {
    const maxS = Math.max(0, ...g.map((i) => stepRewards[i].length));
    for (let k = 0; k < maxS; k++) {
      const who = g.filter((i) => k < stepRewards[i].length);
      const vals = who.map((i) => stepRewards[i][k]);
      const adv = groupAdvantages(vals, { groupSize: vals.length }, { mode: normalize === 'std' ? 'grpo' : 'drgrpo', eps });
      who.forEach((i, j) => (out[i][k] = adv[j]));
    }
  }
  return out;
}

/**
 * Spreads step advantages over tokens: `stepEnds[i][k]` is the exclusive end token of step k of
 * response i (increasing). Returns a flat [N, T] Float32Array (tokens after the last step get 0),
 * ready for `tensor(a, [N, T])` as per-token advantages.
 */
export function stepwiseTokenAdvantages(stepAdv: readonly (readonly number[])[], stepEnds: readonly (readonly number[])[], T: number): Float32Array {
  const op = 'stepwiseTokenAdvantages';
  if (!Number.isInteger(T) || T < 0) throw new RangeError(`${op}: T: expected a non-negative integer, got ${T}`);
  if (stepAdv.length !== stepEnds.length) throw new RangeError(`${op}: stepEnds: expected ${stepAdv.length} responses (as stepAdv), got ${stepEnds.length}`);
  const out = new Float32Array(stepAdv.length * T);
  for (let i = 0; i < stepAdv.length; i++) {
    const ends = stepEnds[i];
    if (ends.length !== stepAdv[i].length) throw new RangeError(`${op}: stepEnds[${i}]: expected ${stepAdv[i].length} step ends, got ${ends.length}`);
    let start = 0;
    for (let k = 0; k < ends.length; k++) {
      const e = ends[k];
      if (!Number.isInteger(e) || e < start || e > T) throw new RangeError(`${op}: stepEnds[${i}][${k}]: expected an integer in [${start}, ${T}], got ${e}`);
      for (let t = start; t < e; t++) out[i * T + t] = stepAdv[i][k];
      start = e;
    }
  }
  return out;
}

/** Per-response group pass rate p_g = mean of (reward > threshold) over its group (binary rewards: threshold 0). */
export function groupPassRates(rewards: ArrayLike<number>, grouping: Grouping, threshold = 0): Float64Array {
  const r = checkFiniteArray('groupPassRates', 'rewards', rewards);
  const { members } = resolveGroups('groupPassRates', r.length, grouping);
  const out = new Float64Array(r.length);
  for (const g of members) {
    const p = g.filter((i) => r[i] > threshold).length / g.length;
    for (const i of g) out[i] = p;
  }
  return out;
}
