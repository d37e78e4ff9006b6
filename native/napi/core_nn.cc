// Bindings for linalg (GEMM), nn (softmax, LayerNorm, embedding, losses) and optim kernels.
// Every storage argument is size-checked against the sizes passed with it, so a wrong size from JS
// is a JS Error, never an out-of-bounds access; the TypeScript ops validate shapes before calling.
#include <string>

#include "napi_util.h"
#include "qgs/linalg.h"
#include "qgs/nn.h"
#include "qgs/optim.h"

namespace qgs::napi {

namespace {
// Calls qgs::cpu::fn or qgs::cuda::fn for the device of the given views.
#ifdef QGS_WITH_CUDA
#define QGS_DISPATCH(env, op, dev, fn, ...) \
  ((dev) == Device::CPU ? ::qgs::cpu::fn(__VA_ARGS__) : ::qgs::cuda::fn(__VA_ARGS__))
#else
#define QGS_DISPATCH(env, op, dev, fn, ...) \
  ((dev) == Device::CPU ? ::qgs::cpu::fn(__VA_ARGS__) : (require_cuda_build((env), (op)), ::qgs::cpu::fn(__VA_ARGS__)))
#endif

const int64_t kMax = int64_t{1} << 40;

View f32_view(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t n) {
  return storage_arg(info, i, name, static_cast<size_t>(n) * 4);
}
View opt_view(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t n) {
  return optional_storage_arg(info, i, name, static_cast<size_t>(n) * 4);
}
// a * b, refusing results that would overflow (sizes come from JS; every product below is an
// element count that must also fit the storage, so anything near 2^62 is a caller error).
int64_t mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r) || r > (int64_t{1} << 56)) throw KernelError("size product overflows: " + std::to_string(a) + " x " + std::to_string(b));
  return r;
}
int64_t mul(int64_t a, int64_t b, int64_t c) { return mul(mul(a, b), c); }
// Elements a strided batch of matrices spans.
int64_t span(int64_t batch, int64_t stride, int64_t matrix) { return batch == 0 ? 0 : mul(batch - 1, stride) + matrix; }
}  // namespace

// gemm(c, a, b, batch, m, n, k, transA, transB, strideA, strideB, strideC, alpha, beta)
QGS_BINDING(gemm) {
  int64_t batch = int_arg(info, 3, "batch", 0, kMax), m = int_arg(info, 4, "m", 0, kMax), n = int_arg(info, 5, "n", 0, kMax),
          k = int_arg(info, 6, "k", 0, kMax);
  bool ta = bool_arg(info, 7, "transA"), tb = bool_arg(info, 8, "transB");
  int64_t sa = int_arg(info, 9, "strideA", 0, kMax), sb = int_arg(info, 10, "strideB", 0, kMax),
          sc = int_arg(info, 11, "strideC", 0, kMax);
  float alpha = static_cast<float>(num_arg(info, 12, "alpha")), beta = static_cast<float>(num_arg(info, 13, "beta"));
  View c = f32_view(info, 0, "c", span(batch, sc, mul(m, n)));
  View a = f32_view(info, 1, "a", span(batch, sa, mul(m, k)));
  View b = f32_view(info, 2, "b", span(batch, sb, mul(k, n)));
  Device dev = common_device("matmul", {&c, &a, &b});
  QGS_DISPATCH(info.Env(), "matmul", dev, gemm, c.as<float>(), a.as<float>(), b.as<float>(), batch, m, n, k, ta, tb, sa, sb, sc,
               alpha, beta);
  return info.Env().Undefined();
}

// broadcastRows(y, bias, rows, n)
QGS_BINDING(broadcastRows) {
  int64_t rows = int_arg(info, 2, "rows", 0, kMax), n = int_arg(info, 3, "n", 0, kMax);
  View y = f32_view(info, 0, "y", mul(rows, n)), b = f32_view(info, 1, "bias", n);
  Device dev = common_device("linear", {&y, &b});
  QGS_DISPATCH(info.Env(), "linear", dev, broadcast_rows, y.as<float>(), b.as<float>(), rows, n);
  return info.Env().Undefined();
}

// sumRows(out, src, rows, n)
QGS_BINDING(sumRows) {
  int64_t rows = int_arg(info, 2, "rows", 0, kMax), n = int_arg(info, 3, "n", 0, kMax);
  View o = f32_view(info, 0, "out", n), s = f32_view(info, 1, "src", mul(rows, n));
  Device dev = common_device("sumRows", {&o, &s});
  QGS_DISPATCH(info.Env(), "sumRows", dev, sum_rows, o.as<float>(), s.as<float>(), rows, n);
  return info.Env().Undefined();
}

