// Linear recurrence kernel vs double-precision references (token-by-token scan and the O(L²) masked
// form), fresh random inputs, poisoned outputs, padded and packed batches, chunk-size invariance,
// extreme decays, big L, bad arguments.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "qgs/linrec.h"
#include "test_util.h"

using namespace qgs_test;
using qgs::LinrecConfig;
using qgs::LinrecDecay;

namespace {

struct Seq {
  int64_t start, len, cap;
};
Seq seq_of(const LinrecConfig& c, int64_t b) {
  if (c.offsets) return {c.offsets[b], c.offsets[b + 1] - c.offsets[b], c.offsets[b + 1] - c.offsets[b]};
  return {b * c.max_len, c.lengths ? c.lengths[b] : c.max_len, c.max_len};
}

struct Inputs {
  LinrecConfig cfg;
  int64_t rows;
  std::vector<float> q, k, v, decay, init, dout, dstate;
  std::vector<int32_t> offsets, lengths;
};

double gamma_at(const Inputs& in, int64_t row, int64_t h) {
  if (in.cfg.decay == LinrecDecay::PerHead) return in.decay[h];
  if (in.cfg.decay == LinrecDecay::PerStep) return in.decay[row * in.cfg.heads + h];
  return 1.0;
}
double c_at(const LinrecConfig& c, int64_t t) { return c.inv_t ? double(c.scale) / double(t + 1) : double(c.scale); }

struct Grads {
  std::vector<double> out, state, dq, dk, dv, ddecay, dinit;
  std::vector<double> ddecay_mag;  // Σ |terms| of each ddecay entry (the scale of its float rounding)
};

// Token-by-token scan forward and reverse-scan backward (DESIGN.md §4.1), all in double.
Grads reference(const Inputs& in) {
  const auto& c = in.cfg;
  const int64_t H = c.heads, dk = c.dk, dv = c.dv;
  Grads g;
  g.out.assign(in.rows * H * dv, 0.0);
  g.state.assign(c.batch * H * dk * dv, 0.0);
  g.dq.assign(in.rows * H * dk, 0.0);
  g.dk.assign(in.rows * H * dk, 0.0);
  g.dv.assign(in.rows * H * dv, 0.0);
  g.ddecay.assign(c.decay == LinrecDecay::PerHead ? H : c.decay == LinrecDecay::PerStep ? in.rows * H : 0, 0.0);
  g.ddecay_mag.assign(g.ddecay.size(), 0.0);
  g.dinit.assign(c.batch * H * dk * dv, 0.0);
  for (int64_t b = 0; b < c.batch; ++b) {
    Seq sq = seq_of(c, b);
    for (int64_t h = 0; h < H; ++h) {
      std::vector<std::vector<double>> S(sq.len + 1, std::vector<double>(dk * dv, 0.0));
      if (!in.init.empty())
        for (int64_t i = 0; i < dk * dv; ++i) S[0][i] = in.init[(b * H + h) * dk * dv + i];
      for (int64_t t = 0; t < sq.len; ++t) {
        int64_t row = sq.start + t;
        double gm = gamma_at(in, row, h);
        const float* qt = &in.q[(row * H + h) * dk];
        const float* kt = &in.k[(row * H + h) * dk];
        const float* vt = &in.v[(row * H + h) * dv];
        for (int64_t p = 0; p < dk; ++p)
          for (int64_t j = 0; j < dv; ++j) S[t + 1][p * dv + j] = gm * S[t][p * dv + j] + double(kt[p]) * vt[j];
        for (int64_t j = 0; j < dv; ++j) {
          double o = 0;
          for (int64_t p = 0; p < dk; ++p) o += double(qt[p]) * S[t + 1][p * dv + j];
          g.out[(row * H + h) * dv + j] = c_at(c, t) * o;
        }
      }
      for (int64_t i = 0; i < dk * dv; ++i) g.state[(b * H + h) * dk * dv + i] = S[sq.len][i];
      std::vector<double> R(dk * dv, 0.0);
      if (!in.dstate.empty())
        for (int64_t i = 0; i < dk * dv; ++i) R[i] = in.dstate[(b * H + h) * dk * dv + i];
      for (int64_t t = sq.len - 1; t >= 0; --t) {
        int64_t row = sq.start + t;
        const float* qt = &in.q[(row * H + h) * dk];
        const float* kt = &in.k[(row * H + h) * dk];
        const float* vt = &in.v[(row * H + h) * dv];
        std::vector<double> gt(dv);
        for (int64_t j = 0; j < dv; ++j) gt[j] = c_at(c, t) * in.dout[(row * H + h) * dv + j];
        for (int64_t p = 0; p < dk; ++p)
          for (int64_t j = 0; j < dv; ++j) R[p * dv + j] += double(qt[p]) * gt[j];
        for (int64_t p = 0; p < dk; ++p) {
          double a = 0, bb = 0;
          for (int64_t j = 0; j < dv; ++j) {
            a += S[t + 1][p * dv + j] * gt[j];
            bb += R[p * dv + j] * vt[j];
          }
          g.dq[(row * H + h) * dk + p] = a;
          g.dk[(row * H + h) * dk + p] = bb;
        }
        for (int64_t j = 0; j < dv; ++j) {
          double a = 0;
          for (int64_t p = 0; p < dk; ++p) a += R[p * dv + j] * kt[p];
          g.dv[(row * H + h) * dv + j] = a;
        }
        double dg = 0, mag = 0;
        for (int64_t i = 0; i < dk * dv; ++i) dg += R[i] * S[t][i], mag += std::fabs(R[i] * S[t][i]);
        if (c.decay == LinrecDecay::PerHead) g.ddecay[h] += dg, g.ddecay_mag[h] += mag;
        if (c.decay == LinrecDecay::PerStep) g.ddecay[row * H + h] = dg, g.ddecay_mag[row * H + h] = mag;
        double gm = gamma_at(in, row, h);
        for (auto& x : R) x *= gm;
      }
      for (int64_t i = 0; i < dk * dv; ++i) g.dinit[(b * H + h) * dk * dv + i] = R[i];
    }
  }
  return g;
}

// The O(L²) masked form o_t = c_t (Σ_{j≤t} w(j,t)(q_t·k_j) v_j + w(−1,t) q_t S_0), forward only.
std::vector<double> quadratic_reference(const Inputs& in) {
  const auto& c = in.cfg;
  const int64_t H = c.heads, dk = c.dk, dv = c.dv;
  std::vector<double> out(in.rows * H * dv, 0.0);
  for (int64_t b = 0; b < c.batch; ++b) {
    Seq sq = seq_of(c, b);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < sq.len; ++t) {
        int64_t rt = sq.start + t;
        std::vector<double> o(dv, 0.0);
        double w = 1;  // w(j, t) = Π_{m=j+1..t} γ_m, built from j = t downwards
        for (int64_t j = t; j >= 0; --j) {
          int64_t rj = sq.start + j;
          double qk = 0;
          for (int64_t p = 0; p < dk; ++p) qk += double(in.q[(rt * H + h) * dk + p]) * in.k[(rj * H + h) * dk + p];
          for (int64_t e = 0; e < dv; ++e) o[e] += w * qk * in.v[(rj * H + h) * dv + e];
          w *= gamma_at(in, rj, h);
        }
        if (!in.init.empty())
          for (int64_t e = 0; e < dv; ++e) {
            double a = 0;
            for (int64_t p = 0; p < dk; ++p) a += double(in.q[(rt * H + h) * dk + p]) * in.init[((b * H + h) * dk + p) * dv + e];
            o[e] += w * a;
          }
        for (int64_t e = 0; e < dv; ++e) out[(rt * H + h) * dv + e] = c_at(c, t) * o[e];
      }
  }
  return out;
}

