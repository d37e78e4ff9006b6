// Matrix products (DESIGN.md §2: GEMM goes through BLAS — OpenBLAS on CPU, cuBLAS on CUDA):
// ops.matmul (2-D and batched, transposes, a 2-D operand broadcast over the batch) and the fused
// ops.linear (GEMM + bias in one pass over the output).
import { native } from '../native';
import { Tensor, empty, formatShape, shapeSize } from '../tensor';
import { record } from '../autograd';
import { checkTensor, sameDevice } from './validate';

declare module '../native' {
  interface NativeBinding {
    /** For b < batch: C_b = alpha op(A_b) op(B_b) + beta C_b (row-major; stride 0 broadcasts; strideC 0 sums over b). */
    gemm(
      c: NativeStorage, a: NativeStorage, b: NativeStorage, batch: number, m: number, n: number, k: number,
      transA: boolean, transB: boolean, strideA: number, strideB: number, strideC: number, alpha: number, beta: number,
    ): void;
    /** y[r, :] = bias for r < rows. */
    broadcastRows(y: NativeStorage, bias: NativeStorage, rows: number, n: number): void;
    /** out[j] = sum_r src[r, j]. */
    sumRows(out: NativeStorage, src: NativeStorage, rows: number, n: number): void;
    /** GFLOP/s of cblas_sgemm timed directly in C++ (median of reps). */
    blasSgemmRate(n: number, reps: number): number;
    /** Which GEMM implementation each device uses. */
    gemmBackend(): { cpu: string; cuda: string };
  }
}

export interface MatmulOptions {
  /** Use the transpose of a's last two axes. */
  transA?: boolean;
  /** Use the transpose of b's last two axes. */
  transB?: boolean;
}

