// Networks as files (train/network_file.hpp) from lockstep checkpoints: a checkpoint alone rebuilds
// its network (its config's layers, its input_shape, its parameters and running statistics), a
// prefix of it can be built, parameters copy by name and shape with mismatches naming both sides,
// and a checkpoint without input_shape or with a damaged one is refused with the reason. Every rank
// reads; errors are agreed.
#include <gtest/gtest.h>

#include "detail/hdf5.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/io/config.hpp"
#include "lockstep/train/model.hpp"
#include "lockstep/train/network_file.hpp"
#include "support/test_comm.hpp"

using namespace lockstep;
using lockstep::testing::world;

namespace {

constexpr const char* kConfig = R"(
data: {format: synthetic, synthetic: {samples: 64, features: 36, classes: 3}}
model:
  layers:
    - {type: conv2d, filters: 4, kernel: 3, padding: same}
    - {type: batchnorm}
    - {type: relu}
    - {type: max_pool2d, kernel: 2}
    - {type: flatten}
    - {type: dense, units: 8}
    - {type: relu}
    - {type: dense, units: 3}
)";
const Shape kInput{1, 6, 6};

// A model of kConfig with drawn parameters and non-trivial running statistics, saved by rank 0.
std::unique_ptr<nn::Sequential> saved_model(const std::string& path, bool with_shape) {
  const auto cfg = io::parse_config(kConfig, "net-config", {});
  auto model = train::build_model(cfg, kInput);
  model->initialize(11, nn::Init::kHeNormal);
  float* b = model->flat_buffers().data<float>();
  for (std::int64_t i = 0; i < model->num_buffers(); ++i) b[i] = 0.5f + 0.125f * static_cast<float>(i % 5);
  if (world().rank() == 0) {
    io::CheckpointState st;
    const auto& p = model->flat_params();
    st.params.assign(p.data<float>(), p.data<float>() + p.numel());
    st.layout = train::param_layout(*model);
    st.buffers.assign(b, b + model->num_buffers());
    st.buffer_layout = train::buffer_layout(*model);
    st.config_yaml = io::to_yaml(cfg);
    if (with_shape) st.input_shape = kInput;
    io::save_checkpoint(path, st);
  }
  world().barrier();
  return model;
}

Tensor input_batch(std::int64_t rows) {
  Tensor x({rows, 1, 6, 6});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>((i * 7) % 13) / 13.0f - 0.4f;
  return x;
}

std::vector<float> values(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(NetworkFile, ACheckpointAloneRebuildsItsNetworkWithTheSameOutputs) {
  const auto dir = lockstep::testing::shared_temp_dir("netfile");
  const std::string path = (dir / "ckpt.h5").string();
  auto model = saved_model(path, true);
  const io::NetworkFile net = train::read_network(world(), path);
  EXPECT_EQ(net.input, kInput);
  ASSERT_EQ(net.layers.size(), 8u);
  EXPECT_EQ(train::layer_names(net),
            (std::vector<std::string>{"conv2d0", "batchnorm1", "relu2", "max_pool2d3", "flatten4", "dense5", "relu6",
                                      "dense7"}));
  auto rebuilt = train::build_network(net);
  const Tensor x = input_batch(5);
  EXPECT_EQ(values(rebuilt->forward(x, {})), values(model->forward(x, {})));
  // The first six layers: the features a head would read.
  auto prefix = train::build_network(net, train::layer_index(net, "dense5", "test") + 1);
  EXPECT_EQ(prefix->output_shape(), Shape{8});
  EXPECT_EQ(prefix->num_params(), model->num_params() - 8 * 3 - 3);
}

TEST(NetworkFile, MismatchesAndUnknownLayersNameBothSides) {
  const auto dir = lockstep::testing::shared_temp_dir("netfile_bad");
  const std::string path = (dir / "ckpt.h5").string();
  saved_model(path, true);
  const io::NetworkFile net = train::read_network(world(), path);
  const std::string unknown = error_of([&] { train::layer_index(net, "dense9", "model.replace_from"); });
  EXPECT_NE(unknown.find("model.replace_from: no layer \"dense9\""), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("dense5, relu6, dense7"), std::string::npos) << unknown;
  // A wider first dense layer: its weight's shape differs from the file's.
  std::vector<Spec> wider = net.layers;
  wider[5].params["units"].values = {"9"};
  nn::Sequential other(kInput, wider);
  const std::string shape = error_of([&] { train::copy_network_state(net, other, 8, "model.init_from: x.h5"); });
  EXPECT_NE(shape.find("model.init_from: x.h5: dense5.weight has shape [36, 8], the model's dense5.weight has "
                       "shape [36, 9]"),
            std::string::npos)
      << shape;
  // The layers before it copy without complaint.
  EXPECT_EQ(error_of([&] { train::copy_network_state(net, other, 5, "model.init_from: x.h5"); }), "");
}

TEST(NetworkFile, ACheckpointWithoutOrWithADamagedInputShapeIsRefused) {
  const auto dir = lockstep::testing::shared_temp_dir("netfile_old");
  const std::string old_path = (dir / "old.h5").string();
  saved_model(old_path, false);
  const std::string old_error = error_of([&] { train::read_network(world(), old_path); });
  EXPECT_NE(old_error.find("no input_shape attribute"), std::string::npos) << old_error;

  const std::string bad_path = (dir / "bad.h5").string();
  saved_model(bad_path, true);
  if (world().rank() == 0) {
    auto f = detail::H5File::open_rw(bad_path);
    f.set_attr("/", "input_shape", std::string("1,-6,6"));
    f.close();
  }
  world().barrier();
  const std::string bad_error = error_of([&] { train::read_network(world(), bad_path); });
  // Either the checksum of the root attributes or the shape's own check catches it, naming the file.
  EXPECT_NE(bad_error.find(bad_path), std::string::npos) << bad_error;
  EXPECT_TRUE(bad_error.find("input_shape") != std::string::npos || bad_error.find("checksum") != std::string::npos)
      << bad_error;
  const std::string missing = error_of([&] { train::read_network(world(), (dir / "none.h5").string()); });
  EXPECT_NE(missing.find("none.h5: no such checkpoint file"), std::string::npos) << missing;
}

TEST(NetworkFile, ABatchWhoseActivationsCannotFitIsRefusedBeforeAllocating) {
  const auto dir = lockstep::testing::shared_temp_dir("netfile_batch");
  auto model = saved_model((dir / "ckpt.h5").string(), true);
  EXPECT_EQ(error_of([&] { train::check_batch_fits(*model, 256, "--batch"); }), "");
  // 2^30 rows of this CNN's activations (about 600 floats a row) is terabytes.
  const std::string e = error_of([&] { train::check_batch_fits(*model, std::int64_t{1} << 30, "--batch"); });
  EXPECT_NE(e.find("--batch: a batch of 1073741824 rows of 36 features, with every layer's output"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("more than the"), std::string::npos) << e;
}