// blasSgemmRate(n, reps) -> GFLOP/s of cblas_sgemm on this machine (CPU)
QGS_BINDING(blasSgemmRate) {
  int64_t n = int_arg(info, 0, "n", 1, 16384);
  int64_t reps = int_arg(info, 1, "reps", 1, 1000);
  return Napi::Number::New(info.Env(), qgs::cpu::blas_sgemm_rate(n, static_cast<int>(reps)));
}

// gemmBackend() -> which GEMM the build uses on each device
QGS_BINDING(gemmBackend) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("cpu", "openblas cblas_sgemm");
#ifdef QGS_WITH_CUDA
  o.Set("cuda", qgs::cuda::gemm_backend());
#else
  o.Set("cuda", "not built");
#endif
  return o;
}

// softmaxForward(y, x, outer, dim, inner, log)
QGS_BINDING(softmaxForward) {
  int64_t outer = int_arg(info, 2, "outer", 0, kMax), dim = int_arg(info, 3, "dim", 0, kMax), inner = int_arg(info, 4, "inner", 0, kMax);
  bool log = bool_arg(info, 5, "log");
  int64_t n = mul(outer, dim, inner);
  View y = f32_view(info, 0, "y", n), x = f32_view(info, 1, "x", n);
  Device dev = common_device("softmax", {&y, &x});
  QGS_DISPATCH(info.Env(), "softmax", dev, softmax_forward, y.as<float>(), x.as<float>(), outer, dim, inner, log);
  return info.Env().Undefined();
}

// softmaxBackward(dx, y, dy, outer, dim, inner, log)
QGS_BINDING(softmaxBackward) {
  int64_t outer = int_arg(info, 3, "outer", 0, kMax), dim = int_arg(info, 4, "dim", 0, kMax), inner = int_arg(info, 5, "inner", 0, kMax);
  bool log = bool_arg(info, 6, "log");
  int64_t n = mul(outer, dim, inner);
  View dx = f32_view(info, 0, "dx", n), y = f32_view(info, 1, "y", n), dy = f32_view(info, 2, "dy", n);
  Device dev = common_device("softmax backward", {&dx, &y, &dy});
  QGS_DISPATCH(info.Env(), "softmax", dev, softmax_backward, dx.as<float>(), y.as<float>(), dy.as<float>(), outer, dim, inner, log);
  return info.Env().Undefined();
}

// layerNormForward(y, mean, rstd, x, w|null, b|null, rows, cols, eps)
QGS_BINDING(layerNormForward) {
  int64_t rows = int_arg(info, 6, "rows", 0, kMax), cols = int_arg(info, 7, "cols", 0, kMax);
  float eps = static_cast<float>(num_arg(info, 8, "eps"));
  View y = f32_view(info, 0, "y", mul(rows, cols)), mean = f32_view(info, 1, "mean", rows), rstd = f32_view(info, 2, "rstd", rows),
       x = f32_view(info, 3, "x", mul(rows, cols)), w = opt_view(info, 4, "weight", cols), b = opt_view(info, 5, "bias", cols);
  Device dev = common_device("layerNorm", {&y, &mean, &rstd, &x, &w, &b});
  QGS_DISPATCH(info.Env(), "layerNorm", dev, layer_norm_forward, y.as<float>(), mean.as<float>(), rstd.as<float>(), x.as<float>(),
               w.as<float>(), b.as<float>(), rows, cols, eps);
  return info.Env().Undefined();
}

// layerNormBackward(dx, dw|null, db|null, dy, x, mean, rstd, w|null, rows, cols)
QGS_BINDING(layerNormBackward) {
  int64_t rows = int_arg(info, 8, "rows", 0, kMax), cols = int_arg(info, 9, "cols", 0, kMax);
  View dx = f32_view(info, 0, "dx", mul(rows, cols)), dw = opt_view(info, 1, "dweight", cols), db = opt_view(info, 2, "dbias", cols),
       dy = f32_view(info, 3, "dy", mul(rows, cols)), x = f32_view(info, 4, "x", mul(rows, cols)), mean = f32_view(info, 5, "mean", rows),
       rstd = f32_view(info, 6, "rstd", rows), w = opt_view(info, 7, "weight", cols);
  Device dev = common_device("layerNorm backward", {&dx, &dw, &db, &dy, &x, &mean, &rstd, &w});
  QGS_DISPATCH(info.Env(), "layerNorm", dev, layer_norm_backward, dx.as<float>(), dw.as<float>(), db.as<float>(), dy.as<float>(),
               x.as<float>(), mean.as<float>(), rstd.as<float>(), w.as<float>(), rows, cols);
  return info.Env().Undefined();
}

