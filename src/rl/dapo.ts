// DAPO extras (research/papers.md §6.1, §7.3): dynamic-sampling filter and the soft overlong
// penalty. The filter keeps only groups whose rewards are not all equal (for binary rewards:
// 0 < #correct < G): such groups have zero advantage everywhere and only dilute the batch.
import { checkFiniteArray, resolveGroups, type Grouping } from './advantages';

export interface DapoFilterResult {
  /** Per response: whether its group is kept. */
  keep: boolean[];
  /** Indices of the kept responses, in order. */
  indices: number[];
  keptGroups: number;
  droppedGroups: number;
}

/** Drops groups whose rewards are all equal (|max − min| <= tol). */
export function dapoFilter(rewards: ArrayLike<number>, grouping: Grouping, tol = 0): DapoFilterResult {
  const op = 'dapoFilter';
  const r = checkFiniteArray(op, 'rewards', rewards);
  if (typeof tol !== 'number' || !(tol >= 0)) throw new RangeError(`${op}: tol: expected a number >= 0, got ${String(tol)}`);
  const { members } = resolveGroups(op, r.length, grouping);
  const keep = new Array<boolean>(r.length).fill(false);
  let kept = 0;
  for (const g of members) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const i of g) {
      lo = Math.min(lo, r[i]);
      hi = Math.max(hi, r[i]);
    }
    const k = hi - lo > tol;
    if (k) kept++;
    for (const i of g) keep[i] = k;
  }
  const indices: number[] = [];
  keep.forEach((k, i) => k && indices.push(i));
  return { keep, indices, keptGroups: kept, droppedGroups: members.length - kept };
}

/**
 * DAPO soft overlong punishment added to the reward: 0 up to maxLen − cacheLen, then a linear ramp
 * to −1 at maxLen, −1 beyond.
 */
export function dapoOverlongPenalty(length: number, maxLen: number, cacheLen: number): number {
  const op = 'dapoOverlongPenalty';
  for (const [n, v] of [['length', length], ['maxLen', maxLen], ['cacheLen', cacheLen]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`${op}: ${n}: expected a finite number >= 0, got ${String(v)}`);
  }
  if (cacheLen > maxLen) throw new RangeError(`${op}: cacheLen: expected <= maxLen (${maxLen}), got ${cacheLen}`);
  const free = maxLen - cacheLen;
  if (length <= free) return 0;
  if (length <= maxLen) return cacheLen === 0 ? 0 : (free - length) / cacheLen;
  return -1;
}
