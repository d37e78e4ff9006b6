// Per-user, time-based train/validation/test split (data.md §4.5): each user's last session is test,
// the one before is validation, the rest is training. Sessions come from the record's `session` id
// or, when a source has none (KuaiSAR, JDsearch), from inactivity gaps.
import type { SessionRecord } from './schema';

export const TRAIN = 0;
export const VALID = 1;
export const TEST = 2;
export type SplitCode = typeof TRAIN | typeof VALID | typeof TEST;

export interface SplitOptions {
  /** Sessions per user for test (default 1, the last). */
  testSessions?: number;
  /** Sessions per user for validation (default 1, the one before test). */
  validSessions?: number;
  /** Gap that starts a new session when records carry no session id (default 30 min). */
  sessionGapMs?: number;
}

/**
 * Split code per record (0 train, 1 validation, 2 test), same order as `records`. A user with fewer
 * sessions than test + validation fills test first, then validation.
 */
export function splitByUserTime(records: readonly SessionRecord[], opts: SplitOptions = {}): Uint8Array {
  const nTest = opts.testSessions ?? 1;
  const nValid = opts.validSessions ?? 1;
  const gap = opts.sessionGapMs ?? 30 * 60e3;
  if (!Number.isInteger(nTest) || nTest < 0 || !Number.isInteger(nValid) || nValid < 0) {
    throw new Error(`splitByUserTime: testSessions and validSessions must be integers >= 0, got ${nTest} and ${nValid}`);
  }
  const byUser = new Map<string, number[]>();
  records.forEach((r, i) => {
    const k = String(r.user);
    let l = byUser.get(k);
    if (!l) byUser.set(k, (l = []));
    l.push(i);
  });
  const out = new Uint8Array(records.length);
  for (const idx of byUser.values()) {
    idx.sort((a, b) => records[a].ts - records[b].ts || a - b);
    // Session number per record, in time order.
    const sess: number[] = [];
    let s = -1;
    let prevKey: string | undefined;
    let prevTs = -Infinity;
    const seen = new Map<string, number>();
    for (const i of idx) {
      const r = records[i];
      if (r.session !== undefined) {
        const key = String(r.session);
        const known = seen.get(key);
        if (known !== undefined) sess.push(known);
        else {
          seen.set(key, ++s);
          sess.push(s);
        }
        prevKey = key;
      } else {
        if (prevKey !== undefined || r.ts - prevTs > gap || s < 0) s++;
        prevKey = undefined;
        sess.push(s);
      }
      prevTs = r.ts;
    }
    const nSess = s + 1;
    idx.forEach((i, j) => {
      const fromEnd = nSess - 1 - sess[j];
      out[i] = fromEnd < nTest ? TEST : fromEnd < nTest + nValid ? VALID : TRAIN;
    });
  }
  return out;
}

/** Record indices of one split, in input order. */
export function splitIndices(codes: Uint8Array, which: SplitCode): number[] {
  const out: number[] = [];
  for (let i = 0; i < codes.length; i++) if (codes[i] === which) out.push(i);
  return out;
}
