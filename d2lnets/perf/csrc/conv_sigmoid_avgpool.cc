/*
 * Convolution -> sigmoid -> 2x2 average pooling (stride 2), fused, on the CPU:
 * forward and backward, as one MXNet operator (`d2l_conv_sigmoid_avgpool`),
 * loaded with mx.library.load(). d2lnets builds it on first use
 * (d2lnets/perf/fused.py) and uses it only to train; exports and printouts keep
 * Gluon's own layers.
 *
 * Why: LeNet's convolutions have 1 and 6 input channels and 6 and 16 output
 * channels, too few for oneDNN 2.x's blocked kernels, so MXNet 1.9.1 runs them
 * and their gradients through a generic GEMM path, and the sigmoid and the
 * pooling each make one more pass over memory. Here the output channels are
 * the vector lanes, every multiply-add is a full-width FMA with a broadcast
 * input pixel, and the sigmoid and the pooling run while the convolution's
 * outputs are in cache. Lanes: with AVX-512, 8 floats for up to 8 channels,
 * else 16 (one zmm register); with AVX2, always 8 (one ymm register), more
 * channels as several blocks of 8: a 16-lane vector there takes two of the
 * 16 ymm registers, and LeNet's second block (16 channels) ran 3x slower
 * than MXNet's layers (register spills in the pixel blocks).
 *
 * Built once per instruction set (d2lnets/fused.py: -march=x86-64-v3 for
 * AVX2+FMA, -march=x86-64-v4 for AVX-512), each under its own operator name
 * (D2L_OP_NAME), so that several variants can be loaded into one process.
 *
 * Shapes: x (N, Ci, H, W), w (Co, Ci, K, K), b (Co) -> y (N, Co, Ho/2, Wo/2)
 * with Ho = H + 2P - K + 1 (stride 1); the pooling drops an odd last row or
 * column, as MXNet's Pooling (pooling_convention='valid') does.
 * Attributes: kernel (K), pad (P), num_filter (Co), need_data_grad (0: the
 * gradient of x is not computed, e.g. x is the network's input), training
 * (0: forward only, nothing saved for a backward).
 * Every thread works on whole images; partial weight gradients are summed in
 * thread order, so results do not depend on timing.
 */
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "mxnet/lib_api.h"

using namespace mxnet::ext;