// embeddingForward(out, weight, idx, n, vocab, dim)
QGS_BINDING(embeddingForward) {
  int64_t n = int_arg(info, 3, "n", 0, kMax), vocab = int_arg(info, 4, "vocab", 0, kMax), dim = int_arg(info, 5, "dim", 0, kMax);
  View out = f32_view(info, 0, "out", mul(n, dim)), w = f32_view(info, 1, "weight", mul(vocab, dim)), idx = f32_view(info, 2, "indices", n);
  Device dev = common_device("embedding", {&out, &w, &idx});
  QGS_DISPATCH(info.Env(), "embedding", dev, embedding_forward, out.as<float>(), w.as<float>(), idx.as<int32_t>(), n, vocab, dim);
  return info.Env().Undefined();
}

// indexAddRows(out, src, idx, n, rows, dim)
QGS_BINDING(indexAddRows) {
  int64_t n = int_arg(info, 3, "n", 0, kMax), rows = int_arg(info, 4, "rows", 0, kMax), dim = int_arg(info, 5, "dim", 0, kMax);
  View out = f32_view(info, 0, "out", mul(rows, dim)), src = f32_view(info, 1, "src", mul(n, dim)), idx = f32_view(info, 2, "indices", n);
  Device dev = common_device("embedding backward", {&out, &src, &idx});
  QGS_DISPATCH(info.Env(), "embedding", dev, index_add_rows, out.as<float>(), src.as<float>(), idx.as<int32_t>(), n, rows, dim);
  return info.Env().Undefined();
}

// l2NormalizeForward(y, norm, x, outer, dim, inner, eps)
QGS_BINDING(l2NormalizeForward) {
  int64_t outer = int_arg(info, 3, "outer", 0, kMax), dim = int_arg(info, 4, "dim", 0, kMax), inner = int_arg(info, 5, "inner", 0, kMax);
  float eps = static_cast<float>(num_arg(info, 6, "eps"));
  View y = f32_view(info, 0, "y", mul(outer, dim, inner)), nr = f32_view(info, 1, "norm", mul(outer, inner)),
       x = f32_view(info, 2, "x", mul(outer, dim, inner));
  Device dev = common_device("l2Normalize", {&y, &nr, &x});
  QGS_DISPATCH(info.Env(), "l2Normalize", dev, l2_normalize_forward, y.as<float>(), nr.as<float>(), x.as<float>(), outer, dim, inner, eps);
  return info.Env().Undefined();
}

// l2NormalizeBackward(dx, dy, y, norm, outer, dim, inner, eps)
QGS_BINDING(l2NormalizeBackward) {
  int64_t outer = int_arg(info, 4, "outer", 0, kMax), dim = int_arg(info, 5, "dim", 0, kMax), inner = int_arg(info, 6, "inner", 0, kMax);
  float eps = static_cast<float>(num_arg(info, 7, "eps"));
  int64_t n = mul(outer, dim, inner);
  View dx = f32_view(info, 0, "dx", n), dy = f32_view(info, 1, "dy", n), y = f32_view(info, 2, "y", n),
       nr = f32_view(info, 3, "norm", mul(outer, inner));
  Device dev = common_device("l2Normalize backward", {&dx, &dy, &y, &nr});
  QGS_DISPATCH(info.Env(), "l2Normalize", dev, l2_normalize_backward, dx.as<float>(), dy.as<float>(), y.as<float>(), nr.as<float>(),
               outer, dim, inner, eps);
  return info.Env().Undefined();
}

// bceWithLogits(loss|null, dx, x, t, w|null, wn, n) -> sum of losses
QGS_BINDING(bceWithLogits) {
  int64_t wn = int_arg(info, 5, "wn", 0, kMax), n = int_arg(info, 6, "n", 0, kMax);
  View loss = opt_view(info, 0, "loss", n), dx = f32_view(info, 1, "dx", n), x = f32_view(info, 2, "logits", n),
       t = f32_view(info, 3, "targets", n), w = opt_view(info, 4, "weight", wn);
  Device dev = common_device("bceWithLogits", {&loss, &dx, &x, &t, &w});
  double s = QGS_DISPATCH(info.Env(), "bceWithLogits", dev, bce_with_logits, loss.as<float>(), dx.as<float>(), x.as<float>(),
                          t.as<float>(), w.as<float>(), wn, n);
  return Napi::Number::New(info.Env(), s);
}