Inputs make(Rng& rng, int64_t B, int64_t L, int64_t H, int64_t dk, int64_t dv, bool packed, LinrecDecay decay,
            bool init, bool inv_t, int64_t chunk, float gmin = 0.5f, float gmax = 1.f) {
  Inputs in;
  in.cfg.batch = B;
  in.cfg.heads = H;
  in.cfg.dk = dk;
  in.cfg.dv = dv;
  in.cfg.decay = decay;
  in.cfg.chunk = chunk;
  in.cfg.inv_t = inv_t;
  in.cfg.scale = inv_t ? 1.f : 1.f / float(std::max<int64_t>(L, 1));
  if (packed) {
    in.offsets.push_back(0);
    for (int64_t b = 0; b < B; ++b) {
      int64_t len = rng.integer(0, 3) == 0 ? rng.integer(0, 1) : rng.integer(0, L);
      in.offsets.push_back(in.offsets.back() + int32_t(len));
    }
    in.cfg.offsets = in.offsets.data();
    in.rows = in.offsets.back();
  } else {
    in.cfg.max_len = L;
    for (int64_t b = 0; b < B; ++b) in.lengths.push_back(int32_t(b == 0 ? L : rng.integer(0, L)));
    in.cfg.lengths = in.lengths.data();
    in.rows = B * L;
  }
  in.q = rng.normals(in.rows * H * dk);
  in.k = rng.normals(in.rows * H * dk);
  in.v = rng.normals(in.rows * H * dv);
  in.dout = rng.normals(in.rows * H * dv);
  if (decay == LinrecDecay::PerHead)
    for (int64_t h = 0; h < H; ++h) in.decay.push_back(rng.uniform(gmin, gmax));
  if (decay == LinrecDecay::PerStep)
    for (int64_t i = 0; i < in.rows * H; ++i) in.decay.push_back(rng.uniform(gmin, gmax));
  if (init) {
    in.init = rng.normals(B * H * dk * dv, 0.5f);
    in.dstate = rng.normals(B * H * dk * dv);
  }
  return in;
}