namespace {

// Output channels are the lanes of a vector: 8 (for up to 8 channels) or 16.
typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
typedef float v16 __attribute__((vector_size(16 * sizeof(float))));
typedef int32_t vi8 __attribute__((vector_size(8 * sizeof(int32_t))));
typedef int32_t vi16 __attribute__((vector_size(16 * sizeof(int32_t))));
template <typename V> struct IntVec;
template <> struct IntVec<v8> { typedef vi8 type; };
template <> struct IntVec<v16> { typedef vi16 type; };
template <typename V> constexpr int lanes_of() { return sizeof(V) / sizeof(float); }
constexpr int MAX_LANES = 16;
typedef std::unordered_map<std::string, std::string> Attrs;

#ifndef D2L_OP_NAME
#define D2L_OP_NAME d2l_conv_sigmoid_avgpool
#endif

// Output pixels per register block: as many accumulators as leave room for
// the weight vector and the broadcast pixel.
#ifdef __AVX512F__
template <typename V> constexpr int pb_max() { return 14; }  // 32 zmm registers
#else
template <typename V> constexpr int pb_max() { return sizeof(V) == 32 ? 12 : 6; }  // 16 ymm registers
#endif

template <typename V> inline V splat(float a) { return V{} + a; }

template <typename V> inline V load_u(const float* p) {  // unaligned
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename V> inline void store_u(float* p, V v) { std::memcpy(p, &v, sizeof(v)); }

// Sum of the lanes, as a tree of halves (a sequential sum would be a chain of
// 16 dependent additions).
typedef float v4 __attribute__((vector_size(4 * sizeof(float))));
inline float hsum(v4 v) {
  const v4 h = v + __builtin_shufflevector(v, v, 2, 3, 0, 1);
  return h[0] + h[1];
}
inline float hsum(v8 v) {
  return hsum(__builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7));
}
inline float hsum(v16 v) {
  return hsum(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
              __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
}

// exp(x) to about 1 ulp (Cephes' expf polynomial), clamped so that 2^k stays a
// normal float; only used inside the sigmoid, where the clamp is invisible.
template <typename V> inline V vexp(V x) {
  typedef typename IntVec<V>::type VI;
  x = x < splat<V>(-87.f) ? splat<V>(-87.f) : x;
  x = x > splat<V>(88.f) ? splat<V>(88.f) : x;
  V t = x * 1.44269504088896341f;
  V k = (t + 12582912.f) - 12582912.f;  // round to nearest (|t| < 2^22)
  V r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  V p = splat<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.f;
  VI e = (__builtin_convertvector(k, VI) + 127) << 23;
  return p * (V)e;  // the bits of 2^k
}

template <typename V> inline V vsigmoid(V z) { return 1.f / (1.f + vexp(-z)); }

struct Geometry {
  int N, Ci, H, W, Co, K, P, VL;
  int Ho, Wo, Hq, Wq;  // convolution output; pooled output
  int Hp, Wp;          // padded input
  int CB;              // blocks of VL output channels
  int Hg, Wg;          // output gradient with a zero border of K-1
  Geometry(const std::vector<int64_t>& x, const std::vector<int64_t>& w, int pad, int lanes)
      : N(x[0]), Ci(x[1]), H(x[2]), W(x[3]), Co(w[0]), K(w[2]), P(pad), VL(lanes) {
    Ho = H + 2 * P - K + 1;
    Wo = W + 2 * P - K + 1;
    Hq = Ho / 2;
    Wq = Wo / 2;
    Hp = H + 2 * P;
    Wp = W + 2 * P;
    CB = (Co + VL - 1) / VL;
    Hg = Ho + 2 * (K - 1);
    Wg = Wo + 2 * (K - 1);
  }
  int lanes(int cb) const { return std::min(VL, Co - cb * VL); }
  // per-image stride of the saved sigmoid, (Ho, Wo, Co) floats, plus room for
  // the last pixel's full-width store
  int64_t s_stride() const { return int64_t(Ho) * Wo * Co + MAX_LANES; }
};

// x[n] -> zero-padded (Ci, Hp, Wp)
void pad_image(const Geometry& g, const float* x, float* xp) {
  std::fill(xp, xp + int64_t(g.Ci) * g.Hp * g.Wp, 0.f);
  for (int ci = 0; ci < g.Ci; ++ci)
    for (int h = 0; h < g.H; ++h)
      std::memcpy(xp + (int64_t(ci) * g.Hp + h + g.P) * g.Wp + g.P, x + (int64_t(ci) * g.H + h) * g.W,
                  sizeof(float) * g.W);
}

// w (Co, Ci, K, K) -> (CB, Ci, K, K) vectors of output channels, zero lanes past Co
template <typename V>
std::vector<V> pack_weights(const Geometry& g, const float* w) {
  const int VL = lanes_of<V>();
  std::vector<V> wp(int64_t(g.CB) * g.Ci * g.K * g.K, V{});
  for (int co = 0; co < g.Co; ++co)
    for (int i = 0; i < g.Ci * g.K * g.K; ++i)
      wp[int64_t(co / VL) * g.Ci * g.K * g.K + i][co % VL] = w[int64_t(co) * g.Ci * g.K * g.K + i];
  return wp;
}

// out[p] = sum over (ci, kh, kw) of w[:, ci, kh, kw] * xp[ci, h + kh, w0 + p + kw]
template <typename V, int K, int PB>
struct ConvBlock {
  static void run(const V* __restrict wp, const float* __restrict xp, const Geometry& g, int h, int w0,
                  V* __restrict out) {
    V a[PB];
    for (int p = 0; p < PB; ++p) a[p] = V{};
    for (int ci = 0; ci < g.Ci; ++ci)
      for (int kh = 0; kh < K; ++kh) {
        const float* row = xp + (int64_t(ci) * g.Hp + h + kh) * g.Wp + w0;
        const V* wr = wp + (ci * K + kh) * K;
        for (int kw = 0; kw < K; ++kw) {
          const V wv = wr[kw];
          for (int p = 0; p < PB; ++p) a[p] += wv * row[p + kw];
        }
      }
    for (int p = 0; p < PB; ++p) out[p] = a[p];
  }
};

// dx[p] = sum over (cb, kh, kw) of w[cb, ci, kh, kw] . gz[cb, y + P - kh, x0 + p + P - kw]
// (gz with its zero border, so no bounds checks)
template <typename V, int K, int PB>
struct DxBlock {
  static void run(const V* __restrict wp, const V* __restrict gz, const Geometry& g, int ci, int y, int x0,
                  float* __restrict dx) {
    V a[PB];
    for (int p = 0; p < PB; ++p) a[p] = V{};
    for (int cb = 0; cb < g.CB; ++cb) {
      const V* G = gz + int64_t(cb) * g.Hg * g.Wg;
      for (int kh = 0; kh < K; ++kh) {
        const V* grow = G + int64_t(y + g.P - kh + K - 1) * g.Wg + x0 + g.P + K - 1;
        const V* wr = wp + ((int64_t(cb) * g.Ci + ci) * K + kh) * K;
        for (int kw = 0; kw < K; ++kw) {
          const V wv = wr[kw];
          for (int p = 0; p < PB; ++p) a[p] += wv * grow[p - kw];
        }
      }
    }
    for (int p = 0; p < PB; ++p) dx[p] = hsum(a[p]);
  }
};

// F<V, K, n>::run(args...) for a block of n pixels, n in 1..pb_max<V>().
template <typename V, int K, template <typename, int, int> class F, typename... Args>
void dispatch(int n, Args&&... args) {
  switch (n) {
#define D2L_CASE(PB)               \
  case PB:                         \
    F<V, K, PB>::run(args...);     \
    break;
    D2L_CASE(1) D2L_CASE(2) D2L_CASE(3) D2L_CASE(4) D2L_CASE(5) D2L_CASE(6)
    D2L_CASE(7) D2L_CASE(8) D2L_CASE(9) D2L_CASE(10) D2L_CASE(11) D2L_CASE(12)
#ifdef __AVX512F__
    D2L_CASE(13) D2L_CASE(14)
#endif
#undef D2L_CASE
    default:
      break;
  }
}

// Splits a row of n pixels into near-equal blocks of at most pb_max<V>().
template <typename V, typename F>
void for_blocks(int n, F f) {
  const int nb = (n + pb_max<V>() - 1) / pb_max<V>();
  const int size = (n + nb - 1) / nb;
  for (int start = 0; start < n; start += size) f(start, std::min(size, n - start));
}

template <typename V, int K>
void forward(const Geometry& g, const float* x, const float* w, const float* b, float* y, float* saved) {
  const int VL = lanes_of<V>();
  const std::vector<V> wp = pack_weights<V>(g, w);
  std::vector<V> bias(g.CB, V{});
  for (int co = 0; co < g.Co; ++co) bias[co / VL][co % VL] = b[co];
#pragma omp parallel
  {
    std::vector<float> xp(int64_t(g.Ci) * g.Hp * g.Wp);
    std::vector<V> S(int64_t(g.Ho) * g.Wo);  // sigmoid of one image and channel block
#pragma omp for schedule(static)
    for (int n = 0; n < g.N; ++n) {
      pad_image(g, x + int64_t(n) * g.Ci * g.H * g.W, xp.data());
      float* s_img = saved ? saved + n * g.s_stride() : nullptr;  // null: inference, nothing to save
      // last block first: its full-width stores spill into the next pixel's
      // first lanes, which the earlier blocks' stores then overwrite
      for (int cb = g.CB - 1; cb >= 0; --cb) {
        const int nl = g.lanes(cb);
        const V* wcb = wp.data() + int64_t(cb) * g.Ci * K * K;
        for (int h = 0; h < g.Ho; ++h)
          for_blocks<V>(g.Wo, [&](int w0, int nw) {
            V* out = S.data() + int64_t(h) * g.Wo + w0;
            dispatch<V, K, ConvBlock>(nw, wcb, xp.data(), g, h, w0, out);
            for (int p = 0; p < nw; ++p) out[p] = vsigmoid(out[p] + bias[cb]);
          });
        // saved: (Ho, Wo, Co) per image; full-width stores in increasing order,
        // each overwriting the previous one's spare lanes
        if (s_img)
          for (int i = 0; i < g.Ho * g.Wo; ++i) store_u(s_img + int64_t(i) * g.Co + cb * VL, S[i]);
        for (int i = 0; i < g.Hq; ++i)
          for (int j = 0; j < g.Wq; ++j) {
            const V* s0 = S.data() + int64_t(2 * i) * g.Wo + 2 * j;
            const V v = (s0[0] + s0[1] + s0[g.Wo] + s0[g.Wo + 1]) * 0.25f;
            float* yo = y + ((int64_t(n) * g.Co + cb * VL) * g.Hq + i) * g.Wq + j;
            for (int l = 0; l < nl; ++l) yo[int64_t(l) * g.Hq * g.Wq] = v[l];
          }
      }
    }
  }
}

// d[r * K + kw] += sum over (h, w) of G[h, w] * xp[ci, h + kh + r, w + kw], for R kernel rows from kh
template <typename V, int K, int R>
inline void dw_rows(const Geometry& g, const V* __restrict G, const float* __restrict xp, int ci, int kh,
                    V* __restrict d) {
  V a[R][K];
  for (int r = 0; r < R; ++r)
    for (int kw = 0; kw < K; ++kw) a[r][kw] = V{};
  for (int h = 0; h < 2 * g.Hq; ++h) {
    const V* grow = G + int64_t(h + K - 1) * g.Wg + K - 1;
    const float* row = xp + (int64_t(ci) * g.Hp + h + kh) * g.Wp;
    for (int w_ = 0; w_ < 2 * g.Wq; ++w_) {
      const V gv = grow[w_];
      for (int r = 0; r < R; ++r)
        for (int kw = 0; kw < K; ++kw) a[r][kw] += gv * row[r * g.Wp + w_ + kw];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int kw = 0; kw < K; ++kw) d[r * K + kw] += a[r][kw];
}

template <typename V, int K>
void backward(const Geometry& g, const float* gy, const float* x, const float* w, const float* saved, float* dx,
              float* dw, float* db) {
  const int VL = lanes_of<V>();
  const std::vector<V> wp = pack_weights<V>(g, w);
  const int nthreads = omp_get_max_threads();
  const int64_t wsize = int64_t(g.CB) * g.Ci * K * K;
  std::vector<V> dw_part(wsize * nthreads, V{}), db_part(int64_t(g.CB) * nthreads, V{});
  std::vector<int> used(nthreads, 0);
#pragma omp parallel num_threads(nthreads)
  {
    const int t = omp_get_thread_num();
    V* dwt = dw_part.data() + wsize * t;
    V* dbt = db_part.data() + g.CB * t;
    std::vector<float> xp(int64_t(g.Ci) * g.Hp * g.Wp);
    std::vector<V> gz(int64_t(g.CB) * g.Hg * g.Wg, V{});  // borders, and rows pooling dropped, stay zero
    used[t] = 1;
#pragma omp for schedule(static)
    for (int n = 0; n < g.N; ++n) {
      pad_image(g, x + int64_t(n) * g.Ci * g.H * g.W, xp.data());
      const float* s_img = saved + n * g.s_stride();
      for (int cb = 0; cb < g.CB; ++cb) {
        const int nl = g.lanes(cb);
        V* G = gz.data() + int64_t(cb) * g.Hg * g.Wg;
        // dL/dz = dL/dy / 4 * s (1 - s) on each pooling window
        V dbsum{};
        for (int i = 0; i < g.Hq; ++i)
          for (int j = 0; j < g.Wq; ++j) {
            V gv{};
            const float* gyo = gy + ((int64_t(n) * g.Co + cb * VL) * g.Hq + i) * g.Wq + j;
            for (int l = 0; l < nl; ++l) gv[l] = gyo[int64_t(l) * g.Hq * g.Wq];
            gv *= 0.25f;
            for (int dh = 0; dh < 2; ++dh)
              for (int dw_ = 0; dw_ < 2; ++dw_) {
                const int h = 2 * i + dh, w_ = 2 * j + dw_;
                const V s = load_u<V>(s_img + (int64_t(h) * g.Wo + w_) * g.Co + cb * VL);
                const V gzv = gv * s * (1.f - s);
                G[int64_t(h + K - 1) * g.Wg + w_ + K - 1] = gzv;
                dbsum += gzv;
              }
          }
        dbt[cb] += dbsum;
        // dL/dw[:, ci, kh, kw] = sum over (h, w) of dL/dz[:, h, w] * xp[ci, h + kh, w + kw]
        // Two kernel rows per pass: 2K independent accumulators hide the FMA latency (K alone do not).
        for (int ci = 0; ci < g.Ci; ++ci) {
          int kh = 0;
          for (; kh + 2 <= K; kh += 2) dw_rows<V, K, 2>(g, G, xp.data(), ci, kh, dwt + ((int64_t(cb) * g.Ci + ci) * K + kh) * K);
          if (kh < K) dw_rows<V, K, 1>(g, G, xp.data(), ci, kh, dwt + ((int64_t(cb) * g.Ci + ci) * K + kh) * K);
        }
      }
      if (dx) {
        float* dxn = dx + int64_t(n) * g.Ci * g.H * g.W;
        for (int ci = 0; ci < g.Ci; ++ci)
          for (int yy = 0; yy < g.H; ++yy)
            for_blocks<V>(g.W, [&](int x0, int nx) {
              dispatch<V, K, DxBlock>(nx, wp.data(), gz.data(), g, ci, yy, x0,
                                      dxn + (int64_t(ci) * g.H + yy) * g.W + x0);
            });
      }
    }
  }
  // Sum the threads' parts in thread order: the same result every run.
  std::vector<V> dwv(wsize, V{}), dbv(g.CB, V{});
  for (int t = 0; t < nthreads; ++t) {
    if (!used[t]) continue;
    for (int64_t i = 0; i < wsize; ++i) dwv[i] += dw_part[wsize * t + i];
    for (int cb = 0; cb < g.CB; ++cb) dbv[cb] += db_part[g.CB * t + cb];
  }
  for (int co = 0; co < g.Co; ++co) {
    db[co] = dbv[co / VL][co % VL];
    for (int i = 0; i < g.Ci * K * K; ++i)
      dw[int64_t(co) * g.Ci * K * K + i] = dwv[int64_t(co / VL) * g.Ci * K * K + i][co % VL];
  }
}

bool parse_int(const Attrs& attrs, const char* key, int* out) {
  auto it = attrs.find(key);
  if (it == attrs.end()) return false;
  try {
    *out = std::stoi(it->second);
  } catch (...) {
    return false;
  }
  return true;
}

bool supported_kernel(int k) { return k == 3 || k == 5; }

MXReturnValue parse_attrs(const Attrs& attrs, int* num_in, int* num_out) {
  int k, pad, co;
  if (!parse_int(attrs, "kernel", &k) || !supported_kernel(k) || !parse_int(attrs, "pad", &pad) || pad < 0 ||
      !parse_int(attrs, "num_filter", &co) || co < 1) {
    MX_ERROR_MSG << "d2l_conv_sigmoid_avgpool needs kernel (3 or 5), pad >= 0 and num_filter >= 1";
    return MX_FAIL;
  }
  *num_in = 3;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue infer_type(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  for (int t : *in)
    if (t != kFloat32 && t != -1) {
      MX_ERROR_MSG << "d2l_conv_sigmoid_avgpool computes in float32 only";
      return MX_FAIL;
    }
  for (auto& t : *in) t = kFloat32;
  (*out)[0] = kFloat32;
  return MX_SUCCESS;
}

MXReturnValue infer_shape(const Attrs& attrs, std::vector<std::vector<unsigned>>* in,
                          std::vector<std::vector<unsigned>>* out) {
  int k = 0, pad = 0, co = 0;
  parse_int(attrs, "kernel", &k);
  parse_int(attrs, "pad", &pad);
  parse_int(attrs, "num_filter", &co);
  const auto& x = (*in)[0];
  if (x.size() != 4) {
    MX_ERROR_MSG << "d2l_conv_sigmoid_avgpool expects input (N, C, H, W)";
    return MX_FAIL;
  }
  const int ho = int(x[2]) + 2 * pad - k + 1, wo = int(x[3]) + 2 * pad - k + 1;
  if (ho < 2 || wo < 2) {
    MX_ERROR_MSG << "d2l_conv_sigmoid_avgpool: input too small for the kernel and the pooling";
    return MX_FAIL;
  }
  const std::vector<unsigned> wshape{unsigned(co), x[1], unsigned(k), unsigned(k)};
  const auto& given = (*in)[1];  // may hold unknown dimensions (0, or -1 as unsigned)
  bool fits = given.empty() || given.size() == 4;
  for (size_t i = 0; fits && i < given.size(); ++i)
    fits = given[i] == wshape[i] || given[i] == 0 || given[i] == unsigned(-1);
  if (!fits) {
    MX_ERROR_MSG << "d2l_conv_sigmoid_avgpool: weight shape does not match (num_filter, C, kernel, kernel)";
    return MX_FAIL;
  }
  (*in)[1] = wshape;
  (*in)[2] = {unsigned(co)};
  (*out)[0] = {x[0], unsigned(co), unsigned(ho / 2), unsigned(wo / 2)};
  return MX_SUCCESS;
}

class ConvSigmoidAvgPool : public CustomStatefulOp {
 public:
  explicit ConvSigmoidAvgPool(const Attrs& attrs) {
    parse_int(attrs, "kernel", &k_);
    parse_int(attrs, "pad", &pad_);
    int need = 1;
    parse_int(attrs, "need_data_grad", &need);
    need_dx_ = need != 0;
    int training = 1;
    parse_int(attrs, "training", &training);
    training_ = training != 0;
  }

  MXReturnValue Forward(std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                        const OpResource&) override {
    MXTensor &x = (*inputs)[0], &w = (*inputs)[1], &b = (*inputs)[2];
    shape_ = x.shape;
    const float *xd = x.data<float>(), *wd = w.data<float>(), *bd = b.data<float>();
    float* y = (*outputs)[0].data<float>();
    with_kernel(w.shape[0], [&](auto v, auto k) {
      typedef decltype(v) V;
      const Geometry g(x.shape, w.shape, pad_, lanes_of<V>());
      if (training_) saved_.resize(g.N * g.s_stride());
      forward<V, decltype(k)::value>(g, xd, wd, bd, y, training_ ? saved_.data() : nullptr);
    });
    return MX_SUCCESS;
  }

  // inputs: dL/dy, x, w, b, y; outputs: dL/dx, dL/dw, dL/db
  MXReturnValue Backward(std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                         const OpResource&) override {
    MXTensor &gy = (*inputs)[0], &x = (*inputs)[1], &w = (*inputs)[2];
    if (x.shape != shape_ || !training_) {
      MX_ERROR_MSG << "d2l_conv_sigmoid_avgpool: backward without a matching forward";
      return MX_FAIL;
    }
    const float *gd = gy.data<float>(), *xd = x.data<float>(), *wd = w.data<float>(), *s = saved_.data();
    float* dx = need_dx_ ? (*outputs)[0].data<float>() : nullptr;
    float *dw = (*outputs)[1].data<float>(), *db = (*outputs)[2].data<float>();
    with_kernel(w.shape[0], [&](auto v, auto k) {
      typedef decltype(v) V;
      const Geometry g(x.shape, w.shape, pad_, lanes_of<V>());
      backward<V, decltype(k)::value>(g, gd, xd, wd, s, dx, dw, db);
    });
    return MX_SUCCESS;
  }

 private:
  // Calls f(V(), std::integral_constant<int, K>()) for this operator's kernel size
  // and the vector type for co output channels: 8 lanes for up to 8 channels,
  // else 16 with AVX-512; 8 lanes always with AVX2 (see the header).
  template <typename F>
  void with_kernel(int64_t co, F f) const {
#ifdef __AVX512F__
    const bool narrow = co <= 8;
#else
    const bool narrow = true;
#endif
    if (narrow)
      k_ == 5 ? f(v8{}, std::integral_constant<int, 5>()) : f(v8{}, std::integral_constant<int, 3>());
    else
      k_ == 5 ? f(v16{}, std::integral_constant<int, 5>()) : f(v16{}, std::integral_constant<int, 3>());
  }

  int k_ = 0, pad_ = 0;
  bool need_dx_ = true;
  bool training_ = true;  // 0: an inference graph; the forward saves no sigmoid for a backward
  std::vector<int64_t> shape_;
  std::vector<float> saved_;  // the forward's sigmoid, (N, Ho, Wo, Co) + spare lanes
};

MXReturnValue create_state(const Attrs& attrs, const MXContext&, const std::vector<std::vector<unsigned>>&,
                           const std::vector<int>, CustomStatefulOp** op) {
  *op = CustomStatefulOp::create<ConvSigmoidAvgPool>(attrs);
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(D2L_OP_NAME)
    .setParseAttrs(parse_attrs)
    .setInferType(infer_type)
    .setInferShape(infer_shape)
    .setCreateOpState(create_state, "cpu");

MXReturnValue initialize(int version) {
  // the lib_api.h ABI of MXNet 1.9 (version 10900 and later 1.x)
  return version >= 10900 ? MX_SUCCESS : MX_FAIL;
}
