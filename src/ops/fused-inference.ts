// Checks shared by the fused inference ops (hfgContextLayer, hfgRankHead, linearHstuStep,
// linearHstuBlock, embeddingBag): they run on the CPU only and record no gradient, so a caller that
// needs either must use the composed ops.
import type { NativeStorage } from '../native';
import { needsGrad } from '../autograd';
import type { Tensor } from '../tensor';
import { sameDevice } from './validate';

export function requireCpuInference(op: string, named: Record<string, Tensor | null | undefined>, device: string): void {
  if (sameDevice(op, named) !== 'cpu') {
    throw new Error(`${op}: expected CPU tensors (the fused op is CPU only; on a GPU use the composed modules), got ${device}`);
  }
  if (needsGrad(Object.values(named))) throw new Error(`${op}: inference only: an input requires a gradient (call it under noGrad(), or use the modules for training)`);
}

/** A tensor's native storage, or null for an absent optional argument. */
export const storageOf = (t: Tensor | null | undefined): NativeStorage | null => (t == null ? null : t.storage);

/** A prepared plan's native handle, or the error every call on a disposed plan gives. */
export function livePlan<H>(op: string, handle: H | null): H {
  if (handle === null) throw new Error(`${op}: the plan was disposed`);
  return handle;
}
