// Products of the linear models' pass for one tile of rows, tuned for few outputs (K = 10 on
// Fashion-MNIST), where Eigen's GEMM wastes its register blocking: AVX2/FMA intrinsics with the
// tile's rows (2 at a time) or columns (16 at a time) in registers against up to 5 outputs. Only
// the decoded tiles of compact features use them; other builds fall back to Eigen (linear.cpp).
#pragma once

#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LOCKSTEP_LINEAR_KERNELS 1

namespace lockstep::ml::kernels {

inline float hsum(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}

// M[i, g..g+G) = T[i, :] . Wt[g+k, :] for rows i, i+1 (rows == 2) or i alone.
template <int G>
void margins_group(const float* T, std::int64_t i, int rows, std::int64_t d, const float* Wt, std::int64_t g,
                   std::int64_t K, float* M) {
  const float* t0 = T + i * d;
  const float* t1 = rows == 2 ? t0 + d : t0;
  __m256 a0[G], a1[G];
  for (int k = 0; k < G; ++k) a0[k] = a1[k] = _mm256_setzero_ps();
  const std::int64_t dv = d - d % 8;
  for (std::int64_t j = 0; j < dv; j += 8) {
    const __m256 x0 = _mm256_loadu_ps(t0 + j), x1 = _mm256_loadu_ps(t1 + j);
    for (int k = 0; k < G; ++k) {
      const __m256 w = _mm256_loadu_ps(Wt + (g + k) * d + j);
      a0[k] = _mm256_fmadd_ps(x0, w, a0[k]);
      a1[k] = _mm256_fmadd_ps(x1, w, a1[k]);
    }
  }
  for (int k = 0; k < G; ++k) {
    float s0 = hsum(a0[k]), s1 = hsum(a1[k]);
    for (std::int64_t j = dv; j < d; ++j) s0 += t0[j] * Wt[(g + k) * d + j], s1 += t1[j] * Wt[(g + k) * d + j];
    M[i * K + g + k] = s0;
    if (rows == 2) M[(i + 1) * K + g + k] = s1;
  }
}

// M (m x K, row-major) = T (m x d, row-major) Wt^T, Wt: K x d row-major.
inline void margins(const float* T, std::int64_t m, std::int64_t d, const float* Wt, std::int64_t K, float* M) {
  for (std::int64_t i = 0; i < m; i += 2) {
    const int rows = i + 1 < m ? 2 : 1;
    std::int64_t g = 0;
    for (; g + 5 <= K; g += 5) margins_group<5>(T, i, rows, d, Wt, g, K, M);
    switch (K - g) {
      case 4: margins_group<4>(T, i, rows, d, Wt, g, K, M); break;
      case 3: margins_group<3>(T, i, rows, d, Wt, g, K, M); break;
      case 2: margins_group<2>(T, i, rows, d, Wt, g, K, M); break;
      case 1: margins_group<1>(T, i, rows, d, Wt, g, K, M); break;
      default: break;
    }
  }
}

// Gt[g..g+G), columns j..j+16) += M[:, g..g+G)^T T[:, j..j+16).
template <int G>
void gradient_group(const float* T, std::int64_t m, std::int64_t d, const float* M, std::int64_t K, std::int64_t g,
                    std::int64_t j, float* Gt) {
  __m256 a0[G], a1[G];
  for (int k = 0; k < G; ++k) {
    a0[k] = _mm256_loadu_ps(Gt + (g + k) * d + j);
    a1[k] = _mm256_loadu_ps(Gt + (g + k) * d + j + 8);
  }
  for (std::int64_t i = 0; i < m; ++i) {
    const __m256 x0 = _mm256_loadu_ps(T + i * d + j), x1 = _mm256_loadu_ps(T + i * d + j + 8);
    for (int k = 0; k < G; ++k) {
      const __m256 mm = _mm256_broadcast_ss(M + i * K + g + k);
      a0[k] = _mm256_fmadd_ps(x0, mm, a0[k]);
      a1[k] = _mm256_fmadd_ps(x1, mm, a1[k]);
    }
  }
  for (int k = 0; k < G; ++k) {
    _mm256_storeu_ps(Gt + (g + k) * d + j, a0[k]);
    _mm256_storeu_ps(Gt + (g + k) * d + j + 8, a1[k]);
  }
}

// Gt (K x d, row-major) += M^T T.
inline void gradient(const float* T, std::int64_t m, std::int64_t d, const float* M, std::int64_t K, float* Gt) {
  const std::int64_t dv = d - d % 16;
  for (std::int64_t j = 0; j < dv; j += 16) {
    std::int64_t g = 0;
    for (; g + 5 <= K; g += 5) gradient_group<5>(T, m, d, M, K, g, j, Gt);
    switch (K - g) {
      case 4: gradient_group<4>(T, m, d, M, K, g, j, Gt); break;
      case 3: gradient_group<3>(T, m, d, M, K, g, j, Gt); break;
      case 2: gradient_group<2>(T, m, d, M, K, g, j, Gt); break;
      case 1: gradient_group<1>(T, m, d, M, K, g, j, Gt); break;
      default: break;
    }
  }
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = dv; j < d; ++j) Gt[k * d + j] += M[i * K + k] * T[i * d + j];
}

}  // namespace lockstep::ml::kernels
#endif
