// The stage registry's table, and the three things done through it: fitting a stage from its
// config, writing a stage into a model file with its type and format version, and reading it back
// with both checked. The rows themselves live beside their estimators (src/ml/*_stages.cpp,
// src/pipeline/).
#include "lockstep/ml/registry.hpp"

#include <cstdio>
#include <cstdlib>

#include "detail/hdf5.hpp"
#include "lockstep/core/error.hpp"

namespace lockstep::ml {
namespace {

// A function-local static: registrars in other files run in an unspecified order, and each must
// find the table already constructed.
std::map<std::string, StageKind>& table() {
  static std::map<std::string, StageKind> rows;
  return rows;
}

std::string known_list() {
  std::string s;
  for (const auto& name : stage_names()) s += (s.empty() ? "" : ", ") + name;
  return s.empty() ? "none: the library was linked without its stage files" : s;
}

}  // namespace

std::string task_name(StageTask task) {
  switch (task) {
    case StageTask::kTransformer:
      return "transformer";
    case StageTask::kClassification:
      return "classification";
    case StageTask::kRegression:
      return "regression";
    case StageTask::kClustering:
      return "clustering";
  }
  return "?";
}

Predictions Stage::predict(const Frame&) const {
  throw Error(type() + " does not predict (it is a " + task_name(task()) + ")");
}

StageRegistrar::StageRegistrar(StageKind kind) {
  if (kind.name.empty() || !kind.fit || !kind.load || table().count(kind.name)) {
    // Before main nothing can catch an exception; say which row is wrong and stop.
    std::fprintf(stderr, "lockstep: stage registry: row \"%s\" is %s\n", kind.name.c_str(),
                 table().count(kind.name) ? "registered twice" : "missing its name, fit or load");
    std::abort();
  }
  const std::string name = kind.name;
  table().emplace(name, std::move(kind));
}

const StageKind* find_stage_kind(const std::string& name) {
  const auto it = table().find(name);
  return it == table().end() ? nullptr : &it->second;
}

const StageKind& stage_kind(const std::string& name, const std::string& where) {
  const StageKind* k = find_stage_kind(name);
  if (!k) throw ConfigError(where + ": unknown stage type \"" + name + "\" (known: " + known_list() + ")");
  return *k;
}

std::vector<std::string> stage_names() {
  std::vector<std::string> names;
  for (const auto& [name, kind] : table()) names.push_back(name);
  return names;
}

std::shared_ptr<const Stage> fit_stage(const io::StageConfig& config, const Frame& train, const Frame* validation,
                                       const FitContext& context) {
  return stage_kind(config.type, config.where).fit(StageFitArgs{config, train, validation, context});
}

void save_stage(const Stage& stage, detail::H5File& file, const std::string& group) {
  const StageKind& kind = stage_kind(stage.type(), file.path() + ":" + group);
  file.create_group(group);
  file.set_attr(group, "type", stage.type());
  file.set_attr(group, "formatVersion", kind.format_version);
  stage.save(file, group);
}

std::shared_ptr<const Stage> load_stage(const detail::H5File& file, const std::string& group) {
  const std::string where = file.path() + ":" + group;
  if (!file.exists(group) || !file.has_attr(group, "type"))
    throw IoError(where + ": expected a stage group with a type attribute, found none (was the file cut short?)");
  const std::string type = file.attr_string(group, "type");
  const StageKind* kind = find_stage_kind(type);
  if (!kind) throw IoError(where + ": unknown stage type \"" + type + "\" (this build knows: " + known_list() + ")");
  // Files written before stages carried versions have version 1's layout.
  const std::int64_t version = file.has_attr(group, "formatVersion") ? file.attr_int(group, "formatVersion") : 1;
  if (version != kind->format_version)
    throw IoError(where + ": " + type + " saved in format version " + std::to_string(version) +
                  ", but this build reads version " + std::to_string(kind->format_version) +
                  " (fit the pipeline again with this build, or use the build that wrote the file)");
  // The loaders name the file, the group and the dataset; the stage's type is added here.
  try {
    return kind->load(file, group);
  } catch (const Error& e) {
    throw IoError(std::string(e.what()) + " (stage " + type + "; the model file is damaged or was not written by lockstep fit)");
  }
}

}  // namespace lockstep::ml