function optBool(op: string, name: string, v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new TypeError(`${op}: ${name}: expected a boolean, got ${typeof v}`);
  return v;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Matrix product op(a) · op(b) over the last two axes. Leading (batch) axes must be equal, or one
 * operand is 2-D and is broadcast across the other's batch. Shapes: op(a) [..., m, k], op(b)
 * [..., k, n] → [..., m, n]. Differentiable in both operands.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const op = 'matmul';
  checkTensor(op, 'a', a, { dtype: 'f32' });
  checkTensor(op, 'b', b, { dtype: 'f32' });
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: options: expected an object, got ${String(opts)}`);
  const ta = optBool(op, 'transA', opts.transA);
  const tb = optBool(op, 'transB', opts.transB);
  if (a.rank < 2) throw new Error(`${op}: a: expected rank >= 2, got rank ${a.rank} (shape ${formatShape(a.shape)})`);
  if (b.rank < 2) throw new Error(`${op}: b: expected rank >= 2, got rank ${b.rank} (shape ${formatShape(b.shape)})`);
  sameDevice(op, { a, b });
  const [a0, a1] = a.shape.slice(-2);
  const [b0, b1] = b.shape.slice(-2);
  const m = ta ? a1 : a0;
  const k = ta ? a0 : a1;
  const kb = tb ? b1 : b0;
  const n = tb ? b0 : b1;
  if (k !== kb) {
    throw new Error(
      `${op}: inner dimensions differ: op(a) is [${m}, ${k}] (a ${formatShape(a.shape)}${ta ? ', transA' : ''}) but op(b) is [${kb}, ${n}] (b ${formatShape(b.shape)}${tb ? ', transB' : ''})`,
    );
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  let batchShape: number[];
  if (batchA.length === 0) batchShape = [...batchB];
  else if (batchB.length === 0 || sameDims(batchA, batchB)) batchShape = [...batchA];
  else {
    throw new Error(
      `${op}: batch dimensions must be equal or one operand 2-D: a has batch ${formatShape(batchA)}, b has batch ${formatShape(batchB)}`,
    );
  }
  const batch = shapeSize(batchShape);
  const sA = batchA.length === 0 ? 0 : m * k;
  const sB = batchB.length === 0 ? 0 : k * n;
  const out = empty([...batchShape, m, n], { device: a.device });
  native().gemm(out.storage, a.storage, b.storage, batch, m, n, k, ta, tb, sA, sB, m * n, 1, 0);
  return record('matmul', out, [a, b], (g) => {
    const gs = g.storage;
    const sC = m * n;
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    const nb = native();
    if (a.requiresGrad) {
      da = empty(a.shape, { device: a.device });
      const sDa = sA; // 0 when a was broadcast: the batch contributions add up
      if (!ta && !tb) nb.gemm(da.storage, gs, b.storage, batch, m, k, n, false, true, sC, sB, sDa, 1, 0);
      else if (!ta && tb) nb.gemm(da.storage, gs, b.storage, batch, m, k, n, false, false, sC, sB, sDa, 1, 0);
      else if (ta && !tb) nb.gemm(da.storage, b.storage, gs, batch, k, m, n, false, true, sB, sC, sDa, 1, 0);
      else nb.gemm(da.storage, b.storage, gs, batch, k, m, n, true, true, sB, sC, sDa, 1, 0);
    }
    if (b.requiresGrad) {
      db = empty(b.shape, { device: b.device });
      const sDb = sB;
      if (!ta && !tb) nb.gemm(db.storage, a.storage, gs, batch, k, n, m, true, false, sA, sC, sDb, 1, 0);
      else if (!ta && tb) nb.gemm(db.storage, gs, a.storage, batch, n, k, m, true, false, sC, sA, sDb, 1, 0);
      else if (ta && !tb) nb.gemm(db.storage, a.storage, gs, batch, k, n, m, false, false, sA, sC, sDb, 1, 0);
      else nb.gemm(db.storage, gs, a.storage, batch, n, k, m, true, true, sC, sA, sDb, 1, 0);
    }
    return [da, db];
  });
}

/**
 * Fused affine map y = x Wᵀ + bias over the last axis: x [..., in], weight [out, in] (PyTorch
 * layout), bias [out] → [..., out]. The bias is written first and the GEMM accumulates onto it,
 * so there is no second pass over the output.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const op = 'linear';
  checkTensor(op, 'x', x, { dtype: 'f32' });
  checkTensor(op, 'weight', weight, { dtype: 'f32', rank: 2 });
  if (x.rank < 1) throw new Error(`${op}: x: expected rank >= 1, got a scalar`);
  const [outF, inF] = weight.shape;
  const xin = x.shape[x.rank - 1];
  if (xin !== inF) {
    throw new Error(`${op}: x: expected last dimension ${inF} (weight is ${formatShape(weight.shape)}), got ${formatShape(x.shape)}`);
  }
  if (bias != null) checkTensor(op, 'bias', bias, { dtype: 'f32', shape: [outF] });
  sameDevice(op, { x, weight, bias });
  const rows = shapeSize(x.shape.slice(0, -1));
  const out = empty([...x.shape.slice(0, -1), outF], { device: x.device });
  const nb = native();
  if (bias != null) {
    nb.broadcastRows(out.storage, bias.storage, rows, outF);
    nb.gemm(out.storage, x.storage, weight.storage, 1, rows, outF, inF, false, true, 0, 0, 0, 1, 1);
  } else {
    nb.gemm(out.storage, x.storage, weight.storage, 1, rows, outF, inF, false, true, 0, 0, 0, 1, 0);
  }
  const inputs = bias != null ? [x, weight, bias] : [x, weight];
  return record('linear', out, inputs, (g) => {
    const res: (Tensor | null)[] = [null, null];
    if (x.requiresGrad) {
      const dx = empty(x.shape, { device: x.device });
      nb.gemm(dx.storage, g.storage, weight.storage, 1, rows, inF, outF, false, false, 0, 0, 0, 1, 0);
      res[0] = dx;
    }
    if (weight.requiresGrad) {
      const dw = empty(weight.shape, { device: weight.device });
      nb.gemm(dw.storage, g.storage, x.storage, 1, outF, inF, rows, true, false, 0, 0, 0, 1, 0);
      res[1] = dw;
    }
    if (bias != null) {
      let dbias: Tensor | null = null;
      if (bias.requiresGrad) {
        dbias = empty(bias.shape, { device: bias.device });
        nb.sumRows(dbias.storage, g.storage, rows, outF);
      }
      res.push(dbias);
    }
    return res;
  });
}

/** GFLOP/s of the machine's own cblas_sgemm on n x n matrices (median of reps), timed in C++. */
export function blasSgemmRate(n: number, reps = 5): number {
  return native().blasSgemmRate(n, reps);
}
