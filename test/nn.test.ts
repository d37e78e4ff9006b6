// nn.Module and layers: registration, dotted names, state dicts (shape checks, all-or-nothing),
// train/eval, seeded init, parameters surviving scope(), zeroGrad, dispose.
import { nn, ops, tensor, zeros, randn, scope, memoryStats, Random } from '../src';
import { freshSeed, randomArray, tensorFrom, expectClose, errorOf, asF64 } from './helpers';

class Tower extends nn.Module {
  readonly emb: nn.Embedding;
  readonly norm: nn.LayerNorm;
  readonly head: nn.MLP;
  constructor(seed: number) {
    super();
    this.emb = this.registerModule('emb', new nn.Embedding(11, 4, { seed }));
    this.norm = this.registerModule('norm', new nn.LayerNorm(4));
    this.head = this.registerModule('head', new nn.MLP(4, [8, 5], 2, { activation: 'gelu', dropout: 0.5, seed: seed + 1 }));
  }
  forward(ids: number[]): ReturnType<typeof ops.add> {
    return this.head.forward(this.norm.forward(this.emb.forward(tensor(ids, [ids.length], { dtype: 'i32' }))));
  }
}

describe('Module', () => {
  test('dotted names, parameter count, registration errors', () => {
    const m = new Tower(1);
    const names = m.namedParameters().map(([n]) => n);
    expect(names).toEqual([
      'emb.weight', 'norm.weight', 'norm.bias',
      'head.fc0.weight', 'head.fc0.bias', 'head.fc1.weight', 'head.fc1.bias', 'head.fc2.weight', 'head.fc2.bias',
    ]);
    expect(m.numParameters()).toBe(11 * 4 + 4 + 4 + (8 * 4 + 8) + (5 * 8 + 5) + (2 * 5 + 2));
    expect(m.parameters().every((p) => p.requiresGrad)).toBe(true);
    expect(errorOf(() => m.registerParameter('emb', zeros([1])))).toMatch(/registerParameter: emb: already registered/);
    expect(errorOf(() => m.registerModule('a.b', new nn.LayerNorm(2)))).toMatch(/registerModule: name: expected a non-empty string without '\.'/);
    m.dispose();
  });

  test('seeded init is reproducible; different seeds differ; Linear init bounds', () => {
    const a = new nn.Linear(65, 7, { seed: 3 });
    const b = new nn.Linear(65, 7, { seed: 3 });
    const c = new nn.Linear(65, 7, { seed: 4 });
    expect(Array.from(a.weight.toFloat32Array())).toEqual(Array.from(b.weight.toFloat32Array()));
    expect(Array.from(a.weight.toFloat32Array())).not.toEqual(Array.from(c.weight.toFloat32Array()));
    const bound = 1 / Math.sqrt(65);
    expect(a.weight.toFloat32Array().every((v) => Math.abs(v) <= bound)).toBe(true);
    const x = new nn.Linear(257, 129, { init: 'xavier', seed: 1 });
    const xb = Math.sqrt(6 / (257 + 129));
    const xv = x.weight.toFloat32Array();
    expect(xv.every((v) => Math.abs(v) <= xb)).toBe(true);
    expect(Math.max(...xv.map(Math.abs))).toBeGreaterThan(0.9 * xb);
    expect(Array.from(x.bias!.toFloat32Array()).every((v) => v === 0)).toBe(true);
    const k = new nn.Linear(1000, 64, { init: 'kaiming', seed: 2 });
    const kv = k.weight.toFloat32Array();
    const sd = Math.sqrt(kv.reduce((s, v) => s + v * v, 0) / kv.length);
    expect(Math.abs(sd - Math.sqrt(2 / 1000)) / Math.sqrt(2 / 1000)).toBeLessThan(0.05);
    for (const m of [a, b, c, x, k]) m.dispose();
  });

  test('Linear forward matches x Wᵀ + b and grads reach the parameters', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const lin = new nn.Linear(7, 3, { seed });
    const xv = randomArray(rng, 5 * 7);
    const x = tensorFrom(xv, [5, 7]);
    const y = lin.forward(x);
    const W = asF64(lin.weight);
    const B = asF64(lin.bias!);
    const X = asF64(x);
    const ref = new Float64Array(15);
    for (let r = 0; r < 5; r++) for (let o = 0; o < 3; o++) {
      let s = B[o];
      for (let i = 0; i < 7; i++) s += X[r * 7 + i] * W[o * 7 + i];
      ref[r * 3 + o] = s;
    }
    expectClose(y.toFloat32Array(), ref, 1e-5, 'Linear', seed);
    ops.sum(y).backward();
    expect(lin.weight.grad).not.toBeNull();
    expect(lin.bias!.grad!.toFloat32Array().every((v) => Math.abs(v - 5) < 1e-5)).toBe(true);
    lin.zeroGrad();
    expect(lin.weight.grad).toBeNull();
    lin.dispose();
  });

  test('parameters survive scope(); training inside scope does not leak', () => {
    const before = memoryStats().count;
    const m = scope(() => new Tower(5));
    expect(m.parameters().every((p) => !p.disposed)).toBe(true);
    for (let i = 0; i < 3; i++) {
      scope(() => {
        ops.sum(m.forward([1, 2, 10, 3])).backward();
      });
    }
    expect(m.parameters().every((p) => p.grad !== null)).toBe(true);
    m.dispose();
    expect(memoryStats().count).toBe(before);
  });

  test('train/eval switch dropout in all descendants', () => {
    const m = new Tower(7);
    expect(m.training).toBe(true);
    m.eval();
    expect(m.head.training).toBe(false);
    expect(m.head.children().every((c) => !c.training)).toBe(true);
    const a = m.forward([1, 2, 3]).toFloat32Array();
    const b = m.forward([1, 2, 3]).toFloat32Array();
    expect(Array.from(a)).toEqual(Array.from(b)); // deterministic in eval
    m.train();
    expect(m.head.training).toBe(true);
    const c = m.forward([1, 2, 3]).toFloat32Array();
    const d = m.forward([1, 2, 3]).toFloat32Array();
    expect(Array.from(c)).not.toEqual(Array.from(d)); // dropout active, seeds advance per call
    m.dispose();
  });

  test('stateDict round-trip; loadStateDict checks names and shapes and is all-or-nothing', () => {
    const a = new Tower(1);
    const b = new Tower(2);
    b.loadStateDict(a.stateDict());
    for (const [n, p] of b.namedParameters()) expect(Array.from(p.toFloat32Array())).toEqual(Array.from(a.stateDict()[n].toFloat32Array()));
    const c = new Tower(3);
    const before = c.stateDict()['head.fc0.weight'].toFloat32Array();
    const bad = { ...a.stateDict(), 'head.fc0.weight': zeros([3, 3]), extra: zeros([1]) };
    delete (bad as Record<string, unknown>)['norm.bias'];
    const msg = errorOf(() => c.loadStateDict(bad));
    expect(msg).toMatch(/loadStateDict: .*missing norm\.bias/);
    expect(msg).toMatch(/head\.fc0\.weight: expected shape \[8, 4\], got \[3, 3\]/);
    expect(msg).toMatch(/unexpected extra/);
    expect(Array.from(c.stateDict()['head.fc0.weight'].toFloat32Array())).toEqual(Array.from(before));
    expect(Array.from(c.stateDict()['emb.weight'].toFloat32Array())).not.toEqual(Array.from(a.stateDict()['emb.weight'].toFloat32Array()));
    // non-strict: loads what matches by name, ignores the rest
    c.loadStateDict({ 'emb.weight': a.stateDict()['emb.weight'], other: zeros([2]) }, { strict: false });
    expect(Array.from(c.emb.weight.toFloat32Array())).toEqual(Array.from(a.emb.weight.toFloat32Array()));
    for (const m of [a, b, c]) m.dispose();
  });

  test('Embedding sparse option gives sparse grads; LayerNorm affine=false has no params', () => {
    const e = new nn.Embedding(1000, 3, { sparse: true, seed: 1 });
    ops.sum(e.forward(tensor([5, 5, 7], [3], { dtype: 'i32' }))).backward();
    expect(e.weight.grad).toBeNull();
    expect(Array.from(e.weight.sparseGrad!.rows.toInt32Array())).toEqual([5, 7]);
    expect(Array.from(e.weight.sparseGrad!.values.toFloat32Array())).toEqual([2, 2, 2, 1, 1, 1]);
    e.zeroGrad();
    expect(e.weight.sparseGrad).toBeNull();
    e.dispose();
    const ln = new nn.LayerNorm(5, { affine: false });
    expect(ln.parameters()).toEqual([]);
    const y = ln.forward(randn([2, 5], { seed: 1 })).toFloat32Array();
    expect(Math.abs(y.slice(0, 5).reduce((s, v) => s + v, 0))).toBeLessThan(1e-5);
  });

  test('constructor argument errors', () => {
    expect(errorOf(() => new nn.Linear(0, 3))).toMatch(/Linear: inFeatures: expected >= 1, got 0/);
    expect(errorOf(() => new nn.Linear(2, 3, { init: 'he' as never }))).toMatch(/Linear: init: expected 'default', 'xavier' or 'kaiming', got he/);
    expect(errorOf(() => new nn.MLP(3, [4, 0], 2))).toMatch(/MLP: hiddenSizes\[1\]: expected >= 1, got 0/);
    expect(errorOf(() => new nn.MLP(3, [4], 2, { activation: 'swish' as never }))).toMatch(/MLP: activation: expected/);
    expect(errorOf(() => new nn.Dropout(1))).toMatch(/Dropout: p: expected a probability in \[0, 1\), got 1/);
    expect(errorOf(() => new nn.Embedding(10, 2.5))).toMatch(/Embedding: dim: expected an integer, got 2.5/);
  });
});
