// Every keyed wide operation of Partitioned<T> (free functions in lockstep::data, found by ADL):
// partition_by_key, combine/reduce/aggregate/group/count_by_key, count_by_value, distinct,
// union_with, sort_by, take_ordered, top, join, left_outer_join, broadcast_join, sample.
#pragma once

#include "lockstep/data/wide/by_key.hpp"
#include "lockstep/data/wide/join.hpp"
#include "lockstep/data/wide/sample.hpp"
#include "lockstep/data/wide/shuffle.hpp"
#include "lockstep/data/wide/sort.hpp"
