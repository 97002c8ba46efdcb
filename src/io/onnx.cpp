// ONNX models in and out (see onnx.hpp and docs/onnx.md). The only file that sees ONNX or protobuf.
//
// Import reads the graph as a chain from its one data input to its one output: each node becomes a
// lockstep layer (MatMul and the Add of its bias become one dense layer; Identity nodes vanish), and
// a value that feeds two paths which meet again at one Add becomes a residual block whose `layers`
// are the path into the Add's first input and whose `shortcut` is the other (identity when the
// value itself is that input). Per-sample shapes are followed node by node (ONNX's, and lockstep's,
// which differ only after GlobalAveragePool: {C, 1, 1} against {C}) so that every attribute can be
// checked against the input it will see. Export writes one node per lockstep layer (opset 13).
#include "lockstep/io/onnx.hpp"
#include "lockstep/core/checked_size.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "lockstep/build_info.hpp"
#include "lockstep/core/error.hpp"
#include "lockstep/io/atomic_file.hpp"

#if LOCKSTEP_HAVE_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#endif

namespace lockstep::io {

bool is_onnx_path(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
}

#if LOCKSTEP_HAVE_ONNX

namespace {

constexpr std::int64_t kMinOpset = 7, kMaxOpset = 17, kExportOpset = 13;
const char* const kSupported =
    "supported: Gemm, MatMul (+ Add of a bias), Conv, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, "
    "Relu, Sigmoid, Tanh, Flatten, Reshape to [N, -1], Dropout, Softmax, Add of two branches (residual), Identity; "
    "see docs/onnx.md";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LOCKSTEP_CHECK(in.good(), DataError, path, ": cannot open (", std::strerror(errno), ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string join(const std::vector<std::int64_t>& v) {
  std::ostringstream s;
  s << "[";
  for (std::size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << "]";
  return s.str();
}

std::string number(double v) {
  std::ostringstream s;
  s << std::setprecision(9) << v;
  return s.str();
}

// A constant tensor: an initializer, a Constant node's value, or a test case's extra input.
struct Const {
  std::string name;
  int dtype = 0;
  Shape shape;
  std::vector<float> f;         // FLOAT
  std::vector<std::int64_t> i;  // INT64, INT32, BOOL
};

template <typename T>
std::vector<T> raw_values(const std::string& raw, std::int64_t n, const std::string& what) {
  LOCKSTEP_CHECK(raw.size() == static_cast<std::size_t>(n) * sizeof(T), DataError, what, ": raw_data holds ",
                 raw.size(), " bytes, expected ", n * static_cast<std::int64_t>(sizeof(T)));
  std::vector<T> v(static_cast<std::size_t>(n));
  if (n > 0) std::memcpy(v.data(), raw.data(), raw.size());
  return v;
}

Const to_const(const onnx::TensorProto& t, const std::string& what) {
  LOCKSTEP_CHECK(t.data_location() != onnx::TensorProto::EXTERNAL, DataError, what,
                 ": its data is in an external file; lockstep reads models whose tensors are inside the .onnx file");
  Const c;
  c.name = t.name();
  c.dtype = t.data_type();
  for (const auto d : t.dims()) {
    LOCKSTEP_CHECK(d >= 0, DataError, what, ": dimension ", d);
    c.shape.push_back(d);
  }
  const std::int64_t n = checked_product<DataError>(c.shape, what + ": shape " + shape_str(c.shape));
  const bool raw = t.has_raw_data();
  if (c.dtype == onnx::TensorProto::FLOAT) {
    c.f = raw ? raw_values<float>(t.raw_data(), n, what) : std::vector<float>(t.float_data().begin(), t.float_data().end());
    LOCKSTEP_CHECK(static_cast<std::int64_t>(c.f.size()) == n, DataError, what, ": holds ", c.f.size(),
                   " values for shape ", shape_str(c.shape));
  } else if (c.dtype == onnx::TensorProto::INT64) {
    c.i = raw ? raw_values<std::int64_t>(t.raw_data(), n, what)
              : std::vector<std::int64_t>(t.int64_data().begin(), t.int64_data().end());
    LOCKSTEP_CHECK(static_cast<std::int64_t>(c.i.size()) == n, DataError, what, ": holds ", c.i.size(),
                   " values for shape ", shape_str(c.shape));
  } else if (c.dtype == onnx::TensorProto::BOOL || c.dtype == onnx::TensorProto::INT32) {
    if (raw && c.dtype == onnx::TensorProto::BOOL)
      for (const char b : t.raw_data()) c.i.push_back(b != 0);
    else if (raw)
      for (const auto v : raw_values<std::int32_t>(t.raw_data(), n, what)) c.i.push_back(v);
    else
      c.i.assign(t.int32_data().begin(), t.int32_data().end());
    LOCKSTEP_CHECK(static_cast<std::int64_t>(c.i.size()) == n, DataError, what, ": holds ", c.i.size(),
                   " values for shape ", shape_str(c.shape));
  }
  return c;
}

std::string dtype_name(int dtype) {
  return onnx::TensorProto_DataType_IsValid(dtype)
             ? onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(dtype))
             : "type " + std::to_string(dtype);
}

// A layer as a converter makes it: its spec and its arrays, named locally ("weight").
struct Made {
  Spec spec;
  std::vector<NamedArray> params, buffers;
};

// A spec parameter (its place is set when the layer is named).
Param ints(const std::vector<std::int64_t>& v) {
  Param p;
  for (const auto x : v) p.values.push_back(std::to_string(x));
  p.is_list = v.size() > 1;
  return p;
}
Param text(const std::string& v) { return Param{{v}, false, ""}; }

// Where the chain is: the value it has reached, that value's per-sample shape in ONNX and as
// lockstep's layers see it, and the node that made it.
struct Cursor {
  std::string value;
  Shape onnx, ls;
  std::string last_node;
};

class Importer {
 public:
  Importer(const onnx::ModelProto& m, std::string path, const std::vector<std::string>& extra);
  NetworkFile run();

 private:
  std::string where(int n) const;
  [[noreturn]] void fail(int n, const std::string& what) const { throw DataError(where(n) + ": " + what); }
  const onnx::NodeProto& node(int n) const { return g_.node(n); }
  std::vector<int> users(const std::string& value) const;
  bool is_const(const std::string& v) const { return consts_.count(v) > 0; }
  bool is_join(int n) const;
  void check_attrs(int n, const std::set<std::string>& known) const;
  void check_extra_outputs(int n, int first_extra) const;
  const onnx::AttributeProto* attr(int n, const std::string& name) const;
  std::int64_t attr_int(int n, const std::string& name, std::int64_t dflt) const;
  float attr_float(int n, const std::string& name, float dflt) const;
  std::vector<std::int64_t> attr_ints(int n, const std::string& name, std::vector<std::int64_t> dflt) const;
  const Const& weight(int n, int input, const std::string& role) const;
  void read_inputs(const std::vector<std::string>& extra);
  void read_constants();
  std::vector<Spec> chain(Cursor& c, const std::string& end, int first, const std::string& prefix);
  Spec residual(Cursor& c, const std::vector<int>& forks, const std::string& prefix);
  std::pair<int, std::string> follow(int n, const std::string& from) const;
  void convert(int n, Cursor& c, std::vector<Spec>& out, const std::string& prefix);
  Made dense(int n, Cursor& c);
  Made matmul(int n, Cursor& c);
  Made conv(int n, Cursor& c);
  Made pool(int n, Cursor& c);
  Made batchnorm(int n, Cursor& c);
  Made dropout(int n, Cursor& c);
  Made softmax(int n, Cursor& c);
  bool flatten(int n, Cursor& c, Made& m);
  std::array<std::int64_t, 4> window_pads(int n, const Cursor& c, const std::vector<std::int64_t>& k,
                                          const std::vector<std::int64_t>& s, const std::vector<std::int64_t>& d) const;

  const onnx::ModelProto& m_;
  const onnx::GraphProto& g_;
  std::string path_;
  std::int64_t opset_ = 0;
  std::map<std::string, Const> consts_;
  std::vector<bool> done_;
  std::string data_input_;
  Shape input_;
  NetworkFile net_;
};

std::string Importer::where(int n) const {
  std::ostringstream s;
  s << path_ << ": node " << n << " (" << node(n).op_type() << " \"" << node(n).name() << "\")";
  return s.str();
}

std::vector<int> Importer::users(const std::string& value) const {
  std::vector<int> out;
  for (int n = 0; n < g_.node_size(); ++n)
    for (const auto& in : node(n).input())
      if (in == value) {
        out.push_back(n);
        break;
      }
  return out;
}

bool Importer::is_join(int n) const {
  const auto& nd = node(n);
  return nd.op_type() == "Add" && nd.input_size() == 2 && !is_const(nd.input(0)) && !is_const(nd.input(1));
}

const onnx::AttributeProto* Importer::attr(int n, const std::string& name) const {
  for (const auto& a : node(n).attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

void Importer::check_attrs(int n, const std::set<std::string>& known) const {
  for (const auto& a : node(n).attribute()) {
    if (known.count(a.name())) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    fail(n, "attribute \"" + a.name() + "\" is not supported (lockstep reads " +
                (list.empty() ? std::string("none") : list) + " on " + node(n).op_type() + ")");
  }
}

// Outputs from first_extra on (batch norm's statistics, dropout's mask, max pool's indices) must
// be unused: lockstep computes only the first.
void Importer::check_extra_outputs(int n, int first_extra) const {
  for (int k = first_extra; k < node(n).output_size(); ++k) {
    const std::string& v = node(n).output(k);
    if (v.empty()) continue;
    bool is_output = false;
    for (const auto& o : g_.output()) is_output = is_output || o.name() == v;
    if (is_output || !users(v).empty())
      fail(n, "its output " + std::to_string(k) + " (\"" + v +
                  "\") is used; lockstep computes only the first output of " + node(n).op_type());
  }
}

std::int64_t Importer::attr_int(int n, const std::string& name, std::int64_t dflt) const {
  const auto* a = attr(n, name);
  if (!a) return dflt;
  if (a->type() != onnx::AttributeProto::INT) fail(n, "attribute " + name + ": expected an integer");
  return a->i();
}

float Importer::attr_float(int n, const std::string& name, float dflt) const {
  const auto* a = attr(n, name);
  if (!a) return dflt;
  if (a->type() != onnx::AttributeProto::FLOAT) fail(n, "attribute " + name + ": expected a float");
  return a->f();
}

std::vector<std::int64_t> Importer::attr_ints(int n, const std::string& name, std::vector<std::int64_t> dflt) const {
  const auto* a = attr(n, name);
  if (!a) return dflt;
  if (a->type() != onnx::AttributeProto::INTS) fail(n, "attribute " + name + ": expected a list of integers");
  return std::vector<std::int64_t>(a->ints().begin(), a->ints().end());
}

const Const& Importer::weight(int n, int input, const std::string& role) const {
  if (node(n).input_size() <= input || node(n).input(input).empty())
    fail(n, "has no input " + std::to_string(input) + " (" + role + ")");
  const std::string& v = node(n).input(input);
  const auto it = consts_.find(v);
  if (it == consts_.end())
    fail(n, "input " + std::to_string(input) + " (" + role + ", \"" + v +
                "\") is computed by the graph; lockstep needs it as an initializer");
  if (it->second.dtype != onnx::TensorProto::FLOAT)
    fail(n, "initializer \"" + v + "\" (" + role + ") has data type " + dtype_name(it->second.dtype) +
                "; lockstep reads FLOAT (float32) weights only");
  return it->second;
}

Importer::Importer(const onnx::ModelProto& m, std::string path, const std::vector<std::string>& extra)
    : m_(m), g_(m.graph()), path_(std::move(path)), done_(static_cast<std::size_t>(m.graph().node_size()), false) {
  for (const auto& op : m.opset_import()) {
    if (!op.domain().empty() && op.domain() != "ai.onnx") continue;
    opset_ = op.version();
  }
  LOCKSTEP_CHECK(opset_ != 0 || m.opset_import_size() == 0, DataError, path_,
                 ": imports no opset of the default ONNX domain");
  if (m.opset_import_size() == 0) opset_ = 1;  // IR version 2 models carry no opset_import
  LOCKSTEP_CHECK(opset_ >= kMinOpset && opset_ <= kMaxOpset, DataError, path_, ": ONNX opset ", opset_,
                 " is not supported (lockstep reads opsets ", kMinOpset, " to ", kMaxOpset, ")");
  for (int n = 0; n < g_.node_size(); ++n) {
    const auto& d = node(n).domain();
    if (!d.empty() && d != "ai.onnx") fail(n, "operator domain \"" + d + "\" is not supported; " + kSupported);
  }
  read_constants();
  read_inputs(extra);
}

void Importer::read_constants() {
  for (const auto& t : g_.initializer()) consts_[t.name()] = to_const(t, path_ + ": initializer \"" + t.name() + "\"");
  for (int n = 0; n < g_.node_size(); ++n) {
    if (node(n).op_type() != "Constant") continue;
    const auto* a = attr(n, "value");
    if (!a || a->type() != onnx::AttributeProto::TENSOR || node(n).output_size() != 1)
      fail(n, "lockstep reads Constant nodes with a tensor `value` only");
    Const c = to_const(a->t(), where(n));
    c.name = node(n).output(0);
    consts_[c.name] = c;
    done_[static_cast<std::size_t>(n)] = true;
  }
}

void Importer::read_inputs(const std::vector<std::string>& extra) {
  std::size_t next_extra = 0;
  for (const auto& in : g_.input()) {
    if (is_const(in.name())) continue;
    if (data_input_.empty()) {
      data_input_ = in.name();
      const auto& t = in.type();
      LOCKSTEP_CHECK(t.has_tensor_type() && t.tensor_type().elem_type() == onnx::TensorProto::FLOAT, DataError, path_,
                     ": input \"", in.name(), "\" is not a float32 tensor (",
                     t.has_tensor_type() ? dtype_name(t.tensor_type().elem_type()) : std::string("not a tensor"),
                     "); lockstep reads float32 data");
      const auto& dims = t.tensor_type().shape().dim();
      LOCKSTEP_CHECK(t.tensor_type().has_shape() && dims.size() >= 2, DataError, path_, ": input \"", in.name(),
                     "\" has ", t.tensor_type().has_shape() ? std::to_string(dims.size()) : std::string("no"),
                     " dimensions; expected [N, ...] with a batch dimension first");
      for (int k = 1; k < dims.size(); ++k) {
        LOCKSTEP_CHECK(dims[k].has_dim_value() && dims[k].dim_value() > 0, DataError, path_, ": input \"", in.name(),
                       "\" dimension ", k, " is ", dims[k].has_dim_param() ? "\"" + dims[k].dim_param() + "\"" : "unknown",
                       "; every dimension after the batch must be a fixed size");
        input_.push_back(dims[k].dim_value());
      }
      // Shapes computed from it stay far from 64-bit overflow: at most 2^31 values per sample.
      const std::int64_t per_sample =
          checked_product<DataError>(input_, path_ + ": input \"" + in.name() + "\" of shape " + shape_str(input_));
      LOCKSTEP_CHECK(per_sample <= (std::int64_t{1} << 31), DataError, path_, ": input \"", in.name(), "\" has ",
                     per_sample, " values per sample (shape ", shape_str(input_), "); lockstep reads at most 2^31");
      continue;
    }
    LOCKSTEP_CHECK(next_extra < extra.size(), DataError, path_, ": input \"", in.name(),
                   "\" is a second data input; lockstep reads models with one input (weights as initializers)");
    const std::string& file = extra[next_extra++];
    onnx::TensorProto t;
    LOCKSTEP_CHECK(t.ParseFromString(read_bytes(file)), DataError, file, ": not a serialized ONNX TensorProto");
    Const c = to_const(t, file);
    c.name = in.name();
    consts_[c.name] = c;
  }
  LOCKSTEP_CHECK(!data_input_.empty(), DataError, path_, ": the graph has no input besides its initializers");
}

// The Add at which the path starting at node n meets another, and the value the path gives it.
std::pair<int, std::string> Importer::follow(int n, const std::string& from) const {
  std::string value = from;
  for (int steps = 0; steps <= g_.node_size(); ++steps) {
    if (is_join(n)) return {n, value};
    value = node(n).output(0);
    const auto next = users(value);
    if (next.size() != 1)
      fail(n, "its output feeds " + std::to_string(next.size()) +
                  " nodes inside a residual branch; lockstep reads a graph as a chain of layers and residual "
                  "blocks (a value used by two paths that meet again at one Add, without forks inside)");
    n = next[0];
  }
  fail(n, "the graph has a cycle");
}

Spec Importer::residual(Cursor& c, const std::vector<int>& forks, const std::string& prefix) {
  const auto a = follow(forks[0], c.value), b = follow(forks[1], c.value);
  if (a.first != b.first)
    fail(forks[0], "value \"" + c.value + "\" feeds two paths that do not meet at one Add (they reach node " +
                       std::to_string(a.first) + " and node " + std::to_string(b.first) + ")");
  const int j = a.first;
  const auto& add = node(j);
  if (add.input(0) == add.input(1)) fail(j, "adds a value to itself; " + std::string(kSupported));
  // The path into the Add's first input is the block's layers and the other its shortcut, unless
  // the first input is the block's input itself (Add(x, f(x))): then that one is the identity.
  const int l = add.input(0) == c.value ? 1 : 0, sc = 1 - l;
  const int fork[2] = {a.second == add.input(0) ? forks[0] : forks[1], a.second == add.input(0) ? forks[1] : forks[0]};
  Spec s;
  s.type = "residual";
  s.where = where(j);
  Cursor inner = c, shortcut = c;
  s.children["layers"] = chain(inner, add.input(l), fork[l], prefix);
  if (add.input(sc) != c.value) s.children["shortcut"] = chain(shortcut, add.input(sc), fork[sc], prefix + "shortcut.");
  if (inner.onnx != shortcut.onnx)
    fail(j, "adds shapes " + shape_str(inner.onnx) + " and " + shape_str(shortcut.onnx) +
                "; lockstep's residual blocks add equal shapes (no broadcasting)");
  done_[static_cast<std::size_t>(j)] = true;
  c.value = add.output(0);
  c.onnx = inner.onnx;
  c.ls = inner.ls;
  c.last_node = add.name();
  return s;
}

// The nodes from c.value until `end` is made, as layers named with `prefix`; `first` is the node
// to take first (-1: the one node that reads c.value).
std::vector<Spec> Importer::chain(Cursor& c, const std::string& end, int first, const std::string& prefix) {
  std::vector<Spec> out;
  while (c.value != end) {
    int n = first;
    first = -1;
    if (n < 0) {
      auto next = users(c.value);
      next.erase(std::remove_if(next.begin(), next.end(), [&](int k) { return done_[static_cast<std::size_t>(k)]; }),
                 next.end());
      if (next.size() == 2) {
        out.push_back(residual(c, next, prefix + "residual" + std::to_string(out.size()) + "."));
        continue;
      }
      LOCKSTEP_CHECK(next.size() == 1, DataError, path_, ": value \"", c.value, "\" is read by ", next.size(),
                     " nodes; lockstep reads a graph as a chain from its input to its output \"", end,
                     "\" (a value may feed two paths only when they meet again at one Add)");
      n = next[0];
    }
    if (done_[static_cast<std::size_t>(n)]) fail(n, "is reached twice");
    convert(n, c, out, prefix);
  }
  return out;
}

void Importer::convert(int n, Cursor& c, std::vector<Spec>& out, const std::string& prefix) {
  const auto& nd = node(n);
  const std::string& op = nd.op_type();
  if (nd.input_size() < 1 || nd.input(0) != c.value)
    fail(n, "reads \"" + c.value + "\" as input " + std::to_string(nd.input_size()) +
                " other than its first; lockstep's layers take the data as the first input");
  done_[static_cast<std::size_t>(n)] = true;
  const std::string before = c.value;
  Made m;
  bool keep = true;
  if (op == "Identity") {
    check_attrs(n, {});
    keep = false;
  } else if (op == "Gemm") {
    m = dense(n, c);
  } else if (op == "MatMul") {
    m = matmul(n, c);  // may take the Add of the bias after it, and move c.value past it
  } else if (op == "Conv") {
    m = conv(n, c);
  } else if (op == "MaxPool" || op == "AveragePool") {
    m = pool(n, c);
  } else if (op == "GlobalAveragePool") {
    check_attrs(n, {});
    if (c.ls.size() != 3) fail(n, "input of shape [N, " + shape_str(c.onnx) + "]: lockstep pools 2-D images [N, C, H, W]");
    m.spec.type = "global_avg_pool";
    c.onnx = {c.onnx[0], 1, 1};
    c.ls = {c.ls[0]};
  } else if (op == "BatchNormalization") {
    m = batchnorm(n, c);
  } else if (op == "Relu" || op == "Sigmoid" || op == "Tanh") {
    check_attrs(n, {});
    m.spec.type = op == "Relu" ? "relu" : op == "Sigmoid" ? "sigmoid" : "tanh";
  } else if (op == "Flatten" || op == "Reshape") {
    keep = flatten(n, c, m);
  } else if (op == "Dropout") {
    m = dropout(n, c);
  } else if (op == "Softmax") {
    m = softmax(n, c);
  } else if (op == "Add") {
    fail(n, is_join(n) ? "adds two computed values that do not start from one value (a residual block's two paths "
                         "must leave from the same value)"
                       : "adds a constant; lockstep takes an Add of a constant only as the bias after a MatMul");
  } else {
    fail(n, "operator " + op + " is not supported; " + kSupported);
  }
  if (c.value == before) {  // (MatMul moves past the Add of its bias itself)
    c.value = nd.output(0);
    c.last_node = nd.name();
  }
  if (!keep) return;
  const std::string name = prefix + m.spec.type + std::to_string(out.size());
  m.spec.where = where(n);
  for (auto& [k, p] : m.spec.params) p.where = where(n) + " -> " + name + "." + k;
  for (auto& a : m.params) net_.params.push_back({name + "." + a.name, a.shape, std::move(a.values)});
  for (auto& a : m.buffers) net_.buffers.push_back({name + "." + a.name, a.shape, std::move(a.values)});
  out.push_back(std::move(m.spec));
}

Made Importer::dense(int n, Cursor& c) {
  check_attrs(n, {"alpha", "beta", "transA", "transB"});
  if (attr_int(n, "transA", 0) != 0) fail(n, "transA = 1 is not supported (the data must be A, untransposed)");
  if (attr_float(n, "alpha", 1.0f) != 1.0f)
    fail(n, "alpha = " + number(attr_float(n, "alpha", 1.0f)) + " is not supported (lockstep's dense has alpha = 1)");
  const bool has_c = node(n).input_size() > 2 && !node(n).input(2).empty();
  if (has_c && attr_float(n, "beta", 1.0f) != 1.0f)
    fail(n, "beta = " + number(attr_float(n, "beta", 1.0f)) + " is not supported (lockstep's dense has beta = 1)");
  if (c.onnx.size() != 1) fail(n, "input of shape [N, " + shape_str(c.onnx) + "]: Gemm takes a matrix [N, features]");
  const bool trans = attr_int(n, "transB", 0) != 0;
  const Const& b = weight(n, 1, "B, the weight");
  const std::int64_t in = c.onnx[0];
  if (b.shape.size() != 2 || b.shape[trans ? 1 : 0] != in)
    fail(n, "initializer \"" + b.name + "\" (B) has shape " + shape_str(b.shape) + ", expected " +
                (trans ? "[units, " + std::to_string(in) + "] (transB = 1)" : "[" + std::to_string(in) + ", units]") +
                " for an input of " + std::to_string(in) + " features");
  const std::int64_t units = b.shape[trans ? 0 : 1];
  Made m;
  m.spec.type = "dense";
  m.spec.params["units"] = ints({units});
  std::vector<float> w(b.f.size());
  for (std::int64_t i = 0; i < in; ++i)
    for (std::int64_t u = 0; u < units; ++u)
      w[static_cast<std::size_t>(i * units + u)] = b.f[static_cast<std::size_t>(trans ? u * in + i : i * units + u)];
  m.params.push_back({"weight", {in, units}, std::move(w)});
  if (has_c) {
    const Const& bias = weight(n, 2, "C, the bias");
    const std::int64_t k = shape_numel(bias.shape);
    const bool per_unit = (k == units && bias.shape.size() <= 2 && (bias.shape.size() < 2 || bias.shape[0] == 1)) ||
                          (k == 1 && bias.shape.size() <= 1);
    if (!per_unit)
      fail(n, "initializer \"" + bias.name + "\" (C) has shape " + shape_str(bias.shape) +
                  "; lockstep's bias is one value per unit ([" + std::to_string(units) + "], [1, " +
                  std::to_string(units) + "] or a scalar), not per row");
    m.params.push_back({"bias", {units}, k == 1 ? std::vector<float>(static_cast<std::size_t>(units), bias.f[0]) : bias.f});
  }
  m.spec.params["bias"] = text(has_c ? "true" : "false");
  c.onnx = c.ls = {units};
  return m;
}

Made Importer::matmul(int n, Cursor& c) {
  check_attrs(n, {});
  if (c.onnx.size() != 1)
    fail(n, "input of shape [N, " + shape_str(c.onnx) + "]: lockstep reads MatMul of a matrix [N, features] only");
  const Const& b = weight(n, 1, "B, the weight");
  if (b.shape.size() != 2 || b.shape[0] != c.onnx[0])
    fail(n, "initializer \"" + b.name + "\" (B) has shape " + shape_str(b.shape) + ", expected [" +
                std::to_string(c.onnx[0]) + ", units]");
  const std::int64_t units = b.shape[1];
  Made m;
  m.spec.type = "dense";
  m.spec.params["units"] = ints({units});
  m.params.push_back({"weight", b.shape, b.f});
  const auto next = users(node(n).output(0));
  bool bias = false;
  if (next.size() == 1 && node(next[0]).op_type() == "Add" && node(next[0]).input_size() == 2) {
    const auto& add = node(next[0]);
    const int k = add.input(0) == node(n).output(0) ? 1 : 0;
    const auto it = consts_.find(add.input(k));
    if (it != consts_.end() && it->second.dtype == onnx::TensorProto::FLOAT &&
        shape_numel(it->second.shape) == units && it->second.shape.back() == units) {
      m.params.push_back({"bias", {units}, it->second.f});
      done_[static_cast<std::size_t>(next[0])] = true;
      c.value = add.output(0);
      c.last_node = add.name();
      bias = true;
    }
  }
  m.spec.params["bias"] = text(bias ? "true" : "false");
  c.onnx = c.ls = {units};
  return m;
}

// ONNX's pads (or auto_pad) for a window over c's {C, H, W}: [top, left, bottom, right].
std::array<std::int64_t, 4> Importer::window_pads(int n, const Cursor& c, const std::vector<std::int64_t>& k,
                                                  const std::vector<std::int64_t>& s,
                                                  const std::vector<std::int64_t>& d) const {
  const auto* ap = attr(n, "auto_pad");
  const std::string mode = ap ? ap->s() : "NOTSET";
  std::array<std::int64_t, 4> p{0, 0, 0, 0};
  if (mode == "NOTSET") {
    const auto v = attr_ints(n, "pads", {0, 0, 0, 0});
    if (v.size() != 4) fail(n, "pads " + join(v) + ": expected 4 values [top, left, bottom, right]");
    for (int i = 0; i < 4; ++i) {
      if (v[static_cast<std::size_t>(i)] < 0) fail(n, "pads " + join(v) + ": negative padding is not supported");
      p[static_cast<std::size_t>(i)] = v[static_cast<std::size_t>(i)];
    }
    return p;
  }
  if (mode == "VALID") return p;
  if (mode != "SAME_UPPER" && mode != "SAME_LOWER") fail(n, "auto_pad \"" + mode + "\" is not supported");
  for (std::size_t a = 0; a < 2; ++a) {
    const std::int64_t in = c.onnx[a + 1], out = (in + s[a] - 1) / s[a], span = d[a] * (k[a] - 1) + 1;
    const std::int64_t total = std::max<std::int64_t>((out - 1) * s[a] + span - in, 0), small = total / 2;
    p[a] = mode == "SAME_UPPER" ? small : total - small;
    p[a + 2] = total - p[a];
  }
  return p;
}

// The output size of a window along one axis; a DataError when the window does not fit.
std::int64_t window_out(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t d, std::int64_t lo,
                        std::int64_t hi) {
  const std::int64_t span = d * (k - 1) + 1;
  return in + lo + hi < span ? 0 : (in + lo + hi - span) / s + 1;
}

Made Importer::conv(int n, Cursor& c) {
  check_attrs(n, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  const Const& w = weight(n, 1, "W, the weight");
  if (w.shape.size() != 4 || c.ls.size() != 3)
    fail(n, "a convolution over [N, " + shape_str(c.onnx) + "] with weight " + shape_str(w.shape) +
                " is not 2-D; lockstep convolves images [N, C, H, W] with weights [filters, C / group, kh, kw]");
  const std::int64_t group = attr_int(n, "group", 1), filters = w.shape[0];
  if (group < 1 || w.shape[1] * group != c.onnx[0] || filters % group != 0)
    fail(n, "initializer \"" + w.name + "\" (W) has shape " + shape_str(w.shape) + ", expected [filters, " +
                std::to_string(c.onnx[0]) + " / group " + std::to_string(group) + ", kh, kw] for " +
                std::to_string(c.onnx[0]) + " input channels");
  const std::vector<std::int64_t> k{w.shape[2], w.shape[3]};
  if (attr_ints(n, "kernel_shape", k) != k)
    fail(n, "kernel_shape " + join(attr_ints(n, "kernel_shape", k)) + " differs from the weight's " + join(k));
  const auto s = attr_ints(n, "strides", {1, 1}), d = attr_ints(n, "dilations", {1, 1});
  if (s.size() != 2 || d.size() != 2 || s[0] < 1 || s[1] < 1 || d[0] < 1 || d[1] < 1)
    fail(n, "strides " + join(s) + " and dilations " + join(d) + ": expected two positive values each");
  const auto p = window_pads(n, c, k, s, d);
  const std::int64_t oh = window_out(c.onnx[1], k[0], s[0], d[0], p[0], p[2]);
  const std::int64_t ow = window_out(c.onnx[2], k[1], s[1], d[1], p[1], p[3]);
  if (oh <= 0 || ow <= 0) fail(n, "the kernel " + join(k) + " does not fit the input " + shape_str(c.onnx));
  Made m;
  m.spec.type = "conv2d";
  m.spec.params["filters"] = ints({filters});
  m.spec.params["kernel"] = ints(k);
  m.spec.params["stride"] = ints(s);
  m.spec.params["dilation"] = ints(d);
  m.spec.params["groups"] = ints({group});
  m.spec.params["padding"] = ints({p[0], p[1], p[2], p[3]});
  m.params.push_back({"weight", w.shape, w.f});
  const bool bias = node(n).input_size() > 2 && !node(n).input(2).empty();
  if (bias) {
    const Const& b = weight(n, 2, "B, the bias");
    if (b.shape != Shape{filters})
      fail(n, "initializer \"" + b.name + "\" (B) has shape " + shape_str(b.shape) + ", expected [" +
                  std::to_string(filters) + "]");
    m.params.push_back({"bias", b.shape, b.f});
  }
  m.spec.params["bias"] = text(bias ? "true" : "false");
  c.onnx = c.ls = {filters, oh, ow};
  return m;
}

Made Importer::pool(int n, Cursor& c) {
  const bool max = node(n).op_type() == "MaxPool";
  check_attrs(n, max ? std::set<std::string>{"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                                             "storage_order", "strides"}
                     : std::set<std::string>{"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads",
                                             "strides"});
  if (max) check_extra_outputs(n, 1);
  const auto k = attr_ints(n, "kernel_shape", {});
  if (k.size() != 2 || c.ls.size() != 3)
    fail(n, "a " + std::to_string(k.size()) + "-D pool over [N, " + shape_str(c.onnx) +
                "]; lockstep pools 2-D images [N, C, H, W] with kernel_shape [kh, kw]");
  if (attr_int(n, "ceil_mode", 0) != 0) fail(n, "ceil_mode = 1 is not supported (lockstep's pools round down)");
  if (attr_int(n, "count_include_pad", 0) != 0)
    fail(n, "count_include_pad = 1 is not supported (lockstep's average excludes the padding)");
  if (attr_ints(n, "dilations", {1, 1}) != std::vector<std::int64_t>{1, 1})
    fail(n, "dilations " + join(attr_ints(n, "dilations", {})) + " are not supported (lockstep's pools are dense)");
  const auto s = attr_ints(n, "strides", {1, 1});
  if (s.size() != 2 || s[0] < 1 || s[1] < 1) fail(n, "strides " + join(s) + ": expected two positive values");
  const auto p = window_pads(n, c, k, s, {1, 1});
  for (std::size_t i = 0; i < 4; ++i)
    if (2 * p[i] > k[i % 2])
      fail(n, "pads [" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ", " + std::to_string(p[2]) + ", " +
                  std::to_string(p[3]) + "] exceed half the kernel " + join(k) + " (lockstep's limit, and PyTorch's)");
  const std::int64_t oh = window_out(c.onnx[1], k[0], s[0], 1, p[0], p[2]);
  const std::int64_t ow = window_out(c.onnx[2], k[1], s[1], 1, p[1], p[3]);
  if (oh <= 0 || ow <= 0) fail(n, "the kernel " + join(k) + " does not fit the input " + shape_str(c.onnx));
  Made m;
  m.spec.type = max ? "max_pool2d" : "avg_pool2d";
  m.spec.params["kernel"] = ints(k);
  m.spec.params["stride"] = ints(s);
  m.spec.params["padding"] = ints({p[0], p[1], p[2], p[3]});
  c.onnx = c.ls = {c.onnx[0], oh, ow};
  return m;
}

Made Importer::batchnorm(int n, Cursor& c) {
  check_attrs(n, {"epsilon", "momentum", "spatial", "training_mode"});
  check_extra_outputs(n, 1);
  if (attr_int(n, "training_mode", 0) != 0) fail(n, "training_mode = 1 is not supported (inference form only)");
  if (attr_int(n, "spatial", 1) != 1) fail(n, "spatial = 0 is not supported (per-channel statistics only)");
  if (c.ls.size() != 1 && c.ls.size() != 3)
    fail(n, "input of shape [N, " + shape_str(c.onnx) + "]: lockstep normalizes [N, C] or [N, C, H, W]");
  const std::int64_t ch = c.ls[0];
  const char* roles[] = {"scale", "B", "input_mean", "input_var"};
  const Const* v[4];
  for (int i = 0; i < 4; ++i) {
    v[i] = &weight(n, i + 1, roles[i]);
    if (v[i]->shape != Shape{ch})
      fail(n, "initializer \"" + v[i]->name + "\" (" + roles[i] + ") has shape " + shape_str(v[i]->shape) +
                  ", expected [" + std::to_string(ch) + "] for " + std::to_string(ch) + " channels");
  }
  Made m;
  m.spec.type = "batchnorm";
  m.spec.params["eps"] = text(number(attr_float(n, "epsilon", 1e-5f)));
  m.spec.params["momentum"] = text(number(1.0 - static_cast<double>(attr_float(n, "momentum", 0.9f))));
  m.params = {{"weight", {ch}, v[0]->f}, {"bias", {ch}, v[1]->f}};
  m.buffers = {{"running_mean", {ch}, v[2]->f}, {"running_var", {ch}, v[3]->f}, {"num_batches_tracked", {1}, {0.0f}}};
  return m;
}

Made Importer::dropout(int n, Cursor& c) {
  check_attrs(n, {"ratio", "seed", "is_test"});
  check_extra_outputs(n, 1);
  double ratio = attr_float(n, "ratio", 0.5f);
  if (node(n).input_size() > 1 && !node(n).input(1).empty()) ratio = weight(n, 1, "ratio").f.at(0);
  if (node(n).input_size() > 2 && !node(n).input(2).empty()) {
    const auto it = consts_.find(node(n).input(2));
    if (it == consts_.end() || it->second.i.empty() || it->second.i[0] != 0)
      fail(n, "training_mode is not a constant false; lockstep imports the inference form");
  }
  if (!(ratio >= 0.0 && ratio < 1.0)) fail(n, "ratio " + number(ratio) + ": expected a number in [0, 1)");
  Made m;
  m.spec.type = "dropout";
  m.spec.params["rate"] = text(number(ratio));
  return m;
}

// lockstep's softmax runs over all of a sample's values: ONNX's must too, which depends on the opset.
Made Importer::softmax(int n, Cursor& c) {
  check_attrs(n, {"axis"});
  const auto rank = static_cast<std::int64_t>(c.onnx.size()) + 1;
  std::int64_t axis = attr_int(n, "axis", opset_ >= 13 ? -1 : 1);
  if (axis < 0) axis += rank;
  bool ok = axis >= 1 && axis < rank;
  for (std::int64_t a = 1; ok && a < rank; ++a) {
    const bool other = opset_ >= 13 ? a != axis : a < axis;  // opset < 13 flattens from axis on
    ok = !other || c.onnx[static_cast<std::size_t>(a - 1)] == 1;
  }
  if (!ok)
    fail(n, "softmax over axis " + std::to_string(attr_int(n, "axis", opset_ >= 13 ? -1 : 1)) + " of [N, " +
                shape_str(c.onnx) + "] (opset " + std::to_string(opset_) +
                ") is not supported; lockstep's softmax runs over all of a sample's values (axis 1 of [N, features])");
  Made m;
  m.spec.type = "softmax";
  return m;
}

// Flatten (axis 1) or Reshape to [N, -1]: a flatten layer, or none when export wrote it as part of
// the layer before or after ("dense3/flatten" before the Gemm "dense3"). Returns whether to keep m.
bool Importer::flatten(int n, Cursor& c, Made& m) {
  const auto& nd = node(n);
  const std::int64_t numel = shape_numel(c.onnx);
  if (nd.op_type() == "Flatten") {
    check_attrs(n, {"axis"});
    std::int64_t axis = attr_int(n, "axis", 1);
    if (axis < 0) axis += static_cast<std::int64_t>(c.onnx.size()) + 1;
    if (axis != 1) fail(n, "axis " + std::to_string(attr_int(n, "axis", 1)) + " is not supported (only axis 1: [N, ...] to [N, features])");
  } else {
    check_attrs(n, {"allowzero"});
    if (nd.input_size() < 2 || !is_const(nd.input(1)) || consts_.at(nd.input(1)).dtype != onnx::TensorProto::INT64)
      fail(n, "its shape is not a constant int64 initializer; lockstep reads Reshape to [N, -1] only");
    const auto& s = consts_.at(nd.input(1)).i;
    const bool zero = attr_int(n, "allowzero", 0) == 0;
    const bool ok = s.size() == 2 && ((s[0] == 0 && zero) || s[0] == -1) &&
                    (s[1] == -1 ? s[0] != -1 : s[1] == numel);
    if (!ok) fail(n, "shape " + join(s) + " is not supported; lockstep reads Reshape to [N, -1] ([0, -1] or [-1, features]) only");
  }
  c.onnx = {numel};
  const std::string& name = nd.name();
  const auto next = users(nd.output(0));
  const bool before = next.size() == 1 && name == node(next[0]).name() + "/flatten" && node(next[0]).op_type() == "Gemm";
  const bool after = !c.last_node.empty() && name == c.last_node + "/flatten" && c.ls.size() == 1;
  if (before || after) return false;
  m.spec.type = "flatten";
  c.ls = {numel};
  return true;
}

NetworkFile Importer::run() {
  LOCKSTEP_CHECK(g_.output_size() == 1, DataError, path_, ": the graph has ", g_.output_size(),
                 " outputs; lockstep reads models with one output");
  // Every node makes a named first output, which the chain follows (a damaged file may lack one).
  for (int n = 0; n < g_.node_size(); ++n)
    if (node(n).output_size() < 1 || node(n).output(0).empty()) fail(n, "has no output");
  Cursor c{data_input_, input_, input_, ""};
  net_.layers = chain(c, g_.output(0).name(), -1, "");
  for (int n = 0; n < g_.node_size(); ++n)
    if (!done_[static_cast<std::size_t>(n)]) fail(n, "is not on the path from the input to the output");
  LOCKSTEP_CHECK(!net_.layers.empty(), DataError, path_, ": the graph computes nothing lockstep can hold (no layers)");
  net_.path = path_;
  net_.input = input_;
  std::ostringstream d;
  d << path_ << " (ONNX opset " << opset_;
  if (!m_.producer_name().empty()) d << ", written by " << m_.producer_name() << " " << m_.producer_version();
  d << ")";
  net_.description = d.str();
  return net_;
}

onnx::ModelProto parse_model(const std::string& path) {
  const std::string bytes = read_bytes(path);
  onnx::ModelProto m;
  LOCKSTEP_CHECK(m.ParseFromString(bytes), DataError, path, ": not an ONNX model (", bytes.size(),
                 " bytes that do not parse as an ONNX ModelProto; truncated, or another format?)");
  LOCKSTEP_CHECK(m.has_graph() && m.graph().node_size() > 0, DataError, path,
                 ": not an ONNX model (no graph with nodes; truncated, or another format?)");
  return m;
}

// ---- export ----

// Integers of a spec's key (a scalar or a list); `dflt` when absent.
std::vector<std::int64_t> spec_ints(const Spec& s, const std::string& key, std::vector<std::int64_t> dflt) {
  const auto it = s.params.find(key);
  if (it == s.params.end()) return dflt;
  std::vector<std::int64_t> v;
  for (const auto& t : it->second.values) v.push_back(parse_param<std::int64_t>(it->second, t));
  return v;
}
std::vector<std::int64_t> pair_of(std::vector<std::int64_t> v) { return v.size() == 1 ? std::vector<std::int64_t>{v[0], v[0]} : v; }
double spec_number(const Spec& s, const std::string& key, double dflt) {
  const auto it = s.params.find(key);
  return it == s.params.end() ? dflt : parse_param<double>(it->second, it->second.values.at(0));
}

class Exporter {
 public:
  Exporter(const NetworkFile& net, onnx::GraphProto& g) : net_(net), g_(g) {}
  // Emits `layers` (named prefix + type + index) reading value x of per-sample shape `shape`;
  // returns the value they produce and updates `shape`.
  std::string layers(const std::vector<Spec>& specs, std::string x, Shape& shape, const std::string& prefix);

 private:
  std::string layer(const Spec& s, const std::string& name, const std::string& x, Shape& shape);
  std::string window(const Spec& s, const std::string& name, const std::string& x, Shape& shape);
  std::string batchnorm(const Spec& s, const std::string& name, const std::string& x);
  onnx::NodeProto* node(const std::string& op, const std::string& name, std::vector<std::string> in);
  std::string initializer(const std::string& name, const Shape& shape, const std::vector<float>& v);
  const NamedArray* array(const std::string& name) const {
    for (const auto* list : {&net_.params, &net_.buffers})
      for (const auto& a : *list)
        if (a.name == name) return &a;
    return nullptr;
  }
  const NamedArray& need(const std::string& name, const Spec& s) const {
    const NamedArray* a = array(name);
    LOCKSTEP_CHECK(a != nullptr, IoError, s.where, ": the network has no ", name, " to export");
    return *a;
  }

  const NetworkFile& net_;
  onnx::GraphProto& g_;
};

onnx::NodeProto* Exporter::node(const std::string& op, const std::string& name, std::vector<std::string> in) {
  auto* n = g_.add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (auto& v : in) n->add_input(std::move(v));
  n->add_output(name);
  return n;
}

void attr(onnx::NodeProto* n, const std::string& name, const std::vector<std::int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (const auto x : v) a->add_ints(x);
}
void attr(onnx::NodeProto* n, const std::string& name, std::int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void attr_f(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

std::string Exporter::initializer(const std::string& name, const Shape& shape, const std::vector<float>& v) {
  auto* t = g_.add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (const auto d : shape) t->add_dims(d);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  return name;
}

std::string Exporter::layers(const std::vector<Spec>& specs, std::string x, Shape& shape, const std::string& prefix) {
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const Spec& s = specs[i];
    const std::string name = prefix + s.type + std::to_string(i);
    if (s.type == "residual") {
      Shape a = shape, b = shape;
      const auto it = s.children.find("layers"), sc = s.children.find("shortcut");
      LOCKSTEP_CHECK(it != s.children.end(), IoError, s.where, ": a residual block without layers");
      const std::string y = layers(it->second, x, a, name + ".");
      const std::string z = sc == s.children.end() ? x : layers(sc->second, x, b, name + ".shortcut.");
      node("Add", name, {y, z});
      x = name;
      shape = a;
      continue;
    }
    x = layer(s, name, x, shape);
  }
  return x;
}

std::string Exporter::layer(const Spec& s, const std::string& name, const std::string& x, Shape& shape) {
  const std::string& t = s.type;
  if (t == "relu" || t == "sigmoid" || t == "tanh") {
    node(t == "relu" ? "Relu" : t == "sigmoid" ? "Sigmoid" : "Tanh", name, {x});
  } else if (t == "dense") {
    std::string in = x;
    if (shape.size() != 1) attr(node("Flatten", name + "/flatten", {x}), "axis", std::int64_t{1}), in = name + "/flatten";
    const NamedArray& w = need(name + ".weight", s);
    std::vector<std::string> inputs{in, initializer(w.name, w.shape, w.values)};
    if (const NamedArray* b = array(name + ".bias")) inputs.push_back(initializer(b->name, b->shape, b->values));
    node("Gemm", name, inputs);
    shape = {w.shape.at(1)};
  } else if (t == "conv2d" || t == "max_pool2d" || t == "avg_pool2d") {
    return window(s, name, x, shape);
  } else if (t == "global_avg_pool") {
    node("GlobalAveragePool", name, {x});
    attr(node("Flatten", name + "/flatten", {name}), "axis", std::int64_t{1});
    shape = {shape.at(0)};
    return name + "/flatten";
  } else if (t == "batchnorm") {
    return batchnorm(s, name, x);
  } else if (t == "flatten") {
    attr(node("Flatten", name, {x}), "axis", std::int64_t{1});
    shape = {shape_numel(shape)};
  } else if (t == "dropout") {
    const double rate = spec_number(s, "rate", 0.0);
    node("Dropout", name, {x, initializer(name + ".ratio", {}, {static_cast<float>(rate)})});
  } else if (t == "softmax") {
    LOCKSTEP_CHECK(shape.size() == 1, IoError, s.where, ": softmax over a sample of shape ", shape_str(shape),
                   " cannot be exported (ONNX's Softmax runs over one axis); put a flatten before it");
    attr(node("Softmax", name, {x}), "axis", std::int64_t{-1});
  } else {
    throw IoError(s.where + ": layer type " + t + " has no ONNX export");
  }
  return name;
}

std::string Exporter::window(const Spec& s, const std::string& name, const std::string& x, Shape& shape) {
  const bool conv = s.type == "conv2d";
  const auto k = pair_of(spec_ints(s, "kernel", {1}));
  const auto st = pair_of(spec_ints(s, "stride", conv ? std::vector<std::int64_t>{1} : k));
  const auto d = pair_of(spec_ints(s, "dilation", {1}));
  const auto p = spec_ints(s, "padding", {});
  LOCKSTEP_CHECK(p.size() == 4 && shape.size() == 3, IoError, s.where, ": ", name,
                 " is not in export form (padding [top, left, bottom, right] over a {C, H, W} input; "
                 "train::describe_network makes it)");
  onnx::NodeProto* n = nullptr;
  std::int64_t channels = shape[0];
  if (conv) {
    const NamedArray& w = need(name + ".weight", s);
    std::vector<std::string> inputs{x, initializer(w.name, w.shape, w.values)};
    if (const NamedArray* b = array(name + ".bias")) inputs.push_back(initializer(b->name, b->shape, b->values));
    n = node("Conv", name, inputs);
    attr(n, "dilations", d);
    attr(n, "group", spec_ints(s, "groups", {1}).at(0));
    channels = w.shape.at(0);
  } else {
    n = node(s.type == "max_pool2d" ? "MaxPool" : "AveragePool", name, {x});
    if (s.type == "avg_pool2d") attr(n, "count_include_pad", std::int64_t{0});
  }
  attr(n, "kernel_shape", k);
  attr(n, "strides", st);
  attr(n, "pads", p);
  const std::int64_t dh = conv ? d[0] : 1, dw = conv ? d[1] : 1;
  shape = {channels, (shape[1] + p[0] + p[2] - dh * (k[0] - 1) - 1) / st[0] + 1,
           (shape[2] + p[1] + p[3] - dw * (k[1] - 1) - 1) / st[1] + 1};
  return name;
}

std::string Exporter::batchnorm(const Spec& s, const std::string& name, const std::string& x) {
  const NamedArray& mean = need(name + ".running_mean", s);
  const NamedArray& var = need(name + ".running_var", s);
  const NamedArray* w = array(name + ".weight");
  const NamedArray* b = array(name + ".bias");
  // affine: false has no weight or bias; ONNX's BatchNormalization needs both (ones and zeros).
  const std::vector<float> ones(mean.values.size(), 1.0f), zeros(mean.values.size(), 0.0f);
  const std::string wn = w ? initializer(w->name, w->shape, w->values) : initializer(name + ".weight", mean.shape, ones);
  const std::string bn = b ? initializer(b->name, b->shape, b->values) : initializer(name + ".bias", mean.shape, zeros);
  onnx::NodeProto* n = node("BatchNormalization", name,
                            {x, wn, bn, initializer(mean.name, mean.shape, mean.values),
                             initializer(var.name, var.shape, var.values)});
  attr_f(n, "epsilon", static_cast<float>(spec_number(s, "eps", 1e-5)));
  attr_f(n, "momentum", static_cast<float>(1.0 - spec_number(s, "momentum", 0.1)));
  return name;
}

void set_shape(onnx::ValueInfoProto* v, const std::string& name, const Shape& per_sample) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tt->mutable_shape();
  shape->add_dim()->set_dim_param("N");
  for (const auto d : per_sample) shape->add_dim()->set_dim_value(d);
}

onnx::ModelProto export_model(const NetworkFile& net) {
  onnx::ModelProto m;
  m.set_ir_version(7);  // ONNX 1.8+, the IR of opset 13
  m.set_producer_name("lockstep");
  m.set_producer_version(LOCKSTEP_VERSION);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(kExportOpset);
  onnx::GraphProto& g = *m.mutable_graph();
  g.set_name("lockstep");
  Shape shape = net.input;
  set_shape(g.add_input(), "input", shape);
  Exporter e(net, g);
  const std::string y = e.layers(net.layers, "input", shape, "");
  // The last value is called "output": rename what made it (an Identity when nothing did).
  if (y == "input" || g.node_size() == 0) {
    auto* n = g.add_node();
    n->set_op_type("Identity");
    n->set_name("output");
    n->add_input(y);
    n->add_output("output");
  } else {
    for (auto& n : *g.mutable_node())
      for (auto& o : *n.mutable_output())
        if (o == y) o = "output";
  }
  set_shape(g.add_output(), "output", shape);
  return m;
}

}  // namespace

NetworkFile read_onnx(const std::string& path, const std::vector<std::string>& extra_inputs) {
  const onnx::ModelProto m = parse_model(path);
  return Importer(m, path, extra_inputs).run();
}

void write_onnx(const std::string& path, const NetworkFile& net) {
  const onnx::ModelProto m = export_model(net);
  std::string bytes;
  LOCKSTEP_CHECK(m.SerializeToString(&bytes), IoError, path, ": could not serialize the ONNX model");
  write_file_atomically(path, bytes);
}

NamedArray read_onnx_tensor(const std::string& path) {
  const std::string bytes = read_bytes(path);
  onnx::TensorProto t;
  LOCKSTEP_CHECK(t.ParseFromString(bytes), DataError, path, ": not a serialized ONNX TensorProto");
  const Const c = to_const(t, path);
  LOCKSTEP_CHECK(c.dtype == onnx::TensorProto::FLOAT, DataError, path, ": data type ", dtype_name(c.dtype),
                 ", expected FLOAT");
  return {c.name, c.shape, c.f};
}

std::string check_onnx(const std::string& path) {
  try {
    onnx::checker::check_model(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string onnx_version() { return LOCKSTEP_ONNX_VERSION; }

#else  // built without ONNX (-DLOCKSTEP_ONNX=OFF)

NetworkFile read_onnx(const std::string& path, const std::vector<std::string>&) {
  throw DataError(path + ": this lockstep was built without ONNX (-DLOCKSTEP_ONNX=OFF; install libonnx-dev)");
}
void write_onnx(const std::string& path, const NetworkFile&) {
  throw IoError(path + ": this lockstep was built without ONNX (-DLOCKSTEP_ONNX=OFF; install libonnx-dev)");
}
std::string check_onnx(const std::string& path) { return "built without ONNX"; }
NamedArray read_onnx_tensor(const std::string& path) {
  throw DataError(path + ": this lockstep was built without ONNX (-DLOCKSTEP_ONNX=OFF)");
}
std::string onnx_version() { return ""; }

#endif

}  // namespace lockstep::io
