// Reverse-mode, tape-based, define-by-run autograd (DESIGN.md §3). An op computes its output, then
// record() attaches a GradNode holding its inputs, the tensors it saved and a backward rule. A
// backward rule receives the output gradient and returns one gradient per input (or null); it runs
// with recording off. The tape (nodes and the tensors they own) is freed after backward().
import { native } from './native';
import type { Tensor } from './tensor';
import { empty, keep, ones, formatShape } from './tensor';

export type BackwardRule = (gradOutput: Tensor) => readonly (Tensor | null)[];

export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  readonly backward: BackwardRule;
  /** Tensors created for the backward pass only; disposed when the tape is freed. */
  readonly owned: Tensor[];
}

let gradEnabled = true;

/** Whether ops currently record the tape. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the tape (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when an op over these inputs must record a node. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t != null && t.requiresGrad) return true;
  return false;
}

/**
 * Attaches a backward rule to `out` when grad mode is on and an input requires grad; otherwise
 * disposes `owned` right away. Returns `out`.
 */
export function record(name: string, out: Tensor, inputs: readonly Tensor[], backward: BackwardRule, owned: Tensor[] = []): Tensor {
  if (!needsGrad(inputs)) {
    for (const t of owned) t.dispose();
    return out;
  }
  out.requiresGrad = true;
  out.gradFn = { name, inputs, backward, owned };
  return out;
}

/** A copy of t (same device and dtype). */
export function clone(t: Tensor): Tensor {
  const c = empty(t.shape, { dtype: t.dtype, device: t.device });
  c.storage.copyFrom(t.storage);
  return c;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

// dst += src in place (f32, same size).
function accumulateInto(dst: Tensor, src: Tensor): void {
  native().addInto(dst.storage, src.storage, dst.size);
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: histories can be thousands of ops deep.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i];
      if (child.requiresGrad && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

/** Implements Tensor.backward(). */
export function runBackward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) throw new Error(`backward: tensor ${formatShape(root.shape)} does not require grad`);
  let seed: Tensor;
  // The caller's gradient is used in place, not cloned (a full copy of the output per step): it is
  // only read, never disposed, and cloned only where it would become owned (a leaf's .grad or a
  // pass-through gradient stored for accumulation).
  let borrowed: Tensor | null = null;
  if (grad === undefined) {
    if (root.size !== 1) {
      throw new Error(`backward: gradient must be given for a non-scalar output of shape ${formatShape(root.shape)}`);
    }
    seed = ones(root.shape, { device: root.device });
  } else {
    if (!sameShape(grad.shape, root.shape)) {
      throw new Error(`backward: grad shape ${formatShape(grad.shape)} does not match output shape ${formatShape(root.shape)}`);
    }
    if (grad.device !== root.device) throw new Error(`backward: grad is on ${grad.device}, output on ${root.device}`);
    seed = grad;
    borrowed = grad;
  }
  const release = (t: Tensor): void => {
    if (t !== borrowed) t.dispose();
  };
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  try {
    for (const t of order) {
      const g = grads.get(t);
      if (g === undefined) continue;
      const node = t.gradFn;
      if (node === null) {
        // A leaf: accumulate into .grad.
        grads.delete(t);
        if (t.grad === null) {
          t.grad = g === borrowed ? clone(g) : g;
        } else {
          accumulateInto(t.grad, g);
          release(g);
        }
        continue;
      }
      grads.delete(t);
      const inGrads = noGrad(() => node.backward(g));
      if (inGrads.length !== node.inputs.length) {
        throw new Error(`backward of ${node.name}: returned ${inGrads.length} gradients for ${node.inputs.length} inputs`);
      }
      const handed = new Set<Tensor>();
      for (let i = 0; i < inGrads.length; i++) {
        const r = inGrads[i];
        const input = node.inputs[i];
        if (r === null || !input.requiresGrad) {
          if (r !== null && r !== g && !handed.has(r)) release(r);
          continue;
        }
        if (!sameShape(r.shape, input.shape)) {
          throw new Error(`backward of ${node.name}: gradient for input ${i} has shape ${formatShape(r.shape)}, expected ${formatShape(input.shape)}`);
        }
        const owned = handed.has(r) || r === borrowed ? clone(r) : r;
        handed.add(owned);
        const prev = grads.get(input);
        if (prev === undefined) {
          grads.set(input, owned);
        } else {
          accumulateInto(prev, owned);
          owned.dispose();
          handed.delete(owned);
        }
      }
      if (!handed.has(g)) release(g);
    }
  } finally {
    for (const g of grads.values()) release(g);
    freeTape(order);
  }
}

function freeTape(order: readonly Tensor[]): void {
  for (const t of order) {
    const node = t.gradFn;
    if (node === null) continue;
    for (const s of node.owned) s.dispose();
    t.gradFn = null;
  }
}

/** Keeps a gradient alive outside scopes (used by optimizers that allocate state lazily). */
export function persistent<T extends Tensor>(t: T): T {
  return keep(t);
}
