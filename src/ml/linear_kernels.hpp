// Products of the linear models' pass for one tile of rows, tuned for few outputs (K = 10 on
// Fashion-MNIST), where Eigen's GEMM wastes its register blocking: FMA intrinsics with the tile's
// rows (2 at a time) or columns (two vectors at a time) in registers against up to 5 outputs,
// in 8-float AVX2 vectors, or 16-float AVX-512 vectors in builds with AVX-512F (the same code
// over a vector type; only the order of the float additions differs). Only the tiles of compact
// features use them; other builds fall back to Eigen (linear.cpp).
#pragma once

#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LOCKSTEP_LINEAR_KERNELS 1

namespace lockstep::ml::kernels {

struct Avx2 {
  using V = __m256;
  static constexpr int kW = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static float hsum(V v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
  }
};

#if defined(__AVX512F__)
struct Avx512 {
  using V = __m512;
  static constexpr int kW = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float hsum(V v) {  // through memory: GCC 12 warns falsely on the 256-bit extracts
    alignas(64) float t[16];
    _mm512_store_ps(t, v);
    return Avx2::hsum(_mm256_add_ps(_mm256_load_ps(t), _mm256_load_ps(t + 8)));
  }
};
using Isa = Avx512;
#else
using Isa = Avx2;
#endif

// M[i, g..g+G) = T[i, :] . Wt[g+k, :] for rows i, i+1 (rows == 2) or i alone.
template <typename S, int G>
void margins_group(const float* T, std::int64_t i, int rows, std::int64_t d, const float* Wt, std::int64_t g,
                   std::int64_t K, float* M) {
  const float* t0 = T + i * d;
  const float* t1 = rows == 2 ? t0 + d : t0;
  typename S::V a0[G], a1[G];
  for (int k = 0; k < G; ++k) a0[k] = a1[k] = S::zero();
  const std::int64_t dv = d - d % S::kW;
  for (std::int64_t j = 0; j < dv; j += S::kW) {
    const auto x0 = S::load(t0 + j), x1 = S::load(t1 + j);
    for (int k = 0; k < G; ++k) {
      const auto w = S::load(Wt + (g + k) * d + j);
      a0[k] = S::fma(x0, w, a0[k]);
      a1[k] = S::fma(x1, w, a1[k]);
    }
  }
  for (int k = 0; k < G; ++k) {
    float s0 = S::hsum(a0[k]), s1 = S::hsum(a1[k]);
    for (std::int64_t j = dv; j < d; ++j) s0 += t0[j] * Wt[(g + k) * d + j], s1 += t1[j] * Wt[(g + k) * d + j];
    M[i * K + g + k] = s0;
    if (rows == 2) M[(i + 1) * K + g + k] = s1;
  }
}

// Rows i, i+1 (or i alone) of M = T Wt^T, every output.
template <typename S>
void margins_rows(const float* T, std::int64_t i, int rows, std::int64_t d, const float* Wt, std::int64_t K, float* M) {
  std::int64_t g = 0;
  for (; g + 5 <= K; g += 5) margins_group<S, 5>(T, i, rows, d, Wt, g, K, M);
  switch (K - g) {
    case 4: margins_group<S, 4>(T, i, rows, d, Wt, g, K, M); break;
    case 3: margins_group<S, 3>(T, i, rows, d, Wt, g, K, M); break;
    case 2: margins_group<S, 2>(T, i, rows, d, Wt, g, K, M); break;
    case 1: margins_group<S, 1>(T, i, rows, d, Wt, g, K, M); break;
    default: break;
  }
}

// M (m x K, row-major) = T (m x d, row-major) Wt^T, Wt: K x d row-major.
inline void margins(const float* T, std::int64_t m, std::int64_t d, const float* Wt, std::int64_t K, float* M) {
  for (std::int64_t i = 0; i < m; i += 2) margins_rows<Isa>(T, i, i + 1 < m ? 2 : 1, d, Wt, K, M);
}

// Rows i0..i1 of 8-bit codes to float32 (code * scale, the frame's values) in T.
inline void decode_rows(const std::uint8_t* codes, float scale, std::int64_t i0, std::int64_t i1, std::int64_t d,
                        float* T) {
  const __m256 sc = _mm256_set1_ps(scale);
  const std::uint8_t* src = codes + i0 * d;
  float* dst = T + i0 * d;
  const std::int64_t n = (i1 - i0) * d, nv = n - n % 8;
  for (std::int64_t j = 0; j < nv; j += 8) {
    const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + j)));
    _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_cvtepi32_ps(c), sc));
  }
  for (std::int64_t j = nv; j < n; ++j) dst[j] = static_cast<float>(src[j]) * scale;
}

// The smallest positive value and the largest value (at least 0) of v[0..n), finite values.
inline void value_range(const float* v, std::int64_t n, float* min_pos, float* max_val) {
  const __m256 zero = _mm256_setzero_ps(), inf = _mm256_set1_ps(__builtin_inff());
  __m256 lo = inf, hi = zero;
  const std::int64_t nv = n - n % 8;
  for (std::int64_t i = 0; i < nv; i += 8) {
    const __m256 x = _mm256_loadu_ps(v + i);
    lo = _mm256_min_ps(lo, _mm256_blendv_ps(inf, x, _mm256_cmp_ps(x, zero, _CMP_GT_OQ)));
    hi = _mm256_max_ps(hi, x);
  }
  alignas(32) float l[8], h[8];
  _mm256_store_ps(l, lo);
  _mm256_store_ps(h, hi);
  float mn = __builtin_inff(), mx = 0.0f;
  for (int k = 0; k < 8; ++k) mn = l[k] < mn ? l[k] : mn, mx = h[k] > mx ? h[k] : mx;
  for (std::int64_t i = nv; i < n; ++i) {
    if (v[i] > 0 && v[i] < mn) mn = v[i];
    if (v[i] > mx) mx = v[i];
  }
  *min_pos = mn;
  *max_val = mx;
}

