// Bindings for the elementwise / reduce / movement kernels (native/include/qgs/elementwise.h).
// The TS layer (src/ops/elementwise.ts, reduce.ts, movement.ts) validates user arguments and
// computes broadcast strides; this layer re-checks everything that could make a kernel read or
// write out of bounds (sizes against storage bytes, stride extents, indices), so a bad call from
// JS is an Error, never a crash.
#include <string>
#include <vector>

#include "napi_util.h"
#include "qgs/elementwise.h"

#ifdef QGS_WITH_CUDA
#include "qgs/cuda_runtime.h"
#endif

namespace qgs::napi {
namespace {

// Elements an input with these strides reads over `shape` (0 when the shape is empty).
int64_t extent(const Strided& s, int k) {
  int64_t e = 1;
  for (int d = 0; d < s.ndim; ++d) {
    if (s.shape[d] == 0) return 0;
    e += (s.shape[d] - 1) * s.stride[k][d];
  }
  return e;
}

int64_t shape_size(const Strided& s) {
  int64_t n = 1;
  for (int d = 0; d < s.ndim; ++d) n *= s.shape[d];
  return n;
}

// Reads shape (arg i) and nin stride arrays (args i+1 ...).
Strided strided_args(const Napi::CallbackInfo& info, size_t i, int nin, const char* op) {
  Strided s;
  std::vector<int64_t> shape = ints_arg(info, i, "shape");
  QGS_REQUIRE(shape.size() <= static_cast<size_t>(kMaxDims),
              std::string(op) + ": at most " + std::to_string(kMaxDims) + " dimensions, got " + std::to_string(shape.size()));
  s.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < s.ndim; ++d) {
    QGS_REQUIRE(shape[d] >= 0, std::string(op) + ": shape must be non-negative");
    s.shape[d] = shape[d];
  }
  for (int k = 0; k < nin; ++k) {
    std::vector<int64_t> st = ints_arg(info, i + 1 + k, "strides");
    QGS_REQUIRE(st.size() == shape.size(), std::string(op) + ": strides of input " + std::to_string(k) + " have " +
                                               std::to_string(st.size()) + " entries, expected " + std::to_string(shape.size()));
    for (int d = 0; d < s.ndim; ++d) {
      QGS_REQUIRE(st[d] >= 0, std::string(op) + ": strides must be non-negative");
      s.stride[k][d] = st[d];
    }
  }
  return s;
}

constexpr int kF32 = 0;
constexpr int kI32 = 1;

// ewBinary(op, dtype, out, a, b, shape, aStrides, bStrides)
QGS_BINDING(ewBinary) {
  auto op = static_cast<BinaryOp>(int_arg(info, 0, "op", 0, 8));
  int dtype = static_cast<int>(int_arg(info, 1, "dtype", 0, 1));
  Strided s = strided_args(info, 5, 2, "binary");
  int64_t n = shape_size(s);
  View out = storage_arg(info, 2, "out", static_cast<size_t>(n) * 4);
  View a = storage_arg(info, 3, "a", static_cast<size_t>(extent(s, 0)) * 4);
  View b = storage_arg(info, 4, "b", static_cast<size_t>(extent(s, 1)) * 4);
  Device d = common_device("binary", {&out, &a, &b});
  if (dtype == kI32) {
    QGS_REQUIRE(op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::Mul || op == BinaryOp::Max ||
                    op == BinaryOp::Min,
                "binary: this op does not support dtype i32 (add, sub, mul, maximum, minimum do)");
  }
  if (n == 0) return info.Env().Undefined();
  if (d == Device::CPU) {
    if (dtype == kF32) qgs::cpu::binary_f32(op, out.as<float>(), a.as<float>(), b.as<float>(), s);
    else qgs::cpu::binary_i32(op, out.as<int32_t>(), a.as<int32_t>(), b.as<int32_t>(), s);
  } else {
#ifdef QGS_WITH_CUDA
    if (dtype == kF32) qgs::cuda::binary_f32(op, out.as<float>(), a.as<float>(), b.as<float>(), s);
    else qgs::cuda::binary_i32(op, out.as<int32_t>(), a.as<int32_t>(), b.as<int32_t>(), s);
#endif
  }
  return info.Env().Undefined();
}

// ewBinaryBackward(op, da|null, db|null, dy, a, b, shape, aStrides, bStrides): da/db output-shaped.
QGS_BINDING(ewBinaryBackward) {
  auto op = static_cast<BinaryOp>(int_arg(info, 0, "op", 0, 8));
  Strided s = strided_args(info, 6, 2, "binary_backward");
  int64_t n = shape_size(s);
  View da = optional_storage_arg(info, 1, "da", static_cast<size_t>(n) * 4);
  View db = optional_storage_arg(info, 2, "db", static_cast<size_t>(n) * 4);
  View dy = storage_arg(info, 3, "dy", static_cast<size_t>(n) * 4);
  View a = storage_arg(info, 4, "a", static_cast<size_t>(extent(s, 0)) * 4);
  View b = storage_arg(info, 5, "b", static_cast<size_t>(extent(s, 1)) * 4);
  Device d = common_device("binary_backward", {&da, &db, &dy, &a, &b});
  if (n == 0) return info.Env().Undefined();
  if (d == Device::CPU) {
    qgs::cpu::binary_backward_f32(op, da.as<float>(), db.as<float>(), dy.as<float>(), a.as<float>(), b.as<float>(), s);
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::binary_backward_f32(op, da.as<float>(), db.as<float>(), dy.as<float>(), a.as<float>(), b.as<float>(), s);
#endif
  }
  return info.Env().Undefined();
}

// ewWhere(out, cond, a, b, shape, condStrides, aStrides, bStrides)
QGS_BINDING(ewWhere) {
  Strided s = strided_args(info, 4, 3, "where");
  int64_t n = shape_size(s);
  View out = storage_arg(info, 0, "out", static_cast<size_t>(n) * 4);
  View c = storage_arg(info, 1, "cond", static_cast<size_t>(extent(s, 0)) * 4);
  View a = storage_arg(info, 2, "a", static_cast<size_t>(extent(s, 1)) * 4);
  View b = storage_arg(info, 3, "b", static_cast<size_t>(extent(s, 2)) * 4);
  Device d = common_device("where", {&out, &c, &a, &b});
  if (n == 0) return info.Env().Undefined();
  if (d == Device::CPU) {
    qgs::cpu::where_f32(out.as<float>(), c.as<float>(), a.as<float>(), b.as<float>(), s);
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::where_f32(out.as<float>(), c.as<float>(), a.as<float>(), b.as<float>(), s);
#endif
  }
  return info.Env().Undefined();
}

// ewUnary(op, out, x, n, p1, p2)
QGS_BINDING(ewUnary) {
  auto op = static_cast<UnaryOp>(int_arg(info, 0, "op", 0, 13));
  int64_t n = int_arg(info, 3, "n", 0);
  float* out = nullptr;
  View o = storage_arg(info, 1, "out", static_cast<size_t>(n) * 4);
  View x = storage_arg(info, 2, "x", static_cast<size_t>(n) * 4);
  float p1 = static_cast<float>(num_arg(info, 4, "p1"));
  float p2 = static_cast<float>(num_arg(info, 5, "p2"));
  Device d = common_device("unary", {&o, &x});
  out = o.as<float>();
  if (n == 0) return info.Env().Undefined();
  if (d == Device::CPU) {
    qgs::cpu::unary_f32(op, out, x.as<float>(), n, p1, p2);
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::unary_f32(op, out, x.as<float>(), n, p1, p2);
#endif
  }
  return info.Env().Undefined();
}

bool reads_y(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Sqrt || op == UnaryOp::Tanh || op == UnaryOp::Sigmoid;
}
bool reads_x(UnaryOp op) { return !reads_y(op) && op != UnaryOp::Neg && op != UnaryOp::Affine; }

// ewUnaryBackward(op, dx, dy, x|null, y|null, n, p1, p2)
QGS_BINDING(ewUnaryBackward) {
  auto op = static_cast<UnaryOp>(int_arg(info, 0, "op", 0, 13));
  int64_t n = int_arg(info, 5, "n", 0);
  View dx = storage_arg(info, 1, "dx", static_cast<size_t>(n) * 4);
  View dy = storage_arg(info, 2, "dy", static_cast<size_t>(n) * 4);
  View x = optional_storage_arg(info, 3, "x", static_cast<size_t>(n) * 4);
  View y = optional_storage_arg(info, 4, "y", static_cast<size_t>(n) * 4);
  float p1 = static_cast<float>(num_arg(info, 6, "p1"));
  float p2 = static_cast<float>(num_arg(info, 7, "p2"));
  QGS_REQUIRE(!reads_x(op) || x.ptr != nullptr, "unary_backward: this op needs the forward input x");
  QGS_REQUIRE(!reads_y(op) || y.ptr != nullptr, "unary_backward: this op needs the forward output y");
  Device d = common_device("unary_backward", {&dx, &dy, &x, &y});
  if (n == 0) return info.Env().Undefined();
  if (d == Device::CPU) {
    qgs::cpu::unary_backward_f32(op, dx.as<float>(), dy.as<float>(), x.as<float>(), y.as<float>(), n, p1, p2);
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::unary_backward_f32(op, dx.as<float>(), dy.as<float>(), x.as<float>(), y.as<float>(), n, p1, p2);
#endif
  }
  return info.Env().Undefined();
}

// ewReduce(op, out, x, outer, r, inner, scale)
QGS_BINDING(ewReduce) {
  auto op = static_cast<ReduceOp>(int_arg(info, 0, "op", 0, 2));
  int64_t outer = int_arg(info, 3, "outer", 0), r = int_arg(info, 4, "r", 0), inner = int_arg(info, 5, "inner", 0);
  double scale = num_arg(info, 6, "scale");
  View out = storage_arg(info, 1, "out", static_cast<size_t>(outer * inner) * 4);
  View x = storage_arg(info, 2, "x", static_cast<size_t>(outer * r * inner) * 4);
  Device d = common_device("reduce", {&out, &x});
  if (d == Device::CPU) {
    qgs::cpu::reduce_f32(op, out.as<float>(), x.as<float>(), outer, r, inner, scale);
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::reduce_f32(op, out.as<float>(), x.as<float>(), outer, r, inner, scale);
#endif
  }
  return info.Env().Undefined();
}

// ewStridedCopy(dst, dstOffset, dstStrides, src, srcOffset, srcStrides, shape): 4-byte words.
QGS_BINDING(ewStridedCopy) {
  int64_t doff = int_arg(info, 1, "dstOffset", 0), soff = int_arg(info, 4, "srcOffset", 0);
  std::vector<int64_t> ds = ints_arg(info, 2, "dstStrides"), ss = ints_arg(info, 5, "srcStrides");
  std::vector<int64_t> shape = ints_arg(info, 6, "shape");
  QGS_REQUIRE(shape.size() <= static_cast<size_t>(kMaxDims) && ds.size() == shape.size() && ss.size() == shape.size(),
              "strided_copy: shape and strides must have the same length (<= 16)");
  int64_t de = 1, se = 1;
  bool empty = false;
  for (size_t k = 0; k < shape.size(); ++k) {
    QGS_REQUIRE(shape[k] >= 0 && ds[k] >= 0 && ss[k] >= 0, "strided_copy: shape and strides must be non-negative");
    if (shape[k] == 0) empty = true;
    de += (shape[k] - 1) * ds[k];
    se += (shape[k] - 1) * ss[k];
  }
  if (empty) de = se = 0;
  View dst = storage_arg(info, 0, "dst", static_cast<size_t>(doff + de) * 4);
  View src = storage_arg(info, 3, "src", static_cast<size_t>(soff + se) * 4);
  Device d = common_device("strided_copy", {&dst, &src});
  if (empty) return info.Env().Undefined();
  uint32_t* dp = dst.as<uint32_t>() + doff;
  const uint32_t* sp = src.as<uint32_t>() + soff;
  if (d == Device::CPU) {
    qgs::cpu::strided_copy(dp, ds.data(), sp, ss.data(), shape.data(), static_cast<int>(shape.size()));
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::strided_copy(dp, ds.data(), sp, ss.data(), shape.data(), static_cast<int>(shape.size()));
#endif
  }
  return info.Env().Undefined();
}

// Index check before any kernel runs (CUDA indices are copied to the host for it).
void check_indices(const View& idx, int64_t m, int64_t n) {
  if (idx.device == Device::CPU) {
    qgs::cpu::gather_check_indices(idx.as<int32_t>(), m, n);
  } else {
#ifdef QGS_WITH_CUDA
    std::vector<int32_t> host(static_cast<size_t>(m));
    qgs::cuda::copy_d2h(host.data(), idx.ptr, static_cast<size_t>(m) * 4);
    qgs::cpu::gather_check_indices(host.data(), m, n);
#endif
  }
}

// ewEmbeddingBag(out, table, ids, weights | null, V, D, N, m, mean, paddingIdx): CPU only (serving inference).
QGS_BINDING(ewEmbeddingBag) {
  const int64_t V = int_arg(info, 4, "V", 0), D = int_arg(info, 5, "D", 1), N = int_arg(info, 6, "N", 0), m = int_arg(info, 7, "m", 1);
  const bool mean = bool_arg(info, 8, "mean");
  const int64_t padding_idx = int_arg(info, 9, "paddingIdx", -1, INT32_MAX);
  std::vector<View> all;
  all.push_back(storage_arg(info, 0, "out", static_cast<size_t>(N * D) * 4));
  all.push_back(storage_arg(info, 1, "table", static_cast<size_t>(V * D) * 4));
  all.push_back(storage_arg(info, 2, "ids", static_cast<size_t>(N * m) * 4));
  all.push_back(optional_storage_arg(info, 3, "weights", static_cast<size_t>(N * m) * 4));
  require_cpu(info, "embeddingBag", all);
  qgs::cpu::embedding_bag_f32(all[0].as<float>(), all[1].as<float>(), V, D, all[2].as<int32_t>(), all[3].as<float>(), N, m, mean,
                              padding_idx);
  return info.Env().Undefined();
}

// ewGather(out, x, idx, outer, n, inner, m)
QGS_BINDING(ewGather) {
  int64_t outer = int_arg(info, 3, "outer", 0), n = int_arg(info, 4, "n", 0), inner = int_arg(info, 5, "inner", 0),
          m = int_arg(info, 6, "m", 0);
  View out = storage_arg(info, 0, "out", static_cast<size_t>(outer * m * inner) * 4);
  View x = storage_arg(info, 1, "x", static_cast<size_t>(outer * n * inner) * 4);
  View idx = storage_arg(info, 2, "indices", static_cast<size_t>(m) * 4);
  Device d = common_device("gather", {&out, &x, &idx});
  check_indices(idx, m, n);
  if (d == Device::CPU) {
    qgs::cpu::gather(out.as<uint32_t>(), x.as<uint32_t>(), idx.as<int32_t>(), outer, n, inner, m);
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::gather(out.as<uint32_t>(), x.as<uint32_t>(), idx.as<int32_t>(), outer, n, inner, m);
#endif
  }
  return info.Env().Undefined();
}

// ewGatherBackward(dx, dy, idx, outer, n, inner, m): dx overwritten.
QGS_BINDING(ewGatherBackward) {
  int64_t outer = int_arg(info, 3, "outer", 0), n = int_arg(info, 4, "n", 0), inner = int_arg(info, 5, "inner", 0),
          m = int_arg(info, 6, "m", 0);
  View dx = storage_arg(info, 0, "dx", static_cast<size_t>(outer * n * inner) * 4);
  View dy = storage_arg(info, 1, "dy", static_cast<size_t>(outer * m * inner) * 4);
  View idx = storage_arg(info, 2, "indices", static_cast<size_t>(m) * 4);
  Device d = common_device("gather_backward", {&dx, &dy, &idx});
  check_indices(idx, m, n);
  if (d == Device::CPU) {
    qgs::cpu::gather_backward_f32(dx.as<float>(), dy.as<float>(), idx.as<int32_t>(), outer, n, inner, m);
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::gather_backward_f32(dx.as<float>(), dy.as<float>(), idx.as<int32_t>(), outer, n, inner, m);
#endif
  }
  return info.Env().Undefined();
}

// ewDropout(out, x, n, p, seed): seed an integer in [0, 2^53).
QGS_BINDING(ewDropout) {
  int64_t n = int_arg(info, 2, "n", 0);
  View out = storage_arg(info, 0, "out", static_cast<size_t>(n) * 4);
  View x = storage_arg(info, 1, "x", static_cast<size_t>(n) * 4);
  double p = num_arg(info, 3, "p");
  QGS_REQUIRE(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got " + std::to_string(p));
  auto seed = static_cast<uint64_t>(int_arg(info, 4, "seed", 0, (int64_t(1) << 53)));
  Device d = common_device("dropout", {&out, &x});
  if (n == 0) return info.Env().Undefined();
  if (d == Device::CPU) {
    qgs::cpu::dropout_f32(out.as<float>(), x.as<float>(), n, static_cast<float>(p), seed);
  } else {
#ifdef QGS_WITH_CUDA
    qgs::cuda::dropout_f32(out.as<float>(), x.as<float>(), n, static_cast<float>(p), seed);
#endif
  }
  return info.Env().Undefined();
}

}  // namespace

void register_core_elementwise(Napi::Env env, Napi::Object exports) {
  QGS_EXPORT(exports, env, ewBinary);
  QGS_EXPORT(exports, env, ewBinaryBackward);
  QGS_EXPORT(exports, env, ewWhere);
  QGS_EXPORT(exports, env, ewUnary);
  QGS_EXPORT(exports, env, ewUnaryBackward);
  QGS_EXPORT(exports, env, ewReduce);
  QGS_EXPORT(exports, env, ewStridedCopy);
  QGS_EXPORT(exports, env, ewGather);
  QGS_EXPORT(exports, env, ewEmbeddingBag);
  QGS_EXPORT(exports, env, ewGatherBackward);
  QGS_EXPORT(exports, env, ewDropout);
}

}  // namespace qgs::napi
