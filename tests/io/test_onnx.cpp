// ONNX import and export (io/onnx.hpp, docs/onnx.md): every supported operator against the
// expected outputs of ONNX's own operator test cases (libonnx-testdata), a network written by
// Debian's PyTorch 1.13 against PyTorch's outputs, export then import bit-identical, and every
// kind of bad model ending in a clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "lockstep/core/error.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/io/onnx.hpp"
#include "lockstep/nn/layer_registry.hpp"
#include "lockstep/nn/sequential.hpp"
#include "lockstep/train/network_file.hpp"

namespace fs = std::filesystem;
using lockstep::DataError;
using lockstep::Shape;
using lockstep::Spec;
using lockstep::Tensor;
namespace io = lockstep::io;
namespace nn = lockstep::nn;
namespace train = lockstep::train;

namespace {

const fs::path kTestData = "/usr/share/libonnx-testdata/data/node";
const fs::path kFixtures = fs::path(LOCKSTEP_SOURCE_DIR) / "tests/data/onnx";

std::vector<float> read_floats(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << p;
  std::vector<float> v(fs::file_size(p) / sizeof(float));
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

std::vector<float> forward(nn::Sequential& model, const Shape& shape, const std::vector<float>& x) {
  Tensor in(shape);
  std::copy(x.begin(), x.end(), in.data<float>());
  const Tensor& y = model.forward(in, nn::ForwardContext{});
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

// The largest |a - b| / max(1, |b|): relative for values above 1, absolute below.
double worst(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double w = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    w = std::max(w, std::fabs(static_cast<double>(a[i]) - b[i]) / std::max(1.0, std::fabs(static_cast<double>(b[i]))));
  return w;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const lockstep::Error& e) {
    return e.what();
  }
  return "";
}

// ---- the ONNX operator test cases ----

// The cases of the operators lockstep reads, each supported or not. Every case of these operators
// that libonnx-testdata has must be in exactly one list (so neither list drifts silently).
const char* const kSupportedCases[] = {
    "test_averagepool_2d_default", "test_averagepool_2d_precomputed_pads",
    "test_averagepool_2d_precomputed_same_upper", "test_averagepool_2d_precomputed_strides",
    "test_averagepool_2d_same_lower", "test_averagepool_2d_same_upper", "test_averagepool_2d_strides",
    "test_batchnorm_epsilon", "test_batchnorm_example", "test_conv_with_autopad_same",
    "test_conv_with_strides_and_asymmetric_padding", "test_conv_with_strides_no_padding",
    "test_conv_with_strides_padding", "test_dropout_default", "test_dropout_default_ratio",
    "test_dropout_random_old", "test_flatten_axis1", "test_flatten_default_axis", "test_flatten_negative_axis3",
    "test_gemm_default_no_bias", "test_gemm_default_scalar_bias", "test_gemm_default_single_elem_vector_bias",
    "test_gemm_default_vector_bias", "test_gemm_default_zero_bias", "test_gemm_transposeB",
    "test_matmul_2d",
    "test_maxpool_2d_default", "test_maxpool_2d_precomputed_pads",
    "test_maxpool_2d_precomputed_same_upper", "test_maxpool_2d_precomputed_strides", "test_maxpool_2d_same_lower",
    "test_maxpool_2d_same_upper", "test_maxpool_2d_strides", "test_relu", "test_sigmoid",
    "test_tanh", "test_softmax_example", "test_softmax_large_number"};

struct Unsupported {
  const char* name;
  const char* reason;  // a part of the error message
};
const Unsupported kUnsupportedCases[] = {
    {"test_add", "adds a constant"},  // the second operand, fed as a constant: not a MatMul's bias
    {"test_add_bcast", "adds a constant"},
    {"test_averagepool_2d_pads", "exceed half the kernel"},  // pads 2 around a 3x3 kernel
    {"test_maxpool_2d_pads", "exceed half the kernel"},
    {"test_dropout_default_old", "has 1 dimensions"},  // no batch dimension
    {"test_sigmoid_example", "has 1 dimensions"},
    {"test_tanh_example", "has 1 dimensions"},
    {"test_globalaveragepool", "opset 1 is not supported"},
    {"test_globalaveragepool_precomputed", "opset 1 is not supported"},
    {"test_identity", "no layers"},
    {"test_softmax_axis_1", "softmax over axis 1"},  // opset 13: axis 1 of [N, 4, 5] alone
    {"test_reshape_reduced_dims", "Reshape to [N, -1]"},  // [2, 12]: the batch size written in
    {"test_add_uint8", "not a float32 tensor"},
    {"test_averagepool_1d_default", "1-D pool"},
    {"test_averagepool_3d_default", "3-D pool"},
    {"test_averagepool_2d_ceil", "ceil_mode = 1"},
    {"test_averagepool_2d_pads_count_include_pad", "count_include_pad = 1"},
    {"test_averagepool_2d_precomputed_pads_count_include_pad", "count_include_pad = 1"},
    {"test_maxpool_1d_default", "1-D pool"},
    {"test_maxpool_3d_default", "3-D pool"},
    {"test_maxpool_2d_ceil", "ceil_mode = 1"},
    {"test_maxpool_2d_dilations", "dilations"},
    {"test_maxpool_2d_uint8", "not a float32 tensor"},
    {"test_maxpool_with_argmax_2d_precomputed_pads", "graph has 2 outputs"},
    {"test_maxpool_with_argmax_2d_precomputed_strides", "graph has 2 outputs"},
    {"test_batchnorm_epsilon_training_mode", "graph has 3 outputs"},
    {"test_batchnorm_example_training_mode", "graph has 3 outputs"},
    {"test_dropout_default_mask", "graph has 2 outputs"},
    {"test_dropout_default_mask_ratio", "graph has 2 outputs"},
    {"test_flatten_axis0", "axis 0"},
    {"test_flatten_axis2", "axis 2"},
    {"test_flatten_axis3", "axis 3"},
    {"test_flatten_negative_axis1", "axis -1"},
    {"test_flatten_negative_axis2", "axis -2"},
    {"test_flatten_negative_axis4", "axis -4"},
    {"test_gemm_all_attributes", "transA = 1"},
    {"test_gemm_alpha", "alpha = 0.5"},
    {"test_gemm_beta", "beta = 0.5"},
    {"test_gemm_default_matrix_bias", "not per row"},
    {"test_gemm_transposeA", "transA = 1"},
    {"test_identity_opt", "not a float32 tensor"},
    {"test_identity_sequence", "not a float32 tensor"},
    {"test_matmul_3d", "MatMul of a matrix"},
    {"test_matmul_4d", "MatMul of a matrix"},
    {"test_reshape_allowzero_reordered", "Reshape to [N, -1]"},
    {"test_reshape_extended_dims", "Reshape to [N, -1]"},
    {"test_reshape_negative_dim", "Reshape to [N, -1]"},
    {"test_reshape_negative_extended_dims", "Reshape to [N, -1]"},
    {"test_reshape_one_dim", "Reshape to [N, -1]"},
    {"test_reshape_reordered_all_dims", "Reshape to [N, -1]"},
    {"test_reshape_reordered_last_dims", "Reshape to [N, -1]"},
    {"test_reshape_zero_and_negative_dim", "Reshape to [N, -1]"},
    {"test_reshape_zero_dim", "Reshape to [N, -1]"},
    {"test_softmax_axis_0", "softmax over axis 0"},
    {"test_softmax_axis_2", "softmax over axis 2"},
    {"test_softmax_default_axis", "softmax over axis -1"},
    {"test_softmax_negative_axis", "softmax over axis -1"},
};

// The operators whose cases the lists cover: every test_<prefix>* directory, minus other operators
// that share a prefix (ConvInteger, ConvTranspose, MatMulInteger, the expanded softmax functions).
const char* const kPrefixes[] = {"test_add", "test_averagepool", "test_batchnorm", "test_conv_", "test_dropout",
                                 "test_flatten", "test_gemm", "test_globalaveragepool", "test_identity",
                                 "test_matmul_", "test_maxpool", "test_relu", "test_reshape", "test_sigmoid",
                                 "test_softmax", "test_tanh"};

bool covered(const std::string& name) {
  if (name.find("_expanded") != std::string::npos) return false;
  for (const char* p : kPrefixes)
    if (name.rfind(p, 0) == 0 && (name.size() == std::string(p).size() || name[std::string(p).size()] == '_' ||
                                  std::string(p).back() == '_'))
      return true;
  return false;
}

// Imports a case (input_0 the data, later inputs as constants), runs it, and returns the worst
// difference from output_0; throws what the import throws.
double run_case(const fs::path& dir) {
  const fs::path set = dir / "test_data_set_0";
  std::vector<std::string> extra;
  for (int k = 1; fs::exists(set / ("input_" + std::to_string(k) + ".pb")); ++k)
    extra.push_back((set / ("input_" + std::to_string(k) + ".pb")).string());
  const io::NetworkFile net = io::read_onnx((dir / "model.onnx").string(), extra);
  const io::NamedArray x = io::read_onnx_tensor((set / "input_0.pb").string());
  auto model = train::build_network(net);
  const io::NamedArray want = io::read_onnx_tensor((set / "output_0.pb").string());
  return worst(forward(*model, x.shape, x.values), want.values);
}

TEST(OnnxOperators, EveryCaseOfTheSupportedOperatorsIsClassified) {
  if (!fs::exists(kTestData)) GTEST_SKIP() << kTestData << " is missing: apt-get install libonnx-testdata";
  std::set<std::string> listed;
  for (const char* n : kSupportedCases) EXPECT_TRUE(listed.insert(n).second) << n << " is listed twice";
  for (const auto& u : kUnsupportedCases) EXPECT_TRUE(listed.insert(u.name).second) << u.name << " is listed twice";
  std::set<std::string> present;
  for (const auto& e : fs::directory_iterator(kTestData))
    if (covered(e.path().filename().string())) present.insert(e.path().filename().string());
  for (const auto& n : present) EXPECT_TRUE(listed.count(n)) << n << ": a case of a supported operator in neither list";
  for (const auto& n : listed) EXPECT_TRUE(present.count(n)) << n << ": listed, but libonnx-testdata has no such case";
}

TEST(OnnxOperators, SupportedCasesMatchTheExpectedOutputs) {
  if (!fs::exists(kTestData)) GTEST_SKIP() << kTestData << " is missing: apt-get install libonnx-testdata";
  for (const char* name : kSupportedCases) {
    if (!fs::exists(kTestData / name)) continue;  // reported by the classification test
    double w = 1e30;
    const std::string err = error_of([&] { w = run_case(kTestData / name); });
    EXPECT_EQ(err, "") << name;
    EXPECT_LE(w, 1e-5) << name << ": lockstep's output differs from ONNX's expected output";
  }
}

TEST(OnnxOperators, UnsupportedCasesAreClearErrors) {
  if (!fs::exists(kTestData)) GTEST_SKIP() << kTestData << " is missing: apt-get install libonnx-testdata";
  for (const auto& u : kUnsupportedCases) {
    if (!fs::exists(kTestData / u.name)) continue;
    std::string err;
    try {
      run_case(kTestData / u.name);
    } catch (const DataError& e) {
      err = e.what();
    }
    EXPECT_NE(err.find(u.reason), std::string::npos) << u.name << ": expected a DataError saying \"" << u.reason
                                                      << "\", got \"" << err << "\"";
    EXPECT_NE(err.find("model.onnx"), std::string::npos) << u.name << ": the error must name the file: " << err;
  }
}

// ---- PyTorch's network ----

TEST(OnnxTorch, ImportedNetworkMatchesPyTorchsProbabilities) {
  const io::NetworkFile net = io::read_onnx((kFixtures / "torch_cnn.onnx").string());
  EXPECT_EQ(net.input, (Shape{1, 12, 12}));
  std::vector<std::string> types;
  for (const auto& s : net.layers) types.push_back(s.type);
  EXPECT_EQ(types, (std::vector<std::string>{"conv2d", "relu", "batchnorm", "max_pool2d", "residual", "relu",
                                             "global_avg_pool", "flatten", "dense", "relu", "dense", "softmax"}));
  EXPECT_NE(net.description.find("pytorch"), std::string::npos) << net.description;
  auto model = train::build_network(net);
  const auto x = read_floats(kFixtures / "torch_cnn_input.bin");
  const auto want = read_floats(kFixtures / "torch_cnn_probs.bin");
  const auto got = forward(*model, {16, 1, 12, 12}, x);
  double most = 0.0;  // probabilities are at most 1: the absolute difference
  for (std::size_t i = 0; i < got.size(); ++i) most = std::max(most, std::fabs(static_cast<double>(got[i]) - want[i]));
  std::printf("largest probability difference from PyTorch 1.13: %.3g\n", most);
  EXPECT_LE(most, 1e-5);
}

// ---- export then import ----

Spec layer(const std::string& type, std::vector<std::pair<std::string, std::string>> params = {}) {
  return nn::layer_spec(type, std::move(params));
}
Spec list_param(Spec s, const std::string& key, std::vector<std::string> v) {
  s.params[key] = lockstep::Param{std::move(v), true, s.where + "." + key};
  return s;
}

// A model with trained-looking state: random parameters and batch-norm statistics.
std::unique_ptr<nn::Sequential> random_model(const Shape& input, const std::vector<Spec>& specs) {
  auto m = std::make_unique<nn::Sequential>(input, specs);
  m->initialize(3, nn::Init::kHeUniform);
  lockstep::CounterRng rng(9, lockstep::RngStream::kUser, 1);
  Tensor& b = m->flat_buffers();
  for (float* p = b.data<float>(); p != b.data<float>() + b.numel(); ++p) *p = 0.5f + rng.uniform();
  return m;
}

void expect_round_trip(const Shape& input, const std::vector<Spec>& specs, const std::string& file) {
  auto model = random_model(input, specs);
  const fs::path path = fs::temp_directory_path() / file;
  io::write_onnx(path.string(), train::describe_network(*model, specs));
  EXPECT_EQ(io::check_onnx(path.string()), "") << "onnx::checker rejects " << path;
  const io::NetworkFile back = io::read_onnx(path.string());
  auto again = train::build_network(back);
  ASSERT_EQ(again->num_params(), model->num_params());
  for (const auto& p : model->parameters()) {
    const auto& q = again->parameters()[static_cast<std::size_t>(&p - model->parameters().data())];
    EXPECT_EQ(q.name, p.name);
    EXPECT_EQ(0, std::memcmp(q.value.data<float>(), p.value.data<float>(), sizeof(float) * p.value.numel())) << p.name;
  }
  Shape batch{7};
  batch.insert(batch.end(), input.begin(), input.end());
  lockstep::CounterRng rng(4, lockstep::RngStream::kUser, 2);
  std::vector<float> x(static_cast<std::size_t>(lockstep::shape_numel(batch)));
  for (auto& v : x) v = 2.0f * rng.uniform() - 1.0f;
  const auto a = forward(*model, batch, x), b = forward(*again, batch, x);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "outputs differ after the round trip";
  fs::remove(path);
}

TEST(OnnxRoundTrip, MlpIsBitIdentical) {
  expect_round_trip({20}, {layer("dense", {{"units", "16"}}), layer("tanh"), layer("dropout", {{"rate", "0.3"}}),
                           layer("dense", {{"units", "8"}, {"bias", "false"}}), layer("sigmoid"),
                           layer("dense", {{"units", "3"}}), layer("softmax")},
                    "lockstep_mlp_round_trip.onnx");
}

TEST(OnnxRoundTrip, CnnWithBatchNormAndResidualBlocksIsBitIdentical) {
  Spec block = layer("residual");
  block.children["layers"] = {layer("conv2d", {{"filters", "6"}, {"kernel", "3"}, {"padding", "same"}}),
                              layer("batchnorm"), layer("relu"),
                              layer("conv2d", {{"filters", "6"}, {"kernel", "3"}, {"padding", "1"}, {"bias", "false"}})};
  Spec down = layer("residual");
  down.children["layers"] = {layer("conv2d", {{"filters", "8"}, {"kernel", "3"}, {"stride", "2"}, {"padding", "same"}})};
  down.children["shortcut"] = {layer("conv2d", {{"filters", "8"}, {"kernel", "1"}, {"stride", "2"}})};
  const std::vector<Spec> specs{layer("conv2d", {{"filters", "6"}, {"kernel", "3"}, {"stride", "2"}, {"padding", "same"}}),
                                layer("batchnorm"),
                                layer("relu"),
                                layer("max_pool2d", {{"kernel", "2"}, {"padding", "same"}}),
                                block,
                                down,
                                list_param(layer("avg_pool2d", {{"kernel", "2"}, {"stride", "1"}}), "padding",
                                           {"1", "0", "0", "1"}),
                                layer("global_avg_pool"),
                                layer("dense", {{"units", "4"}})};
  expect_round_trip({3, 15, 13}, specs, "lockstep_cnn_round_trip.onnx");
  // A dense layer straight on an image (lockstep flattens it itself) and a flatten layer.
  expect_round_trip({2, 5, 5}, {layer("conv2d", {{"filters", "3"}, {"kernel", "2"}, {"groups", "1"}}),
                                layer("dense", {{"units", "5"}}), layer("relu")},
                    "lockstep_cnn_dense.onnx");
  expect_round_trip({2, 5, 5}, {layer("avg_pool2d", {{"kernel", "3"}, {"stride", "2"}, {"padding", "1"}}),
                                layer("flatten"), layer("dense", {{"units", "2"}})},
                    "lockstep_cnn_flatten.onnx");
}

TEST(OnnxRoundTrip, ExportedPaddingIsExplicitTopLeftBottomRight) {
  const std::vector<Spec> specs{layer("conv2d", {{"filters", "2"}, {"kernel", "2"}, {"padding", "same"}})};
  auto model = random_model({1, 5, 5}, specs);
  const io::NetworkFile d = train::describe_network(*model, specs);
  // "same" with a 2x2 kernel pads one row and column, at the bottom and right.
  EXPECT_EQ(d.layers.at(0).params.at("padding").values, (std::vector<std::string>{"0", "0", "1", "1"}));
}

// ---- bad models ----

void expect_error(const fs::path& path, const std::vector<std::string>& parts) {
  std::string err;
  try {
    io::read_onnx(path.string());
  } catch (const DataError& e) {
    err = e.what();
  }
  ASSERT_NE(err, "") << path << " was read without a DataError";
  for (const auto& p : parts) EXPECT_NE(err.find(p), std::string::npos) << "expected \"" << p << "\" in: " << err;
}

TEST(OnnxBadModels, EachIsAClearError) {
  expect_error(kFixtures / "bad_unknown_op.onnx",
               {"bad_unknown_op.onnx: node 1 (Celu \"mystery\")", "operator Celu is not supported", "supported: Gemm"});
  expect_error(kFixtures / "bad_init_shape.onnx",
               {"node 0 (Gemm \"fc\")", "initializer \"fc.weight\" (B) has shape [4, 7]", "[units, 8]"});
  expect_error(kFixtures / "bad_opset.onnx", {"bad_opset.onnx: ONNX opset 18 is not supported", "7 to 17"});
  expect_error(kFixtures / "bad_int64_weights.onnx", {"initializer \"fc.weight\"", "INT64", "FLOAT"});
  expect_error(kFixtures / "no_such_model.onnx", {"no_such_model.onnx: cannot open"});
}

TEST(OnnxBadModels, TruncatedAndGarbageFilesAreClearErrors) {
  std::ifstream in(kFixtures / "torch_cnn.onnx", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const fs::path cut = fs::temp_directory_path() / "lockstep_truncated.onnx";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  expect_error(cut, {"lockstep_truncated.onnx: not an ONNX model"});
  const fs::path junk = fs::temp_directory_path() / "lockstep_garbage.onnx";
  std::string noise(3000, '\0');
  lockstep::CounterRng rng(17, lockstep::RngStream::kUser, 3);
  for (auto& c : noise) c = static_cast<char>(rng.uniform() * 256.0f);
  std::ofstream(junk, std::ios::binary) << noise;
  expect_error(junk, {"lockstep_garbage.onnx: not an ONNX model"});
  fs::remove(cut);
  fs::remove(junk);
}

}  // namespace
