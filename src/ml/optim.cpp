// L-BFGS with a backtracking (Armijo) line search, and its orthant-wise variant OWL-QN for L1.
#include "lockstep/ml/optim.hpp"

#include <cmath>
#include <deque>

#include "lockstep/core/trace.hpp"

namespace lockstep::ml {
namespace {

double sign(double v) {
  return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0);
}

// The pseudo-gradient of f + sum l1_i |x_i| (the steepest-descent direction's negative).
Vec pseudo_gradient(const Vec& x, const Vec& g, const Vec& l1) {
  if (l1.size() == 0) return g;
  Vec pg(g.size());
  for (Eigen::Index i = 0; i < g.size(); ++i) {
    const double l = l1[i];
    if (x[i] != 0.0 || l == 0.0) {
      pg[i] = g[i] + l * sign(x[i]);
    } else if (g[i] + l < 0) {
      pg[i] = g[i] + l;
    } else if (g[i] - l > 0) {
      pg[i] = g[i] - l;
    } else {
      pg[i] = 0.0;
    }
  }
  return pg;
}

double l1_term(const Vec& x, const Vec& l1) {
  return l1.size() == 0 ? 0.0 : l1.cwiseProduct(x.cwiseAbs()).sum();
}

}  // namespace

QuasiNewtonResult minimize(const Objective& f, Vec x, const QuasiNewtonOptions& o, const Vec& l1) {
  LOCKSTEP_TRACE_SCOPE("minimize", "lbfgs");
  const bool owl = l1.size() > 0 && l1.maxCoeff() > 0.0;
  const Vec no_l1;
  const Vec& pen = owl ? l1 : no_l1;
  QuasiNewtonResult r;
  Vec g(x.size());
  double fx = f(x, g) + l1_term(x, pen);
  r.evaluations = 1;
  r.history.push_back(fx);
  std::deque<Vec> S, Y;
  std::deque<double> rho;
  Vec xn(x.size()), gn(x.size());
  for (int it = 0; it < o.max_iter; ++it) {
    LOCKSTEP_TRACE_SCOPE("lbfgs iteration", "lbfgs", "iter", it);
    const Vec pg = pseudo_gradient(x, g, pen);
    if (pg.lpNorm<Eigen::Infinity>() <= 1e-3 * o.tol * std::max(1.0, std::fabs(fx))) {
      r.converged = true;
      break;
    }
    // Two-loop recursion: d = -H pg.
    Vec q = pg;
    std::vector<double> alpha(S.size());
    for (std::size_t k = S.size(); k-- > 0;) {
      alpha[k] = rho[k] * S[k].dot(q);
      q -= alpha[k] * Y[k];
    }
    const double gamma =
        S.empty() ? 1.0 / std::max(pg.norm(), 1e-300) : S.back().dot(Y.back()) / Y.back().squaredNorm();
    Vec d = gamma * q;
    for (std::size_t k = 0; k < S.size(); ++k) {
      const double beta = rho[k] * Y[k].dot(d);
      d += S[k] * (alpha[k] - beta);
    }
    d = -d;
    if (owl) {  // keep only the components that agree with steepest descent
      for (Eigen::Index i = 0; i < d.size(); ++i)
        if (d[i] * pg[i] >= 0) d[i] = 0.0;
    }
    double slope = pg.dot(d);
    if (slope >= 0) {  // not a descent direction (curvature pairs went stale): restart
      S.clear(), Y.clear(), rho.clear();
      d = -pg / std::max(pg.norm(), 1e-300);
      slope = pg.dot(d);
      if (slope >= 0) {
        r.converged = true;
        break;
      }
    }
    // Orthant for OWL-QN: the sign of x, or of the descent direction where x is zero.
    Vec orthant;
    if (owl) {
      orthant.resize(x.size());
      for (Eigen::Index i = 0; i < x.size(); ++i) orthant[i] = x[i] != 0.0 ? sign(x[i]) : sign(-pg[i]);
    }
    double step = 1.0, fn = 0.0;
    bool accepted = false;
    for (int ls = 0; ls < 40; ++ls) {
      LOCKSTEP_TRACE_SCOPE("objective", "lbfgs", "trial", ls);  // the evaluation below streams the shard
      xn = x + step * d;
      if (owl) {
        for (Eigen::Index i = 0; i < xn.size(); ++i)
          if (sign(xn[i]) != orthant[i]) xn[i] = 0.0;
      }
      fn = f(xn, gn) + l1_term(xn, pen);
      ++r.evaluations;
      // Armijo on the (projected) step actually taken.
      const double decrease = owl ? pg.dot(xn - x) : step * slope;
      if (std::isfinite(fn) && fn <= fx + 1e-4 * decrease) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    ++r.iterations;
    if (!accepted) {  // no progress possible at float resolution: x is as good as it gets
      r.converged = true;
      break;
    }
    const Vec s = xn - x, y = gn - g;
    const double sy = s.dot(y);
    if (sy > 1e-12 * y.squaredNorm()) {
      S.push_back(s), Y.push_back(y), rho.push_back(1.0 / sy);
      if (static_cast<int>(S.size()) > o.memory) S.pop_front(), Y.pop_front(), rho.pop_front();
    }
    const double rel = (fx - fn) / std::max({std::fabs(fx), std::fabs(fn), 1e-300});
    x.swap(xn);
    g.swap(gn);
    fx = fn;
    r.history.push_back(fx);
    if (rel <= o.tol) {
      r.converged = true;
      break;
    }
  }
  r.x = std::move(x);
  r.value = fx;
  return r;
}

}  // namespace lockstep::ml
