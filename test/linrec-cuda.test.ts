// CUDA kernels of the linear recurrence and HSTU attention against the CPU kernels (which the other
// suites check against float64 references): outputs, final state and all gradients, relative error
// < 1e-4 (DESIGN.md §8). Runs only where a GPU answers (QGS_DEVICE=auto|cuda with a CUDA build);
// elsewhere the suite reports itself skipped.
import { Random, Tensor, tensor, backendInfo, ops } from '../src';
import { freshSeed, randomArray, tensorFrom, expectClose } from './helpers';

const gpu = backendInfo().cuda;
const maybe = gpu ? describe : describe.skip;

function both(values: Float64Array, shape: number[]): [Tensor, Tensor] {
  const c = tensorFrom(values, shape, true);
  const g = c.to('cuda');
  g.requiresGrad = true;
  return [c, g];
}

maybe('CUDA linear recurrence and HSTU attention (vs CPU)', () => {
  test('linearRecurrence packed, per-step decay, initial state: output, state and gradients', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const offsets = [0, 70, 70, 71, 71 + 200];
    const rows = 271;
    const H = 2;
    const dk = 16;
    const dv = 24;
    const inputs = [
      both(randomArray(rng, rows * H * dk), [rows, H, dk]),
      both(randomArray(rng, rows * H * dk), [rows, H, dk]),
      both(randomArray(rng, rows * H * dv), [rows, H, dv]),
      both(Float64Array.from(randomArray(rng, rows * H), (x) => 1 / (1 + Math.exp(-2 - x))), [rows, H]),
      both(randomArray(rng, 4 * H * dk * dv, 0.5), [4, H, dk, dv]),
    ];
    const G = randomArray(rng, rows * H * dv);
    const GS = randomArray(rng, 4 * H * dk * dv);
    const res = [0, 1].map((dev) => {
      const [q, k, v, g, s0] = inputs.map((p) => p[dev]);
      const r = ops.linearRecurrence(q, k, v, { decay: g, initialState: s0, offsets, scale: '1/t', returnState: true });
      const device = dev === 0 ? 'cpu' : 'cuda';
      r.output.backward(tensorFrom(G, r.output.shape).to(device));
      r.state.backward(tensorFrom(GS, r.state.shape).to(device));
      return { out: r.output.toFloat32Array(), state: r.state.toFloat32Array(), grads: [q, k, v, g, s0].map((t) => (t.grad as Tensor).toFloat32Array()) };
    });
    expectClose(res[1].out, res[0].out, 1e-4, 'cuda output', seed);
    expectClose(res[1].state, res[0].state, 1e-4, 'cuda state', seed);
    res[0].grads.forEach((g, i) => expectClose(res[1].grads[i], g, 1e-4, `cuda grad ${i}`, seed));
  });

  test('hstuAttention padded with lengths and both biases: output and gradients', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const B = 3;
    const L = 77;
    const H = 2;
    const d = 32;
    const lengths = [77, 0, 40];
    const inputs = [
      both(randomArray(rng, B * L * H * d, 0.5), [B, L, H, d]),
      both(randomArray(rng, B * L * H * d, 0.5), [B, L, H, d]),
      both(randomArray(rng, B * L * H * d), [B, L, H, d]),
      both(randomArray(rng, 50, 0.3), [50]),
      both(randomArray(rng, 64, 0.3), [64]),
    ];
    const ts = new Int32Array(B * L);
    for (let i = 0; i < ts.length; i++) ts[i] = (i % L === 0 ? 0 : ts[i - 1]) + rng.int(10000);
    const G = randomArray(rng, B * L * H * d);
    const res = [0, 1].map((dev) => {
      const device = dev === 0 ? 'cpu' : 'cuda';
      const [q, k, v, p, tw] = inputs.map((x) => x[dev]);
      const y = ops.hstuAttention(q, k, v, { lengths, positionBias: p, timeBias: tw, timestamps: tensor(ts, [B, L], { dtype: 'i32', device }), alpha: 0.7 });
      y.backward(tensorFrom(G, y.shape).to(device));
      return { out: y.toFloat32Array(), grads: [q, k, v, p, tw].map((t) => (t.grad as Tensor).toFloat32Array()) };
    });
    expectClose(res[1].out, res[0].out, 1e-4, 'cuda output', seed);
    res[0].grads.forEach((g, i) => expectClose(res[1].grads[i], g, 1e-4, `cuda grad ${i}`, seed));
  });
});

test('CUDA suite availability is reported', () => {
  expect(typeof gpu).toBe('boolean');
});