// codes[i] = nearbyint(v[i] / scale) for all i when each is in 0..255 and code * scale == v[i]
// exactly; false (codes partly written) otherwise. 32 values a step.
inline bool encode_codes(const float* v, std::int64_t n, float scale, std::uint8_t* codes) {
  const __m256 sc = _mm256_set1_ps(scale), zero = _mm256_setzero_ps(), top = _mm256_set1_ps(255.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const std::int64_t nv = n - n % 32;
  for (std::int64_t i = 0; i < nv; i += 32) {
    __m256i k[4];
    __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    for (int q = 0; q < 4; ++q) {
      const __m256 x = _mm256_loadu_ps(v + i + 8 * q);
      const __m256 r = _mm256_round_ps(_mm256_div_ps(x, sc), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      ok = _mm256_and_ps(ok, _mm256_cmp_ps(r, zero, _CMP_GE_OQ));
      ok = _mm256_and_ps(ok, _mm256_cmp_ps(r, top, _CMP_LE_OQ));
      ok = _mm256_and_ps(ok, _mm256_cmp_ps(_mm256_mul_ps(r, sc), x, _CMP_EQ_OQ));
      k[q] = _mm256_cvttps_epi32(r);
    }
    if (_mm256_movemask_ps(ok) != 0xff) return false;
    const __m256i b = _mm256_packus_epi16(_mm256_packus_epi32(k[0], k[1]), _mm256_packus_epi32(k[2], k[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + i), _mm256_permutevar8x32_epi32(b, order));
  }
  for (std::int64_t i = nv; i < n; ++i) {
    const float r = __builtin_nearbyintf(v[i] / scale);
    if (!(r >= 0.0f && r <= 255.0f) || r * scale != v[i]) return false;
    codes[i] = static_cast<std::uint8_t>(r);
  }
  return true;
}

// margins() on a tile of 8-bit codes (m x d): each pair of rows is decoded into T (m x d floats,
// for gradient() to read next) just before its products, while it is in L1, so the stream of
// codes from memory overlaps the arithmetic instead of running as a pass of its own.
inline void margins_codes(const std::uint8_t* codes, float scale, std::int64_t m, std::int64_t d, const float* Wt,
                          std::int64_t K, float* T, float* M) {
  for (std::int64_t i = 0; i < m; i += 2) {
    const int rows = i + 1 < m ? 2 : 1;
    decode_rows(codes, scale, i, i + rows, d, T);
    margins_rows<Isa>(T, i, rows, d, Wt, K, M);
  }
}

// Gt[g..g+G), columns j..j+2W) += M[:, g..g+G)^T T[:, j..j+2W), W floats a vector.
template <typename S, int G>
void gradient_group(const float* T, std::int64_t m, std::int64_t d, const float* M, std::int64_t K, std::int64_t g,
                    std::int64_t j, float* Gt) {
  typename S::V a0[G], a1[G];
  for (int k = 0; k < G; ++k) {
    a0[k] = S::load(Gt + (g + k) * d + j);
    a1[k] = S::load(Gt + (g + k) * d + j + S::kW);
  }
  for (std::int64_t i = 0; i < m; ++i) {
    const auto x0 = S::load(T + i * d + j), x1 = S::load(T + i * d + j + S::kW);
    for (int k = 0; k < G; ++k) {
      const auto mm = S::bcast(M + i * K + g + k);
      a0[k] = S::fma(x0, mm, a0[k]);
      a1[k] = S::fma(x1, mm, a1[k]);
    }
  }
  for (int k = 0; k < G; ++k) {
    S::store(Gt + (g + k) * d + j, a0[k]);
    S::store(Gt + (g + k) * d + j + S::kW, a1[k]);
  }
}

// Columns j..j+2W) of Gt += M^T T, every output.
template <typename S>
void gradient_columns(const float* T, std::int64_t m, std::int64_t d, const float* M, std::int64_t K, std::int64_t j,
                      float* Gt) {
  std::int64_t g = 0;
  for (; g + 5 <= K; g += 5) gradient_group<S, 5>(T, m, d, M, K, g, j, Gt);
  switch (K - g) {
    case 4: gradient_group<S, 4>(T, m, d, M, K, g, j, Gt); break;
    case 3: gradient_group<S, 3>(T, m, d, M, K, g, j, Gt); break;
    case 2: gradient_group<S, 2>(T, m, d, M, K, g, j, Gt); break;
    case 1: gradient_group<S, 1>(T, m, d, M, K, g, j, Gt); break;
    default: break;
  }
}

// Gt (K x d, row-major) += M^T T: blocks of 2 wide vectors, then (AVX-512) one of 2 AVX2
// vectors, then scalars.
inline void gradient(const float* T, std::int64_t m, std::int64_t d, const float* M, std::int64_t K, float* Gt) {
  const std::int64_t wide = d - d % (2 * Isa::kW), dv = d - d % 16;  // 2 kW is a multiple of 16
  for (std::int64_t j = 0; j < wide; j += 2 * Isa::kW) gradient_columns<Isa>(T, m, d, M, K, j, Gt);
  for (std::int64_t j = wide; j < dv; j += 16) gradient_columns<Avx2>(T, m, d, M, K, j, Gt);
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t c = dv; c < d; ++c) Gt[k * d + c] += M[i * K + k] * T[i * d + c];
}

}  // namespace lockstep::ml::kernels
#endif
