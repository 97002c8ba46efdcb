// The source registry's table and the dispatch every loader goes through. The table is a
// function-local static: registrars in other files run during static initialisation in an order
// the language leaves open, and the first one must find the map already built.
#include "lockstep/data/source.hpp"
#include "lockstep/core/fault.hpp"

#include <algorithm>

#include "lockstep/core/error.hpp"

namespace lockstep::data {
namespace {

std::map<std::string, Source>& rows() {
  static std::map<std::string, Source> table;
  return table;
}

std::string known_formats() {
  std::string s;
  for (const auto& n : source_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

void register_source(Source source) {
  // Two rows with one name is a programming error that would otherwise silently keep one.
  LOCKSTEP_CHECK(!rows().count(source.name), Error, "data source \"", source.name, "\" registered twice");
  const std::string name = source.name;
  rows().emplace(name, std::move(source));
}

const Source* find_source(const std::string& name) {
  const auto it = rows().find(name);
  return it == rows().end() ? nullptr : &it->second;
}

std::vector<std::string> source_names() {
  std::vector<std::string> names;
  for (const auto& [name, row] : rows()) names.push_back(name);
  return names;
}

namespace {

Table read_unagreed(comm::Communicator& comm, const SourceSpec& spec, const SourceRequest& request,
                    const std::string& what) {
  const Source* source = find_source(spec.format);
  // Every rank has the same config (its hash is compared at start-up), so a config mistake is
  // thrown by every rank alike; read_source agrees it.
  if (!source) {
    throw ConfigError((spec.format_where.empty() ? std::string("data.format") : spec.format_where) +
                      ": unknown format \"" + spec.format + "\" (known: " + known_formats() + ")");
  }
  if (source->reads_files && request.features.empty()) {
    const char* split = request.split == SplitKind::kTrain  ? "train"
                        : request.split == SplitKind::kTest ? "test"
                                                            : "input";
    throw ConfigError(std::string("data.") + split + ".features: missing (a file path; format " + spec.format +
                      " reads files)");
  }
  if (!source->reads_files && request.split == SplitKind::kFile) {
    throw ConfigError("data.format: \"" + spec.format + "\" has no files to read (evaluate and predict need one of: " +
                      [] {
                        std::string s;
                        for (const auto& n : source_names())
                          if (find_source(n)->reads_files) s += (s.empty() ? "" : ", ") + n;
                        return s;
                      }() +
                      ")");
  }
  if (!spec.label_columns.empty() && !source->label_columns) {
    throw ConfigError("data.label_columns: format " + spec.format +
                      " has no named columns to take labels from (csv and hdf5 do)");
  }
  SourceRequest req = request;
  req.label_columns = spec.label_columns;
  ParamReader params(spec.params, "data (format " + spec.format + ")");
  Table t = source->read(comm, req, params);
  finish_table(comm, t, what);
  if (request.split != SplitKind::kFile) select_classes(comm, t, spec.classes, what, spec.classes_where);
  if (request.split == SplitKind::kTrain)
    select_fraction(comm, t, spec.train_fraction, spec.fraction_seed, what, spec.train_fraction_where);
  return t;
}

}  // namespace

Table read_source(comm::Communicator& comm, const SourceSpec& spec, const SourceRequest& request,
                  const std::string& what) {
  try {
    fault::point("load", comm.rank());
    return read_unagreed(comm, spec, request, what);
  } catch (const ConfigError& e) {
    // A config mistake (unknown format or key, bad value) is found by every rank alike, before
    // any collective of the read, so every rank is here: agreeing makes it the one error that
    // main reports once, instead of one abort per rank.
    if (e.agreed()) throw;
    comm.agree(std::string(e.what()), comm::Communicator::ErrorKind::kConfig);
    throw;
  }
}

}  // namespace lockstep::data
