#include "kiln/orchestrate/formats.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>
#include <vector>

#include "kiln/core/file_util.h"

namespace kiln::orchestrate {
namespace {

// Generous limits that stop a hostile header ("1000000000 1000000000") from making us allocate
// before the file proves it has that much data.
constexpr int64_t kMaxJobs = 1'000'000;
constexpr int64_t kMaxMachines = 100'000;
constexpr int64_t kMaxOperations = 10'000'000;

struct Line {
  int number = 0;  // 1-based line number in the file
  std::vector<std::string_view> tokens;
};

// Splits into lines of whitespace-separated tokens; skips blank lines and, when `hash_comments`,
// lines whose first token starts with '#'.
std::vector<Line> split_lines(std::string_view text, bool hash_comments) {
  std::vector<Line> lines;
  int number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    Line l;
    l.number = number;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
      size_t j = i;
      while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
      if (j > i) l.tokens.push_back(line.substr(i, j - i));
      i = j;
    }
    if (l.tokens.empty()) continue;
    if (hash_comments && l.tokens[0][0] == '#') continue;
    lines.push_back(std::move(l));
  }
  return lines;
}

class Parser {
 public:
  Parser(std::string_view source) : source_(source) {}

  template <typename... Args>
  Status error(int line, Args&&... args) const {
    std::ostringstream os;
    os << source_ << ':' << line << ": ";
    (os << ... << std::forward<Args>(args));
    return Status::invalid(os.str());
  }

  // Parses an integer token. `what` names it in errors ("duration", "machine").
  Status integer(const Line& l, size_t i, const char* what, int64_t* out) const {
    std::string_view t = l.tokens[i];
    const char* b = t.data();
    const char* e = t.data() + t.size();
    if (*b == '+') ++b;
    auto [p, ec] = std::from_chars(b, e, *out);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && p == e && (*out > kMaxDuration || *out < -kMaxDuration)))
      return error(l.number, what, " '", t, "' (number ", i + 1, " on the line) is out of range");
    if (ec != std::errc() || p != e)
      return error(l.number, what, " '", t, "' (number ", i + 1, " on the line) is not an integer");
    return Status::ok();
  }

  Status bounded(const Line& l, size_t i, const char* what, int64_t lo, int64_t hi, int64_t* out) const {
    KILN_RETURN_IF_ERROR(integer(l, i, what, out));
    if (*out < lo || *out > hi) {
      if (*out < 0 && lo >= 0) return error(l.number, what, " ", *out, " is negative; expected ", lo, "..", hi);
      return error(l.number, what, " ", *out, " is out of range; expected ", lo, "..", hi);
    }
    return Status::ok();
  }

  // The `jobs machines` header: at least two integers; `extra_ok` allows more tokens (Taillard's
  // seeds and bounds, Brandimarte's average flexibility, which may be a decimal).
  Status header(const Line& l, bool extra_ok, int64_t* jobs, int64_t* machines) const {
    if (l.tokens.size() < 2 || (!extra_ok && l.tokens.size() != 2))
      return error(l.number, "expected the header 'jobs machines', found ", l.tokens.size(), " item(s)");
    KILN_RETURN_IF_ERROR(bounded(l, 0, "number of jobs", 1, kMaxJobs, jobs));
    KILN_RETURN_IF_ERROR(bounded(l, 1, "number of machines", 1, kMaxMachines, machines));
    for (size_t i = 2; i < l.tokens.size(); ++i) {
      double d = 0;
      std::string_view t = l.tokens[i];
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
      if (ec != std::errc() || p != t.data() + t.size())
        return error(l.number, "header item '", t, "' (number ", i + 1, " on the line) is not a number");
    }
    return Status::ok();
  }

  Status truncated(const std::vector<Line>& lines, const std::string& expected) const {
    int last = lines.empty() ? 1 : lines.back().number;
    return error(last, "file ends early: expected ", expected);
  }

 private:
  std::string_view source_;
};