// crossEntropyForward(loss, dx, logits, targets|null, n, c, ignoreIndex, hasIgnore) -> { count, sum }
QGS_BINDING(crossEntropyForward) {
  int64_t n = int_arg(info, 4, "n", 0, kMax), c = int_arg(info, 5, "c", 0, kMax);
  int64_t ignore = int_arg(info, 6, "ignoreIndex");
  bool has_ignore = bool_arg(info, 7, "hasIgnore");
  View loss = f32_view(info, 0, "loss", n), dx = f32_view(info, 1, "dx", mul(n, c)), x = f32_view(info, 2, "logits", mul(n, c)),
       t = opt_view(info, 3, "targets", n);
  Device dev = common_device("crossEntropy", {&loss, &dx, &x, &t});
  double sum = 0;
  int64_t count = QGS_DISPATCH(info.Env(), "crossEntropy", dev, cross_entropy_forward, loss.as<float>(), dx.as<float>(), &sum,
                               x.as<float>(), t.as<int32_t>(), n, c, ignore, has_ignore);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("count", Napi::Number::New(info.Env(), static_cast<double>(count)));
  o.Set("sum", Napi::Number::New(info.Env(), sum));
  return o;
}

// rowDot(out, a, b, n, d, scale)
QGS_BINDING(rowDot) {
  int64_t n = int_arg(info, 3, "n", 0, kMax), d = int_arg(info, 4, "d", 0, kMax);
  float scale = static_cast<float>(num_arg(info, 5, "scale"));
  View o = f32_view(info, 0, "out", n), a = f32_view(info, 1, "a", mul(n, d)), b = f32_view(info, 2, "b", mul(n, d));
  Device dev = common_device("rowDot", {&o, &a, &b});
  QGS_DISPATCH(info.Env(), "infoNCE", dev, row_dot, o.as<float>(), a.as<float>(), b.as<float>(), n, d, scale);
  return info.Env().Undefined();
}

// rowDotsMany(out, q, neg, n, k, d, scale)
QGS_BINDING(rowDotsMany) {
  int64_t n = int_arg(info, 3, "n", 0, kMax), k = int_arg(info, 4, "k", 0, kMax), d = int_arg(info, 5, "d", 0, kMax);
  float scale = static_cast<float>(num_arg(info, 6, "scale"));
  View o = f32_view(info, 0, "out", mul(n, k)), q = f32_view(info, 1, "q", mul(n, d)), ng = f32_view(info, 2, "neg", mul(n, k, d));
  Device dev = common_device("rowDotsMany", {&o, &q, &ng});
  QGS_DISPATCH(info.Env(), "infoNCE", dev, row_dots_many, o.as<float>(), q.as<float>(), ng.as<float>(), n, k, d, scale);
  return info.Env().Undefined();
}

// concatPosNeg(logits, pos, neg, n, k)
QGS_BINDING(concatPosNeg) {
  int64_t n = int_arg(info, 3, "n", 0, kMax), k = int_arg(info, 4, "k", 0, kMax);
  View l = f32_view(info, 0, "logits", mul(n, k + 1)), p = f32_view(info, 1, "pos", n), ng = f32_view(info, 2, "neg", mul(n, k));
  Device dev = common_device("concatPosNeg", {&l, &p, &ng});
  QGS_DISPATCH(info.Env(), "infoNCE", dev, concat_pos_neg, l.as<float>(), p.as<float>(), ng.as<float>(), n, k);
  return info.Env().Undefined();
}

// splitPosNeg(g0, gneg, g, n, k)
QGS_BINDING(splitPosNeg) {
  int64_t n = int_arg(info, 3, "n", 0, kMax), k = int_arg(info, 4, "k", 0, kMax);
  View g0 = f32_view(info, 0, "g0", n), gn = f32_view(info, 1, "gneg", mul(n, k)), g = f32_view(info, 2, "g", mul(n, k + 1));
  Device dev = common_device("splitPosNeg", {&g0, &gn, &g});
  QGS_DISPATCH(info.Env(), "infoNCE", dev, split_pos_neg, g0.as<float>(), gn.as<float>(), g.as<float>(), n, k);
  return info.Env().Undefined();
}

