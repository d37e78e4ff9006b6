// nn.Module: a tree of named parameters and sub-modules (registered explicitly), with dotted names,
// state dicts (checked on load: names, shapes, dtypes; nothing is written unless everything
// matches), train/eval mode, zeroGrad and dispose. Parameters are kept out of scope(): they live
// until the module is disposed.
import { Tensor, keep, formatShape, type Device } from '../tensor';

export type StateDict = Record<string, Tensor>;

export interface LoadStateDictOptions {
  /** Require exactly the module's names (default true); false ignores extra and missing entries. */
  strict?: boolean;
}

function checkName(kind: string, name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.includes('.')) {
    throw new Error(`${kind}: name: expected a non-empty string without '.', got ${JSON.stringify(name)}`);
  }
}

export class Module {
  private readonly paramMap = new Map<string, Tensor>();
  private readonly moduleMap = new Map<string, Module>();
  private trainingMode = true;

  /** True in training mode (dropout active), false after eval(). */
  get training(): boolean {
    return this.trainingMode;
  }

  /** Registers a trainable tensor: it requires grad and is kept out of every scope. */
  registerParameter(name: string, t: Tensor): Tensor {
    checkName('registerParameter', name);
    if (!(t instanceof Tensor)) throw new TypeError(`registerParameter: ${name}: expected a Tensor, got ${typeof t}`);
    if (t.dtype !== 'f32') throw new TypeError(`registerParameter: ${name}: expected dtype f32, got ${t.dtype}`);
    if (this.paramMap.has(name) || this.moduleMap.has(name)) throw new Error(`registerParameter: ${name}: already registered`);
    keep(t);
    t.requiresGrad = true;
    this.paramMap.set(name, t);
    return t;
  }

  /** Registers a child module under `name` (its parameters appear as `name.<param>`). */
  registerModule<M extends Module>(name: string, m: M): M {
    checkName('registerModule', name);
    if (!(m instanceof Module)) throw new TypeError(`registerModule: ${name}: expected a Module`);
    if (this.paramMap.has(name) || this.moduleMap.has(name)) throw new Error(`registerModule: ${name}: already registered`);
    this.moduleMap.set(name, m);
    return m;
  }

  /** Direct children in registration order. */
  children(): Module[] {
    return [...this.moduleMap.values()];
  }

  /** [dotted name, parameter] for this module and all descendants, in registration order. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    const walk = (m: Module, pre: string): void => {
      for (const [n, p] of m.paramMap) {
        if (seen.has(p)) continue; // shared (tied) parameters are listed once
        seen.add(p);
        out.push([pre + n, p]);
      }
      for (const [n, c] of m.moduleMap) walk(c, `${pre}${n}.`);
    };
    walk(this, prefix === '' ? '' : `${prefix}.`);
    return out;
  }

  /** Every parameter once. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Total number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  /** The live parameters by dotted name (not copies: serialise or clone them to snapshot). */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [n, p] of this.namedParameters()) out[n] = p;
    return out;
  }

  /**
   * Copies values from `state` into the parameters (any device → the parameter's device). Every
   * entry is checked first (names in strict mode, shapes, dtypes); on any mismatch an Error lists it
   * and no parameter is changed.
   */
  loadStateDict(state: StateDict | Map<string, Tensor>, opts: LoadStateDictOptions = {}): void {
    const strict = opts.strict ?? true;
    const entries = state instanceof Map ? state : new Map(Object.entries(state));
    const problems: string[] = [];
    const own = new Map(this.namedParameters());
    const pairs: [Tensor, Tensor][] = [];
    for (const [n, p] of own) {
      const src = entries.get(n);
      if (src === undefined) {
        if (strict) problems.push(`missing ${n}`);
        continue;
      }
      if (!(src instanceof Tensor)) problems.push(`${n}: expected a Tensor, got ${typeof src}`);
      else if (src.disposed) problems.push(`${n}: tensor has been disposed`);
      else if (src.dtype !== p.dtype) problems.push(`${n}: expected dtype ${p.dtype}, got ${src.dtype}`);
      else if (src.rank !== p.rank || src.shape.some((d, i) => d !== p.shape[i])) {
        problems.push(`${n}: expected shape ${formatShape(p.shape)}, got ${formatShape(src.shape)}`);
      } else pairs.push([p, src]);
    }
    if (strict) for (const n of entries.keys()) if (!own.has(n)) problems.push(`unexpected ${n}`);
    if (problems.length > 0) throw new Error(`loadStateDict: ${problems.join('; ')}`);
    for (const [p, src] of pairs) if (p !== src) p.storage.copyFrom(src.storage);
  }

  /** Sets training mode on this module and all descendants. */
  train(mode = true): this {
    if (typeof mode !== 'boolean') throw new TypeError(`train: mode: expected a boolean, got ${typeof mode}`);
    this.trainingMode = mode;
    for (const c of this.moduleMap.values()) c.train(mode);
    return this;
  }

  /** Evaluation mode (dropout off). */
  eval(): this {
    return this.train(false);
  }

  /** Drops every parameter's dense and sparse gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad = null;
      if (p.sparseGrad !== null) {
        p.sparseGrad.rows.dispose();
        p.sparseGrad.values.dispose();
        p.sparseGrad = null;
      }
    }
  }

  /** The device of the first parameter ('cpu' when there are none). */
  get device(): Device {
    const p = this.parameters()[0];
    return p === undefined ? 'cpu' : p.device;
  }

  /** Frees every parameter (and gradient) of this module and its descendants. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