void add_machines(Problem& p, int64_t m) {
  p.resources.reserve(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) p.add_resource("m" + std::to_string(i));
}

Result<Problem> parse_jobshop(std::string_view text, std::string_view source) {
  Parser ps(source);
  std::vector<Line> lines = split_lines(text, true);
  if (lines.empty()) return ps.error(1, "the file is empty; expected the header 'jobs machines'");
  int64_t n = 0, m = 0;
  KILN_RETURN_IF_ERROR(ps.header(lines[0], false, &n, &m));
  if (n * m > kMaxOperations) return ps.error(lines[0].number, n, " x ", m, " operations is more than ", kMaxOperations);
  Problem p;
  add_machines(p, m);
  for (int64_t j = 0; j < n; ++j) {
    if (static_cast<size_t>(j + 1) >= lines.size())
      return ps.truncated(lines, std::to_string(n) + " job lines after the header, found " + std::to_string(j));
    const Line& l = lines[j + 1];
    if (l.tokens.size() != static_cast<size_t>(2 * m))
      return ps.error(l.number, "job ", j, " has ", l.tokens.size(), " numbers; expected ", 2 * m, " (", m,
                      " pairs 'machine duration')");
    Job& job = p.add_job("j" + std::to_string(j));
    job.operations.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      int64_t mach = 0, dur = 0;
      KILN_RETURN_IF_ERROR(ps.integer(l, 2 * i, "machine", &mach));
      if (mach < 0 || mach >= m)
        return ps.error(l.number, "job ", j, " operation ", i, ": machine ", mach, " is out of range; expected 0..",
                        m - 1, " (machines are 0-based)");
      KILN_RETURN_IF_ERROR(ps.bounded(l, 2 * i + 1, "duration", 0, kMaxDuration, &dur));
      job.operations[i].options.push_back({static_cast<int>(mach), dur});
    }
  }
  if (lines.size() > static_cast<size_t>(n + 1))
    return ps.error(lines[n + 1].number, "unexpected data after the ", n, " job lines");
  return p;
}

bool is_label(const Line& l, std::initializer_list<std::string_view> words) {
  std::string first(l.tokens[0]);
  std::transform(first.begin(), first.end(), first.begin(), [](unsigned char c) { return std::tolower(c); });
  while (!first.empty() && (first.back() == ':' || first.back() == ',')) first.pop_back();
  for (std::string_view w : words)
    if (first == w) return true;
  return false;
}

Result<Problem> parse_taillard(std::string_view text, std::string_view source) {
  Parser ps(source);
  std::vector<Line> lines = split_lines(text, true);
  size_t k = 0;
  if (k < lines.size() && is_label(lines[k], {"nb"})) ++k;  // "Nb of jobs, Nb of Machines, ..."
  if (k >= lines.size()) return ps.truncated(lines, "the header 'jobs machines'");
  int64_t n = 0, m = 0;
  KILN_RETURN_IF_ERROR(ps.header(lines[k], true, &n, &m));
  if (n * m > kMaxOperations) return ps.error(lines[k].number, n, " x ", m, " operations is more than ", kMaxOperations);
  ++k;
  // Two lines per job must follow: say so before allocating for a header that lies.
  if (lines.size() - k < static_cast<size_t>(2 * n))
    return ps.truncated(lines, std::to_string(n) + " lines of durations and " + std::to_string(n) +
                                   " lines of machine numbers after the header");
  Problem p;
  add_machines(p, m);
  for (int64_t j = 0; j < n; ++j) {
    Job& job = p.add_job("j" + std::to_string(j));
    job.operations.resize(static_cast<size_t>(m));
  }
  for (int section = 0; section < 2; ++section) {
    const char* label = section == 0 ? "times" : "machines";
    if (k < lines.size() && is_label(lines[k], {label})) ++k;
    for (int64_t j = 0; j < n; ++j, ++k) {
      if (k >= lines.size())
        return ps.truncated(lines, std::to_string(n) + " lines of " + (section == 0 ? "durations" : "machine numbers") +
                                       ", found " + std::to_string(j));
      const Line& l = lines[k];
      if (l.tokens.size() != static_cast<size_t>(m))
        return ps.error(l.number, section == 0 ? "durations" : "machines", " of job ", j, ": found ", l.tokens.size(),
                        " numbers; expected ", m);
      for (int64_t i = 0; i < m; ++i) {
        int64_t v = 0;
        if (section == 0) {
          KILN_RETURN_IF_ERROR(ps.bounded(l, i, "duration", 0, kMaxDuration, &v));
          p.jobs[j].operations[i].options.push_back({0, v});
        } else {
          KILN_RETURN_IF_ERROR(ps.integer(l, i, "machine", &v));
          if (v < 1 || v > m)
            return ps.error(l.number, "job ", j, " operation ", i, ": machine ", v, " is out of range; expected 1..", m,
                            " (machines are 1-based in Taillard files)");
          p.jobs[j].operations[i].options[0].resource = static_cast<int>(v - 1);
        }
      }
    }
  }
  if (k < lines.size()) return ps.error(lines[k].number, "unexpected data after the machine lines");
  return p;
}

