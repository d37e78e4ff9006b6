// Bags of embedding rows, fused for CPU inference: out[i] = Σ_j w[i, j] · table[ids[i, j]] (or the
// mean over the bag's non-padding slots), as torch.nn.EmbeddingBag's sum / mean modes.
// It is what the term pooling of the QGS pair tokens computes composed (gather [N, m, D] → multiply
// by the weights → sum over m): at serving sizes (1,000 history tokens × 4 terms) the composed form
// spent ~0.2 ms of a ~2 ms cold encode on its [N, m, D] temporaries. CPU and inference only (no
// gradient); in training and on a GPU the composed ops run.
import { native } from '../native';
import { Tensor, empty } from '../tensor';
import { checkTensor } from './validate';
import { requireCpuInference, storageOf } from './fused-inference';
import { callNative } from './jagged';

declare module '../native' {
  interface NativeBinding {
    ewEmbeddingBag(
      out: NativeStorage, table: NativeStorage, ids: NativeStorage, weights: NativeStorage | null, V: number, D: number, N: number, m: number,
      mean: boolean, paddingIdx: number,
    ): void;
  }
}

const OP = 'embeddingBag';

export interface EmbeddingBagOptions {
  /** 'sum' (default) or 'mean' over the bag's non-padding slots (a bag of padding only is 0). */
  mode?: 'sum' | 'mean';
  /** [N, m] f32 per-slot weights ('sum' only; weight-0 slots are skipped). */
  weights?: Tensor | null;
  /** An id that marks an empty slot: skipped, and not counted by 'mean' (default: none). */
  paddingIdx?: number | null;
}

/** table [V, D] f32 and ids [N, m] i32 in [0, V) (or paddingIdx) → [N, D]. */
export function embeddingBag(table: Tensor, ids: Tensor, opts: EmbeddingBagOptions = {}): Tensor {
  checkTensor(OP, 'table', table, { dtype: 'f32', rank: 2 });
  checkTensor(OP, 'ids', ids, { dtype: 'i32', rank: 2 });
  const [V, D] = table.shape;
  const [N, m] = ids.shape;
  if (m < 1) throw new RangeError(`${OP}: ids: expected at least one slot per bag (shape [N, m >= 1]), got [${ids.shape.join(', ')}]`);
  if (D < 1) throw new RangeError(`${OP}: table: expected rows of at least one value, got [${table.shape.join(', ')}]`);
  if (typeof opts !== 'object' || opts === null) throw new TypeError(`${OP}: options: expected an object, got ${opts === null ? 'null' : typeof opts}`);
  const mode = opts.mode ?? 'sum';
  if (mode !== 'sum' && mode !== 'mean') throw new TypeError(`${OP}: options.mode: expected 'sum' or 'mean', got ${String(mode)}`);
  const weights = opts.weights ?? null;
  if (weights !== null) {
    checkTensor(OP, 'weights', weights, { dtype: 'f32', shape: [N, m] });
    if (mode === 'mean') throw new TypeError(`${OP}: options.weights: per-slot weights are for mode 'sum' only, got mode 'mean'`);
  }
  const pad = opts.paddingIdx ?? -1;
  if (!(Number.isInteger(pad) && pad >= -1 && pad <= 2 ** 31 - 1)) throw new RangeError(`${OP}: options.paddingIdx: expected a non-negative int32 or null, got ${String(opts.paddingIdx)}`);
  requireCpuInference(OP, { table, ids, weights }, table.device);
  const out = empty([N, D]);
  try {
    callNative(OP, () => native().ewEmbeddingBag(out.storage, table.storage, ids.storage, storageOf(weights), V, D, N, m, mode === 'mean', pad));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}