// infonceRowsBackward(dq|null, dp|null, dneg|null, g0, gneg, q, p, neg, n, k, d)
QGS_BINDING(infonceRowsBackward) {
  int64_t n = int_arg(info, 8, "n", 0, kMax), k = int_arg(info, 9, "k", 0, kMax), d = int_arg(info, 10, "d", 0, kMax);
  View dq = opt_view(info, 0, "dq", mul(n, d)), dp = opt_view(info, 1, "dp", mul(n, d)), dn = opt_view(info, 2, "dneg", mul(n, k, d)),
       g0 = f32_view(info, 3, "g0", n), gn = f32_view(info, 4, "gneg", mul(n, k)), q = f32_view(info, 5, "q", mul(n, d)),
       p = f32_view(info, 6, "p", mul(n, d)), ng = f32_view(info, 7, "neg", mul(n, k, d));
  Device dev = common_device("infoNCE backward", {&dq, &dp, &dn, &g0, &gn, &q, &p, &ng});
  QGS_DISPATCH(info.Env(), "infoNCE", dev, infonce_rows_backward, dq.as<float>(), dp.as<float>(), dn.as<float>(), g0.as<float>(),
               gn.as<float>(), q.as<float>(), p.as<float>(), ng.as<float>(), n, k, d);
  return info.Env().Undefined();
}

// scaleBy(out, src, g, gScalar, n, alpha)
QGS_BINDING(scaleBy) {
  bool scalar = bool_arg(info, 3, "gScalar");
  int64_t n = int_arg(info, 4, "n", 0, kMax);
  float alpha = static_cast<float>(num_arg(info, 5, "alpha"));
  View o = f32_view(info, 0, "out", n), s = f32_view(info, 1, "src", n), g = f32_view(info, 2, "g", scalar ? (n > 0 ? 1 : 0) : n);
  Device dev = common_device("scaleBy", {&o, &s, &g});
  QGS_DISPATCH(info.Env(), "scaleBy", dev, scale_by, o.as<float>(), s.as<float>(), g.as<float>(), scalar, n, alpha);
  return info.Env().Undefined();
}

// scaleRows(out, src, g|null, rows, cols, alpha)
QGS_BINDING(scaleRows) {
  int64_t rows = int_arg(info, 3, "rows", 0, kMax), cols = int_arg(info, 4, "cols", 0, kMax);
  float alpha = static_cast<float>(num_arg(info, 5, "alpha"));
  View o = f32_view(info, 0, "out", mul(rows, cols)), s = f32_view(info, 1, "src", mul(rows, cols)), g = opt_view(info, 2, "g", rows);
  Device dev = common_device("scaleRows", {&o, &s, &g});
  QGS_DISPATCH(info.Env(), "scaleRows", dev, scale_rows, o.as<float>(), s.as<float>(), g.as<float>(), rows, cols, alpha);
  return info.Env().Undefined();
}

// adamwStep(p, m, v, g, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2)
QGS_BINDING(adamwStep) {
  int64_t n = int_arg(info, 4, "n", 0, kMax);
  View p = f32_view(info, 0, "param", n), m = f32_view(info, 1, "m", n), v = f32_view(info, 2, "v", n), g = f32_view(info, 3, "grad", n);
  auto f = [&](size_t i, const char* name) { return static_cast<float>(num_arg(info, i, name)); };
  Device dev = common_device("AdamW", {&p, &m, &v, &g});
  QGS_DISPATCH(info.Env(), "AdamW", dev, adamw_step, p.as<float>(), m.as<float>(), v.as<float>(), g.as<float>(), n, f(5, "lr"),
               f(6, "beta1"), f(7, "beta2"), f(8, "eps"), f(9, "weightDecay"), f(10, "bc1"), f(11, "bc2"));
  return info.Env().Undefined();
}

// sparseAdamStep(p, m, v, rows, g, nrows, vocab, dim, lr, beta1, beta2, eps, weightDecay, bc1, bc2)
QGS_BINDING(sparseAdamStep) {
  int64_t nrows = int_arg(info, 5, "nrows", 0, kMax), vocab = int_arg(info, 6, "vocab", 0, kMax), dim = int_arg(info, 7, "dim", 0, kMax);
  View p = f32_view(info, 0, "param", mul(vocab, dim)), m = f32_view(info, 1, "m", mul(vocab, dim)), v = f32_view(info, 2, "v", mul(vocab, dim)),
       r = f32_view(info, 3, "rows", nrows), g = f32_view(info, 4, "values", mul(nrows, dim));
  auto f = [&](size_t i, const char* name) { return static_cast<float>(num_arg(info, i, name)); };
  Device dev = common_device("SparseAdam", {&p, &m, &v, &r, &g});
  QGS_DISPATCH(info.Env(), "SparseAdam", dev, sparse_adam_step, p.as<float>(), m.as<float>(), v.as<float>(), r.as<int32_t>(),
               g.as<float>(), nrows, vocab, dim, f(8, "lr"), f(9, "beta1"), f(10, "beta2"), f(11, "eps"), f(12, "weightDecay"),
               f(13, "bc1"), f(14, "bc2"));
  return info.Env().Undefined();
}

