// ops.embeddingBag (CPU inference: sum, weighted sum, mean with a padding id) against the composed
// gather → multiply → sum, and the serving plan's pair-token embedding (which uses it) against the
// training graph's QgsModel.embedTokens; the kernel itself is checked against a float64 reference
// in native/tests/test_elementwise.cpp.
import { Random, tensor, scope, noGrad, ops } from '../src';
import { prepareSynthetic, runVariant, VARIANTS } from '../src/qgs/experiment';
import { RankingPlan } from '../src/qgs/ranking-plan';
import { TERM_OFFSET, ITEM_OFFSET } from '../src/qgs/dataset';
import { freshSeed, randomArray, expectClose, errorOf } from './helpers';

describe('ops.embeddingBag', () => {
  test.each([
    [50, 32, 130, 4],
    [7, 5, 63, 1],
    [3, 9, 65, 7],
  ])('equals the composed gather → multiply → sum (V %i, D %i, N %i, m %i): weighted, plain, mean with padding', (V, D, N, m) => {
    const seed = freshSeed();
    const rng = new Random(seed);
    scope(() => {
      const table = tensor(Float32Array.from(randomArray(rng, V * D)), [V, D]);
      const idArray = Int32Array.from({ length: N * m }, () => rng.int(V));
      const ids = tensor(idArray, [N, m], { dtype: 'i32' });
      const w = tensor(Float32Array.from({ length: N * m }, (_, i) => (i % 3 === 0 ? 0 : rng.normal())), [N, m]);
      const composed = (weights: Float32Array | null) => {
        const g = ops.reshape(ops.gather(table, ops.reshape(ids, [N * m]), 0), [N, m, D]);
        return ops.sum(weights === null ? g : ops.mul(g, tensor(weights, [N, m, 1])), 1).toFloat32Array();
      };
      // mean over the slots whose id is not the padding id 0, as 1/count weights
      const meanWeights = new Float32Array(N * m);
      for (let i = 0; i < N; i++) {
        let c = 0;
        for (let j = 0; j < m; j++) if (idArray[i * m + j] !== 0) c++;
        for (let j = 0; j < m; j++) if (idArray[i * m + j] !== 0) meanWeights[i * m + j] = 1 / c;
      }
      noGrad(() => {
        expectClose(ops.embeddingBag(table, ids, { weights: w }).toFloat32Array(), composed(w.toFloat32Array()), 1e-6, 'weighted', seed);
        expectClose(ops.embeddingBag(table, ids).toFloat32Array(), composed(null), 1e-6, 'plain sum', seed);
        expectClose(ops.embeddingBag(table, ids, { mode: 'mean', paddingIdx: 0 }).toFloat32Array(), composed(meanWeights), 1e-6, 'mean', seed);
      });
    });
  });

  test('bad arguments get errors naming them', () => {
    scope(() =>
      noGrad(() => {
        const table = tensor(new Float32Array(6).fill(1), [3, 2]);
        const ids = tensor(Int32Array.of(0, 1, 2, 3), [2, 2], { dtype: 'i32' });
        expect(errorOf(() => ops.embeddingBag(table, ids))).toMatch(/embeddingBag: ids\[1, 1\] = 3 is out of range for a table of 3 rows/);
        const ok = tensor(Int32Array.of(0, 1, 2, 0), [2, 2], { dtype: 'i32' });
        expect(errorOf(() => ops.embeddingBag(table, ok, { weights: tensor(new Float32Array(3), [3, 1]) }))).toMatch(/embeddingBag: weights: expected shape \[2, 2\], got \[3, 1\]/);
        expect(errorOf(() => ops.embeddingBag(table, tensor(new Float32Array(4), [2, 2])))).toMatch(/embeddingBag: ids: expected dtype i32, got f32/);
        expect(errorOf(() => ops.embeddingBag(table, tensor(new Int32Array(0), [2, 0], { dtype: 'i32' })))).toMatch(/ids: expected at least one slot per bag/);
        expect(errorOf(() => ops.embeddingBag(table, ok, { mode: 'max' as 'sum' }))).toMatch(/options\.mode: expected 'sum' or 'mean', got max/);
        expect(errorOf(() => ops.embeddingBag(table, ok, { mode: 'mean', weights: tensor(new Float32Array(4), [2, 2]) }))).toMatch(/per-slot weights are for mode 'sum' only/);
        expect(errorOf(() => ops.embeddingBag(table, ok, { paddingIdx: 1.5 }))).toMatch(/options\.paddingIdx: expected a non-negative int32 or null, got 1\.5/);
        // A padding id outside the table is skipped, not an error; a bag of padding only is 0.
        const padded = ops.embeddingBag(table, tensor(Int32Array.of(7, 7, 0, 7), [2, 2], { dtype: 'i32' }), { mode: 'mean', paddingIdx: 7 });
        expect(Array.from(padded.toFloat32Array())).toEqual([0, 0, 1, 1]);
      }),
    );
    const tg = tensor(new Float32Array(6), [3, 2], { requiresGrad: true });
    expect(errorOf(() => ops.embeddingBag(tg, tensor(Int32Array.of(0), [1, 1], { dtype: 'i32' })))).toMatch(/inference only/);
    tg.dispose();
  });

  test('the serving plan embeds pair tokens like the training graph', () => {
    const seed = freshSeed();
    const rng = new Random(seed);
    const { data } = prepareSynthetic({ seed: 3, users: 40, items: 60 });
    const { result } = runVariant(data, VARIANTS[0], { epochs: 1, seed: 2, batchTokens: 400 });
    const m = result.model;
    const plan = new RankingPlan(m);
    const T = 37;
    const mt = m.cfg.maxTerms;
    // 0..maxTerms real terms per token (0 = an all-padding bag), random catalogue items.
    const terms = new Int32Array(T * mt);
    for (let t = 0; t < T; t++) for (let j = 0; j < rng.int(mt + 1); j++) terms[t * mt + j] = TERM_OFFSET + rng.int(m.cfg.termVocab - TERM_OFFSET);
    const items = Int32Array.from({ length: T }, () => ITEM_OFFSET + rng.int(m.cfg.itemVocab - ITEM_OFFSET));
    scope(() => {
      const ref = m.embedTokens(terms, items).toFloat32Array(); // parameters need gradients: composed
      const fused = noGrad(() => plan.embedTokens(terms, items).toFloat32Array());
      expectClose(fused, ref, 1e-5, 'pair tokens', seed);
    });
    plan.dispose();
    m.dispose();
  });
});