Result<Problem> parse_flexible(std::string_view text, std::string_view source) {
  Parser ps(source);
  std::vector<Line> lines = split_lines(text, true);
  if (lines.empty()) return ps.error(1, "the file is empty; expected the header 'jobs machines [flexibility]'");
  int64_t n = 0, m = 0;
  KILN_RETURN_IF_ERROR(ps.header(lines[0], true, &n, &m));
  Problem p;
  add_machines(p, m);
  int64_t total_ops = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (static_cast<size_t>(j + 1) >= lines.size())
      return ps.truncated(lines, std::to_string(n) + " job lines after the header, found " + std::to_string(j));
    const Line& l = lines[j + 1];
    size_t t = 0;
    int64_t nops = 0;
    KILN_RETURN_IF_ERROR(ps.integer(l, t++, "number of operations", &nops));
    if (nops == 0) return ps.error(l.number, "job ", j, " has zero operations; every job needs at least one");
    if (nops < 0 || nops > kMaxOperations)
      return ps.error(l.number, "job ", j, ": number of operations ", nops, " is out of range; expected 1..",
                      kMaxOperations);
    total_ops += nops;
    if (total_ops > kMaxOperations) return ps.error(l.number, "more than ", kMaxOperations, " operations in total");
    Job& job = p.add_job("j" + std::to_string(j));
    for (int64_t i = 0; i < nops; ++i) {
      if (t >= l.tokens.size())
        return ps.error(l.number, "job ", j, " ends after ", i, " of its ", nops,
                        " operations; expected the number of options of operation ", i);
      int64_t k = 0;
      KILN_RETURN_IF_ERROR(ps.integer(l, t++, "number of options", &k));
      if (k == 0) return ps.error(l.number, "job ", j, " operation ", i, " has no eligible machine");
      if (k < 0 || k > m)
        return ps.error(l.number, "job ", j, " operation ", i, ": number of options ", k, " is out of range; expected 1..",
                        m);
      Operation op;
      for (int64_t o = 0; o < k; ++o) {
        if (t + 1 >= l.tokens.size())
          return ps.error(l.number, "job ", j, " operation ", i, " ends after ", o, " of its ", k,
                          " options; expected pairs 'machine duration'");
        int64_t mach = 0, dur = 0;
        KILN_RETURN_IF_ERROR(ps.integer(l, t, "machine", &mach));
        if (mach < 1 || mach > m)
          return ps.error(l.number, "job ", j, " operation ", i, ": machine ", mach, " is out of range; expected 1..", m,
                          " (machines are 1-based in this format)");
        KILN_RETURN_IF_ERROR(ps.bounded(l, t + 1, "duration", 0, kMaxDuration, &dur));
        t += 2;
        for (const Option& prev : op.options)
          if (prev.resource == mach - 1)
            return ps.error(l.number, "job ", j, " operation ", i, ": machine ", mach, " is listed twice");
        op.options.push_back({static_cast<int>(mach - 1), dur});
      }
      job.operations.push_back(std::move(op));
    }
    if (t != l.tokens.size())
      return ps.error(l.number, "job ", j, ": ", l.tokens.size() - t, " unexpected number(s) after its ", nops,
                      " operations");
  }
  if (lines.size() > static_cast<size_t>(n + 1))
    return ps.error(lines[n + 1].number, "unexpected data after the ", n, " job lines");
  return p;
}

}  // namespace