struct Outputs {
  std::vector<float> out, state, dq, dk, dv, ddecay, dinit;
};

Outputs run(const Inputs& in) {
  const auto& c = in.cfg;
  Outputs o;
  o.out = poisoned(in.rows * c.heads * c.dv);
  o.state = poisoned(c.batch * c.heads * c.dk * c.dv);
  o.dq = poisoned(in.rows * c.heads * c.dk);
  o.dk = poisoned(in.rows * c.heads * c.dk);
  o.dv = poisoned(in.rows * c.heads * c.dv);
  o.ddecay = poisoned(c.decay == LinrecDecay::PerHead ? c.heads : c.decay == LinrecDecay::PerStep ? in.rows * c.heads : 0);
  o.dinit = poisoned(c.batch * c.heads * c.dk * c.dv);
  const float* decay = in.decay.empty() ? nullptr : in.decay.data();
  const float* init = in.init.empty() ? nullptr : in.init.data();
  const float* dstate = in.dstate.empty() ? nullptr : in.dstate.data();
  qgs::cpu::linrec_forward(o.out.data(), o.state.data(), in.q.data(), in.k.data(), in.v.data(), decay, init, c);
  qgs::cpu::linrec_backward(o.dq.data(), o.dk.data(), o.dv.data(), o.ddecay.empty() ? nullptr : o.ddecay.data(),
                            o.dinit.data(), in.q.data(), in.k.data(), in.v.data(), decay, init, in.dout.data(), dstate, c);
  return o;
}

// A decay gradient is one sum over every (step, dk, dv) product of the row (H = 1: L·dk·dv ≈ 5e5
// terms) and those products cancel, so its float result can be off by 1e-4 relative to itself while
// exact to 1e-7 relative to the size of the terms. It passes on relative error < tol, or when every
// entry's error is below tol x the sum of its terms' magnitudes; a wrong formula is off by O(terms).
void check_ddecay(const std::string& what, const std::vector<float>& got, const Grads& r, double tol) {
  bool all_small = got.size() == r.ddecay.size();
  for (size_t i = 0; all_small && i < got.size(); ++i)
    all_small = std::isfinite(got[i]) && std::fabs(double(got[i]) - r.ddecay[i]) <= tol * r.ddecay_mag[i];
  if (all_small) {
    check(true, what);
    return;
  }
  check_close(what, got, r.ddecay, tol);
}

void compare(const std::string& what, const Inputs& in, double tol, double gtol) {
  Outputs o = run(in);
  Grads r = reference(in);
  check_close(what + " out", o.out, r.out, tol);
  check_close(what + " state", o.state, r.state, tol);
  check_close(what + " dq", o.dq, r.dq, gtol);
  check_close(what + " dk", o.dk, r.dk, gtol);
  check_close(what + " dv", o.dv, r.dv, gtol);
  if (!r.ddecay.empty()) check_ddecay(what + " ddecay", o.ddecay, r, gtol);
  check_close(what + " dinit", o.dinit, r.dinit, gtol);
}

}  // namespace

