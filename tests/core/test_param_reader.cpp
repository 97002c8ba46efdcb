// ParamReader: conversions, ranges, lists and unknown names, each error starting with the
// parameter's place and naming what was expected and what was found.
#include <gtest/gtest.h>

#include "lockstep/core/error.hpp"
#include "lockstep/core/param_reader.hpp"

using namespace lockstep;


namespace {

Param scalar(const std::string& name, const std::string& v) {
  return Param{{v}, false, "x.yaml:3: pipeline[0].Est." + name};
}

// The ConfigError message of f(), or "" when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ParamReader, ReadsTypedValuesAndLeavesAbsentOnesAtTheirDefaults) {
  const std::map<std::string, Param> params = {
      {"maxIter", scalar("maxIter", "1e2")},      {"regParam", scalar("regParam", "0.25")},
      {"fitIntercept", scalar("fitIntercept", "False")}, {"seed", scalar("seed", "18446744073709551615")},
      {"family", scalar("family", "multinomial")},
      {"thresholds", Param{{"0.5", "0.25"}, true, "x.yaml:4: pipeline[0].Est.thresholds"}}};
  ParamReader r(params, "Est");
  int max_iter = 0, absent = 7;
  double reg = 0.0;
  bool intercept = true;
  std::uint64_t seed = 0;
  std::string family;
  std::vector<double> thresholds;
  EXPECT_TRUE(r.get("maxIter", max_iter));
  EXPECT_TRUE(r.get("regParam", reg, at_least(0.0)));
  EXPECT_TRUE(r.get("fitIntercept", intercept));
  EXPECT_TRUE(r.get("seed", seed));
  EXPECT_TRUE(r.get("family", family, one_of({"auto", "binomial", "multinomial"})));
  EXPECT_TRUE(r.get_list("thresholds", thresholds));
  EXPECT_FALSE(r.get("absent", absent));
  EXPECT_NO_THROW(r.finish());
  EXPECT_EQ(max_iter, 100);
  EXPECT_EQ(reg, 0.25);
  EXPECT_FALSE(intercept);
  EXPECT_EQ(seed, 18446744073709551615ull);  // exact, not through a double
  EXPECT_EQ(family, "multinomial");
  EXPECT_EQ(thresholds, (std::vector<double>{0.5, 0.25}));
  EXPECT_EQ(absent, 7);
}

TEST(ParamReader, ErrorsNameThePlaceTheExpectationAndTheValue) {
  auto read_one = [](const std::string& name, const std::string& text, auto value, auto range) {
    const std::map<std::string, Param> params = {{name, scalar(name, text)}};
    return error_of([&] {
      ParamReader r(params, "Est");
      r.get(name, value, range);
    });
  };
  EXPECT_EQ(read_one("maxIter", "2.5", 0, ParamRange<int>{}),
            "x.yaml:3: pipeline[0].Est.maxIter: expected an integer, got \"2.5\"");
  EXPECT_EQ(read_one("maxIter", "-1", 0, at_least(0)),
            "x.yaml:3: pipeline[0].Est.maxIter: expected an integer >= 0, got \"-1\"");
  EXPECT_EQ(read_one("maxIter", "1e12", 0, ParamRange<int>{}),
            "x.yaml:3: pipeline[0].Est.maxIter: expected an integer, got \"1e12\"");
  EXPECT_EQ(read_one("seed", "-3", std::uint64_t{0}, ParamRange<std::uint64_t>{}),
            "x.yaml:3: pipeline[0].Est.seed: expected a non-negative integer, got \"-3\"");
  EXPECT_EQ(read_one("regParam", "nan", 0.0, ParamRange<double>{}),
            "x.yaml:3: pipeline[0].Est.regParam: expected a number, got \"nan\"");
  EXPECT_EQ(read_one("p", "0.5", 0.0, at_least(1.0)), "x.yaml:3: pipeline[0].Est.p: expected a number >= 1, got \"0.5\"");
  EXPECT_EQ(read_one("rate", "2", 0.0, between(0.0, 1.0)),
            "x.yaml:3: pipeline[0].Est.rate: expected a number in [0, 1], got \"2\"");
  EXPECT_EQ(read_one("on", "yes", false, ParamRange<bool>{}), "x.yaml:3: pipeline[0].Est.on: expected true or false, got \"yes\"");
  EXPECT_EQ(read_one("family", "both", std::string(), one_of({"binomial", "multinomial"})),
            "x.yaml:3: pipeline[0].Est.family: expected one of binomial, multinomial, got \"both\"");
  const std::map<std::string, Param> list = {{"tol", Param{{"1", "2"}, true, "x.yaml:5: Est.tol"}}};
  EXPECT_EQ(error_of([&] {
              ParamReader r(list, "Est");
              double tol = 0;
              r.get("tol", tol);
            }),
            "x.yaml:5: Est.tol: expected a number, got a list");
}

TEST(ParamReader, UnknownNamesListTheKnownOnes) {
  const std::map<std::string, Param> params = {{"regparam", scalar("regparam", "0.1")}};
  ParamReader r(params, "LogisticRegression");
  double reg = 0.0;
  int iters = 0;
  r.get("regParam", reg);
  r.get("maxIter", iters);
  EXPECT_EQ(error_of([&] { r.finish(); }),
            "x.yaml:3: pipeline[0].Est.regparam: unknown parameter of LogisticRegression (known: maxIter, regParam)");
}