Result<InstanceFormat> parse_instance_format(std::string_view name) {
  if (name == "jssp" || name == "jobshop" || name == "standard") return InstanceFormat::kJobShop;
  if (name == "taillard") return InstanceFormat::kTaillard;
  if (name == "fjsp" || name == "brandimarte" || name == "fjs") return InstanceFormat::kFlexible;
  return Status::invalid("unknown format '", name, "'; expected jssp, taillard or fjsp");
}

const char* instance_format_name(InstanceFormat f) {
  switch (f) {
    case InstanceFormat::kJobShop: return "jssp";
    case InstanceFormat::kTaillard: return "taillard";
    case InstanceFormat::kFlexible: return "fjsp";
  }
  return "?";
}

Result<Problem> parse_instance(std::string_view text, InstanceFormat format, std::string_view source) {
  Result<Problem> p = format == InstanceFormat::kJobShop    ? parse_jobshop(text, source)
                      : format == InstanceFormat::kTaillard ? parse_taillard(text, source)
                                                            : parse_flexible(text, source);
  if (!p.is_ok()) return p;
  // The parsers check everything validate() does, line by line; this is the belt to their braces.
  Status s = p->validate();
  if (!s.is_ok()) return s.with_context(std::string(source));
  return p;
}

Result<Problem> load_instance(const std::string& path, InstanceFormat format) {
  KILN_ASSIGN_OR_RETURN(std::string text, read_file(path, size_t{1} << 30));
  return parse_instance(text, format, path);
}

Result<std::string> format_jobshop(const Problem& p) {
  std::ostringstream os;
  os << p.jobs.size() << ' ' << p.resources.size() << '\n';
  for (size_t j = 0; j < p.jobs.size(); ++j) {
    const Job& job = p.jobs[j];
    if (job.operations.size() != p.resources.size())
      return Status::invalid("job ", j, " has ", job.operations.size(), " operations; the job-shop format needs one per machine (",
                             p.resources.size(), ")");
    for (size_t i = 0; i < job.operations.size(); ++i) {
      const Operation& op = job.operations[i];
      if (op.options.size() != 1)
        return Status::invalid("job ", j, " operation ", i, " has ", op.options.size(),
                               " options; the job-shop format needs exactly one");
      os << (i ? " " : "") << op.options[0].resource << ' ' << op.options[0].duration;
    }
    os << '\n';
  }
  return os.str();
}

std::string format_flexible(const Problem& p) {
  std::ostringstream os;
  int ops = p.num_operations(), opts = 0;
  for (const Job& j : p.jobs)
    for (const Operation& o : j.operations) opts += static_cast<int>(o.options.size());
  os << p.jobs.size() << ' ' << p.resources.size() << ' ' << (ops ? static_cast<double>(opts) / ops : 0.0) << '\n';
  for (const Job& j : p.jobs) {
    os << j.operations.size();
    for (const Operation& o : j.operations) {
      os << "  " << o.options.size();
      for (const Option& x : o.options) os << ' ' << x.resource + 1 << ' ' << x.duration;
    }
    os << '\n';
  }
  return os.str();
}

}  // namespace kiln::orchestrate