int main() {
  uint64_t seed = fresh_seed();
  Rng rng(seed);
  const LinrecDecay decays[] = {LinrecDecay::None, LinrecDecay::PerHead, LinrecDecay::PerStep};
  // Sweep of odd sizes, both layouts, all decay modes, both scales, with/without initial state.
  const int64_t Ls[] = {1, 2, 7, 64, 65, 130};
  const int64_t ds[] = {1, 3, 16, 64};
  int combo = 0;
  for (int64_t L : Ls)
    for (int64_t d : ds)
      for (LinrecDecay dec : decays) {
        ++combo;
        int64_t H = combo % 2 ? 1 : 4;
        bool packed = combo % 3 == 0, init = combo % 2 == 0, inv_t = combo % 5 == 0;
        int64_t dv = combo % 4 == 0 ? d + 1 : d;
        int64_t chunk = (combo % 3 == 1) ? 16 : 64;
        Inputs in = make(rng, 3, L, H, d, dv, packed, dec, init, inv_t, chunk);
        std::string what = "L=" + std::to_string(L) + " d=" + std::to_string(d) + " dv=" + std::to_string(dv) +
                           " H=" + std::to_string(H) + " decay=" + std::to_string(int(dec)) + (packed ? " packed" : " padded") +
                           (init ? " init" : "") + (inv_t ? " 1/t" : "") + " C=" + std::to_string(chunk);
        compare(what, in, 1e-5, 1e-4);
      }
  // The chunked kernel against the O(L²) masked form.
  {
    Inputs in = make(rng, 2, 77, 2, 5, 6, true, LinrecDecay::PerStep, true, false, 16);
    Outputs o = run(in);
    check_close("vs quadratic form", o.out, quadratic_reference(in), 1e-5);
  }
  // Long sequences (L = 1000) with the default chunk and d = 64, per-head decay near 1.
  {
    Inputs in = make(rng, 2, 1000, 2, 64, 64, false, LinrecDecay::PerHead, true, false, 64, 0.99f, 1.f);
    compare("L=1000 d=64", in, 1e-5, 1e-4);
  }
  // Chunk size invariance: identical inputs, chunks 1, 7, 64, 256 agree to fp32 rounding.
  {
    Inputs in = make(rng, 3, 300, 2, 16, 16, true, LinrecDecay::PerStep, true, true, 64);
    Outputs base = run(in);
    for (int64_t ch : {1, 7, 256}) {
      Inputs in2 = in;
      in2.cfg.chunk = ch;
      in2.cfg.offsets = in2.offsets.data();
      Outputs o = run(in2);
      std::vector<double> ref(base.out.begin(), base.out.end()), refdk(base.dk.begin(), base.dk.end()),
          refdg(base.ddecay.begin(), base.ddecay.end());
      check_close("chunk " + std::to_string(ch) + " out", o.out, ref, 1e-5);
      check_close("chunk " + std::to_string(ch) + " dk", o.dk, refdk, 1e-4);
      check_close("chunk " + std::to_string(ch) + " ddecay", o.ddecay, refdg, 1e-4);
    }
  }
  // Packed batch (with empty and length-1 sequences) equals the padded one.
  {
    Inputs pk = make(rng, 5, 40, 2, 8, 8, true, LinrecDecay::PerStep, true, false, 16);
    pk.offsets = {0, 0, 1, 41, 41, 58};
    pk.cfg.offsets = pk.offsets.data();
    pk.rows = 58;
    Inputs pk2 = make(rng, 5, 40, 2, 8, 8, true, LinrecDecay::PerStep, true, false, 16);
    (void)pk2;
    pk.q = rng.normals(pk.rows * 2 * 8);
    pk.k = rng.normals(pk.rows * 2 * 8);
    pk.v = rng.normals(pk.rows * 2 * 8);
    pk.dout = rng.normals(pk.rows * 2 * 8);
    pk.decay.clear();
    for (int64_t i = 0; i < pk.rows * 2; ++i) pk.decay.push_back(rng.uniform(0.3f, 1.f));
    pk.cfg.scale = 0.1f;
    Inputs pd = pk;
    pd.cfg.offsets = nullptr;
    pd.cfg.max_len = 40;
    pd.lengths = {0, 1, 40, 0, 17};
    pd.cfg.lengths = pd.lengths.data();
    pd.rows = 5 * 40;
    auto scatter = [&](const std::vector<float>& src, int64_t w, float fill) {
      std::vector<float> dst(pd.rows * w, fill);
      for (int64_t b = 0; b < 5; ++b)
        for (int64_t t = 0; t < pd.lengths[b]; ++t)
          std::memcpy(&dst[(b * 40 + t) * w], &src[(pk.offsets[b] + t) * w], sizeof(float) * w);
      return dst;
    };
    pd.q = scatter(pk.q, 16, 7.f);  // garbage in padding must not matter
    pd.k = scatter(pk.k, 16, -3.f);
    pd.v = scatter(pk.v, 16, 5.f);
    pd.dout = scatter(pk.dout, 16, 9.f);
    pd.decay = scatter(pk.decay, 2, 0.5f);
    Outputs a = run(pk), bo = run(pd);
    std::vector<double> outp(bo.out.size()), dqp(bo.dq.size());
    auto gathered = [&](const std::vector<float>& src, int64_t w) {
      std::vector<double> dst;
      for (int64_t b = 0; b < 5; ++b)
        for (int64_t t = 0; t < pd.lengths[b]; ++t)
          for (int64_t i = 0; i < w; ++i) dst.push_back(src[(b * 40 + t) * w + i]);
      return dst;
    };
    check_close("packed == padded out", a.out, gathered(bo.out, 16), 1e-6);
    check_close("packed == padded dq", a.dq, gathered(bo.dq, 16), 1e-6);
    check_close("packed == padded ddecay", a.ddecay, gathered(bo.ddecay, 2), 1e-6);
    std::vector<double> st(bo.state.begin(), bo.state.end()), di(bo.dinit.begin(), bo.dinit.end());
    check_close("packed == padded state", a.state, st, 1e-6);
    check_close("packed == padded dinit", a.dinit, di, 1e-6);
    bool pad_zero = true;
    for (int64_t b = 0; b < 5; ++b)
      for (int64_t t = pd.lengths[b]; t < 40; ++t)
        for (int64_t i = 0; i < 16; ++i)
          pad_zero = pad_zero && bo.out[(b * 40 + t) * 16 + i] == 0.f && bo.dq[(b * 40 + t) * 16 + i] == 0.f &&
                     bo.dv[(b * 40 + t) * 16 + i] == 0.f;
    check(pad_zero, "padding rows get zero outputs and gradients");
  }
  // Extreme decays: γ = 0 exactly, γ ∈ [1e-6, 1] per step, γ ≈ 1 per head: finite and correct.
  {
    Inputs in = make(rng, 2, 200, 2, 16, 16, false, LinrecDecay::PerStep, true, false, 64, 0.f, 1.f);
    for (size_t i = 0; i < in.decay.size(); ++i) in.decay[i] = float(std::pow(10.0, -6.0 * rng.uniform(0.f, 1.f)));
    in.decay[3] = 0.f;
    in.decay[100] = 1.f;
    compare("per-step decays 1e-6..1", in, 1e-5, 1e-4);
    Inputs in2 = make(rng, 2, 150, 2, 8, 8, true, LinrecDecay::PerHead, true, false, 64);
    in2.decay = {0.f, 1e-7f};
    compare("per-head decay 0 and 1e-7", in2, 1e-5, 1e-4);
    in2.decay = {0.9999999f, 1.f};
    compare("per-head decay ~1", in2, 1e-5, 1e-4);
  }
  // Bad arguments throw KernelError instead of crashing.
  {
    Inputs in = make(rng, 2, 5, 1, 2, 2, true, LinrecDecay::PerHead, false, false, 64);
    std::vector<float> out(64 * 4);
    LinrecConfig c = in.cfg;
    std::vector<int32_t> bad = {0, 3, 2};
    c.offsets = bad.data();
    check_throws("offsets not increasing", [&] { qgs::cpu::linrec_forward(out.data(), nullptr, in.q.data(), in.k.data(), in.v.data(), in.decay.data(), nullptr, c); });
    std::vector<int32_t> bad0 = {1, 3, 4};
    c.offsets = bad0.data();
    check_throws("offsets[0] != 0", [&] { qgs::cpu::linrec_forward(out.data(), nullptr, in.q.data(), in.k.data(), in.v.data(), in.decay.data(), nullptr, c); });
    c = in.cfg;
    std::vector<float> dec = {1.5f};
    check_throws("decay > 1", [&] { qgs::cpu::linrec_forward(out.data(), nullptr, in.q.data(), in.k.data(), in.v.data(), dec.data(), nullptr, c); });
    dec = {std::nanf("")};
    check_throws("decay NaN", [&] { qgs::cpu::linrec_forward(out.data(), nullptr, in.q.data(), in.k.data(), in.v.data(), dec.data(), nullptr, c); });
    c.chunk = 0;
    check_throws("chunk 0", [&] { qgs::cpu::linrec_forward(out.data(), nullptr, in.q.data(), in.k.data(), in.v.data(), in.decay.data(), nullptr, c); });
    LinrecConfig p;
    p.batch = 1;
    p.heads = 1;
    p.dk = p.dv = 1;
    p.max_len = 3;
    std::vector<int32_t> len = {4};
    p.lengths = len.data();
    check_throws("length > L", [&] { qgs::cpu::linrec_forward(out.data(), nullptr, in.q.data(), in.k.data(), in.v.data(), nullptr, nullptr, p); });
  }
  return finish("test_linrec", seed);
}