// sparseAdagradStep(p, acc, rows, g, nrows, vocab, dim, lr, eps, weightDecay)
QGS_BINDING(sparseAdagradStep) {
  int64_t nrows = int_arg(info, 4, "nrows", 0, kMax), vocab = int_arg(info, 5, "vocab", 0, kMax), dim = int_arg(info, 6, "dim", 0, kMax);
  View p = f32_view(info, 0, "param", mul(vocab, dim)), a = f32_view(info, 1, "acc", mul(vocab, dim)), r = f32_view(info, 2, "rows", nrows),
       g = f32_view(info, 3, "values", mul(nrows, dim));
  auto f = [&](size_t i, const char* name) { return static_cast<float>(num_arg(info, i, name)); };
  Device dev = common_device("SparseAdagrad", {&p, &a, &r, &g});
  QGS_DISPATCH(info.Env(), "SparseAdagrad", dev, sparse_adagrad_step, p.as<float>(), a.as<float>(), r.as<int32_t>(), g.as<float>(),
               nrows, vocab, dim, f(7, "lr"), f(8, "eps"), f(9, "weightDecay"));
  return info.Env().Undefined();
}

// sumSquares(x, n) -> number
QGS_BINDING(sumSquares) {
  int64_t n = int_arg(info, 1, "n", 0, kMax);
  View x = f32_view(info, 0, "x", n);
  Device dev = common_device("sumSquares", {&x});
  double s = QGS_DISPATCH(info.Env(), "clipGradNorm", dev, sum_squares, x.as<float>(), n);
  return Napi::Number::New(info.Env(), s);
}

// scaleInplace(x, n, s)
QGS_BINDING(scaleInplace) {
  int64_t n = int_arg(info, 1, "n", 0, kMax);
  float s = static_cast<float>(num_arg(info, 2, "s"));
  View x = f32_view(info, 0, "x", n);
  Device dev = common_device("scaleInplace", {&x});
  QGS_DISPATCH(info.Env(), "clipGradNorm", dev, scale_inplace, x.as<float>(), n, s);
  return info.Env().Undefined();
}

void register_core_nn(Napi::Env env, Napi::Object exports) {
  QGS_EXPORT(exports, env, gemm);
  QGS_EXPORT(exports, env, broadcastRows);
  QGS_EXPORT(exports, env, sumRows);
  QGS_EXPORT(exports, env, blasSgemmRate);
  QGS_EXPORT(exports, env, gemmBackend);
  QGS_EXPORT(exports, env, softmaxForward);
  QGS_EXPORT(exports, env, softmaxBackward);
  QGS_EXPORT(exports, env, layerNormForward);
  QGS_EXPORT(exports, env, layerNormBackward);
  QGS_EXPORT(exports, env, embeddingForward);
  QGS_EXPORT(exports, env, indexAddRows);
  QGS_EXPORT(exports, env, l2NormalizeForward);
  QGS_EXPORT(exports, env, l2NormalizeBackward);
  QGS_EXPORT(exports, env, bceWithLogits);
  QGS_EXPORT(exports, env, crossEntropyForward);
  QGS_EXPORT(exports, env, rowDot);
  QGS_EXPORT(exports, env, rowDotsMany);
  QGS_EXPORT(exports, env, concatPosNeg);
  QGS_EXPORT(exports, env, splitPosNeg);
  QGS_EXPORT(exports, env, infonceRowsBackward);
  QGS_EXPORT(exports, env, scaleBy);
  QGS_EXPORT(exports, env, scaleRows);
  QGS_EXPORT(exports, env, adamwStep);
  QGS_EXPORT(exports, env, sparseAdamStep);
  QGS_EXPORT(exports, env, sparseAdagradStep);
  QGS_EXPORT(exports, env, sumSquares);
  QGS_EXPORT(exports, env, scaleInplace);
}

}  // namespace qgs::napi
