// kiln/orchestrate/formats.h — reading (and writing) the benchmark file formats of job-shop
// scheduling, with errors that say `file:line: what was wrong; what was expected`.
//
//   auto p = kiln::orchestrate::load_instance("ft10.txt", InstanceFormat::kJobShop);
//   if (!p.is_ok()) { std::cerr << p.status().message(); return 2; }   // "ft10.txt:4: ..."
//
// Formats (docs/orchestrate.md has examples):
//  - kJobShop  the standard text format (OR-Library, JSPLIB): a line `jobs machines`, then one line
//              per job with `machine duration` pairs in technological order; machines 0-based.
//              Lines starting with '#' and blank lines are ignored.
//  - kTaillard Taillard's files: an optional `Nb of jobs, ...` title, a line `jobs machines` (any
//              further numbers on it — seeds, bounds — are ignored), an optional `Times` label,
//              `jobs` lines of `machines` durations, an optional `Machines` label, then `jobs` lines
//              of `machines` machine numbers, 1-based.
//  - kFlexible Brandimarte's flexible job-shop format (.fjs): a line `jobs machines [avg options]`,
//              then one line per job: the number of operations, then for each operation the number
//              of options k followed by k pairs `machine duration`; machines 1-based.
#pragma once

#include <string>
#include <string_view>

#include "kiln/core/status.h"
#include "kiln/orchestrate/model.h"

namespace kiln::orchestrate {

enum class InstanceFormat { kJobShop, kTaillard, kFlexible };

// "jssp" (also "jobshop", "standard"), "taillard", "fjsp" (also "brandimarte", "fjs").
Result<InstanceFormat> parse_instance_format(std::string_view name);
const char* instance_format_name(InstanceFormat f);

// `source` names the input in error messages (usually the path).
Result<Problem> parse_instance(std::string_view text, InstanceFormat format, std::string_view source);
Result<Problem> load_instance(const std::string& path, InstanceFormat format);

// Writes a problem in the standard job-shop format (fails when an operation has several options)
// or in Brandimarte's format. Round-trips through parse_instance.
Result<std::string> format_jobshop(const Problem& p);
std::string format_flexible(const Problem& p);

}  // namespace kiln::orchestrate
