// Text files as collections: Spark's textFile and saveAsTextFile over the ranks.
//
// text_file(comm, path) reads a file, or a folder's files one after another, as the collection of
// its lines. The bytes are cut into one equal range per rank and a rank owns the lines that start
// in its range (Hadoop's rule: the line that straddles a cut belongs to the rank where it starts),
// so each rank reads only its own bytes, and the collection's global order is the files' order and
// then the lines' order, at any rank count. Reading is lazy, in blocks of 1 MiB, each time an
// action pulls on the collection, as Spark recomputes an RDD that is not cached (cache() keeps
// the lines); only the lines in flight are held, so a word count's memory is its table of words.
//
// save_as_text(lines, dir) writes one part file per rank (part-00000, part-00001, ...: rank order,
// so text_file(dir) reads the collection back in its global order) and then an empty _SUCCESS.
#pragma once

#include <string>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/data/partitioned.hpp"

namespace lockstep::data {

// The lines of `path` without their '\n' (or "\r\n"); empty lines are elements too, and a last
// line without '\n' is one. `path` is a regular file or a folder: its regular files (not its
// sub-folders), sorted by name, skipping names that begin with '.' or '_' (_SUCCESS, .crc files),
// as Spark reads a folder it wrote. Compressed files are not decompressed. Collective. A path that
// does not exist or cannot be read is a DataError on every rank naming it; a file that shrinks
// while it is read is a DataError on the rank that reads it.
Partitioned<std::string> text_file(comm::Communicator& comm, const std::string& path);

// Writes the collection's elements as lines (an element must not contain '\n') into folder `dir`,
// created if absent: part-NNNNN for rank NNNNN, then _SUCCESS. Each rank streams its partition into
// a temporary file in `dir`; only when every rank has written and fsynced its own are they renamed
// to their part names, so a failure while writing (a full disk, an element holding '\n') leaves no
// part file under its final name, and every rank throws the same IoError naming the part. _SUCCESS
// comes last: without it, a folder's output is incomplete.
// A `dir` that already holds part files or _SUCCESS is an IoError unless `overwrite`, which first
// removes them (all of them: part files of an earlier run at a larger rank count too).
void save_as_text(const Partitioned<std::string>& lines, const std::string& dir, bool overwrite = false);

// The same for any element type, formatted by to_line(const T&) -> std::string.
template <typename T, typename F>
void save_as_text(const Partitioned<T>& c, const std::string& dir, F to_line, bool overwrite = false) {
  save_as_text(c.map([to_line](const T& x) { return std::string(to_line(x)); }), dir, overwrite);
}

}  // namespace lockstep::data
