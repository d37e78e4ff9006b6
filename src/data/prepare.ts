// One call from records to what a trainer needs: the per-user time split, the vocabularies and
// timelines (query vocabulary from training records only), and the record indices of each split.
import type { SessionRecord } from './schema';
import { SessionIndex, type IndexOptions } from './batching';
import { TEST, TRAIN, VALID, splitByUserTime, splitIndices, type SplitOptions } from './split';

export interface PreparedData {
  records: readonly SessionRecord[];
  /** Split code per record (0 train, 1 validation, 2 test). */
  split: Uint8Array;
  index: SessionIndex;
  /** Record indices per split, requests with at least one shown item only. */
  train: number[];
  valid: number[];
  test: number[];
}

export function prepareData(records: readonly SessionRecord[], opts: { split?: SplitOptions; index?: Omit<IndexOptions, 'split'> } = {}): PreparedData {
  const split = splitByUserTime(records, opts.split);
  const index = new SessionIndex(records, { ...opts.index, split });
  const pick = (c: typeof TRAIN | typeof VALID | typeof TEST): number[] => splitIndices(split, c).filter((i) => records[i].shown.length > 0);
  return { records, split, index, train: pick(TRAIN), valid: pick(VALID), test: pick(TEST) };
}
