// Where `lockstep predict` puts its rows without gathering them: each rank streams its rows to a
// part file of its own beside the output, and finish() combines the parts.
// - One file (OUT.csv): the ranks' byte offsets are an exclusive scan of the parts' sizes, every
//   rank writes its part into one temporary file through MPI-IO (Communicator::write_at_all), and
//   rank 0 renames it into place (io::AtomicFile), so the bytes are the same at any number of ranks.
// - A folder (OUT/, or an existing folder): Spark's layout, part-00000.csv ... one per rank, each
//   with the header, then an empty _SUCCESS written last; stale parts and _SUCCESS are removed first.
// - Features (--features-output F.h5): each rank's rows in a binary part; at the end rank 0 copies
//   them in rank order, a bounded number of rows at a time, into /origin and /features of an HDF5
//   file written through an AtomicFile.
// Parts are removed on success and on error. The output's folder must be one every rank sees
// (a shared file system), as for MPI-IO.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/io/atomic_file.hpp"

namespace lockstep::app {

// CSV field quoting (RFC 4180): as it is unless it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s);

class CsvOutput {
 public:
  // Checks the output and opens this rank's part. Collective; errors agreed.
  CsvOutput(comm::Communicator& comm, const std::string& output, const std::string& header);
  ~CsvOutput();
  CsvOutput(const CsvOutput&) = delete;
  CsvOutput& operator=(const CsvOutput&) = delete;

  bool to_folder() const { return folder_; }
  void append(const std::string& rows);  // this rank's next rows
  // Combines the parts. Collective; errors agreed. Returns what was written, for the log.
  std::string finish();

 private:
  comm::Communicator& comm_;
  std::string output_, part_, final_part_;
  bool folder_ = false;
  std::ofstream out_;
  std::int64_t bytes_ = 0;
  std::unique_ptr<io::AtomicFile> file_;  // rank 0, one-file mode
};

class FeatureOutput {
 public:
  // `dims`: values per row; `layer` is recorded as an attribute. Collective; errors agreed.
  FeatureOutput(comm::Communicator& comm, const std::string& path, std::int64_t dims, const std::string& layer);
  ~FeatureOutput();
  FeatureOutput(const FeatureOutput&) = delete;
  FeatureOutput& operator=(const FeatureOutput&) = delete;

  void append(const std::string& origin, const float* row);
  // Rank 0 merges every part into the HDF5 file. Collective; errors agreed.
  void finish();

 private:
  void merge(const std::vector<std::int64_t>& rows);

  comm::Communicator& comm_;
  std::string path_, layer_, part_;
  std::int64_t dims_ = 0, rows_ = 0;
  std::ofstream out_;
};

}  // namespace lockstep::app
