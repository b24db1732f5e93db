#include "kiln/discover/csv.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <set>

#include "kiln/core/file_util.h"

namespace kiln::discover {
namespace {

constexpr size_t kMaxColumns = 4096;
constexpr size_t kMaxField = 1 << 20;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

int CsvTable::column(std::string_view name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

std::string CsvTable::where(int row, int col) const {
  std::string w = source;
  if (row >= 0 && row < num_rows()) w += " row " + std::to_string(line[row]);
  if (col >= 0 && col < static_cast<int>(header.size())) w += ", column '" + header[col] + "'";
  return w;
}

Result<double> CsvTable::number(int row, int col) const {
  const std::string& cell = rows[row][col];
  double v = 0;
  if (trim(cell).empty()) return Status::invalid(where(row, col), ": value is missing");
  if (!parse_number(cell, &v))
    return Status::invalid(where(row, col), ": '", cell.substr(0, 64), "' is not a finite number");
  return v;
}

bool parse_number(std::string_view s, double* out) {
  s = trim(s);
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

std::string csv_escape(std::string_view f) {
  if (f.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(f);
  std::string o = "\"";
  for (char c : f) {
    if (c == '"') o += '"';
    o += c;
  }
  return o + "\"";
}

Result<CsvTable> parse_csv(std::string_view text, std::string source) {
  CsvTable t;
  t.source = std::move(source);
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
      static_cast<unsigned char>(text[1]) == 0xBB && static_cast<unsigned char>(text[2]) == 0xBF)
    text.remove_prefix(3);
  size_t i = 0;
  int line = 1;
  bool have_header = false;
  while (i < text.size()) {
    std::vector<std::string> fields;
    std::string field;
    int start_line = line;
    bool quoted_any = false;
    // One record: fields until an unquoted line break or the end of the text.
    while (true) {
      if (i < text.size() && text[i] == '"') {
        quoted_any = true;
        ++i;
        bool closed = false;
        while (i < text.size()) {
          char c = text[i++];
          if (c == '"') {
            if (i < text.size() && text[i] == '"') {
              field += '"';
              ++i;
            } else {
              closed = true;
              break;
            }
          } else {
            if (c == '\n') ++line;
            field += c;
          }
          if (field.size() > kMaxField) return Status::invalid(t.source, " row ", start_line, ": a field is longer than 1 MiB");
        }
        if (!closed) return Status::invalid(t.source, " row ", start_line, ": a quoted field is not closed");
        // Only spaces may follow a closing quote before the delimiter.
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
        if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
          return Status::invalid(t.source, " row ", start_line, ": text after a closing quote in field ", fields.size() + 1);
      } else {
        while (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          if (text[i] == '"') return Status::invalid(t.source, " row ", start_line, ": a quote inside an unquoted field ", fields.size() + 1);
          field += text[i++];
          if (field.size() > kMaxField) return Status::invalid(t.source, " row ", start_line, ": a field is longer than 1 MiB");
        }
      }
      fields.push_back(std::move(field));
      field.clear();
      if (fields.size() > kMaxColumns) return Status::invalid(t.source, " row ", start_line, ": more than ", kMaxColumns, " columns");
      if (i < text.size() && text[i] == ',') {
        ++i;
        continue;
      }
      break;
    }
    if (i < text.size() && text[i] == '\r') ++i;
    if (i < text.size() && text[i] == '\n') ++i;
    ++line;
    bool blank = !quoted_any && fields.size() == 1 && trim(fields[0]).empty();
    if (blank) continue;
    if (!have_header) {
      std::set<std::string> seen;
      for (size_t c = 0; c < fields.size(); ++c) {
        std::string name(trim(fields[c]));
        if (name.empty()) return Status::invalid(t.source, " row ", start_line, ": column ", c + 1, " of the header has no name");
        if (!seen.insert(name).second) return Status::invalid(t.source, " row ", start_line, ": column '", name, "' appears twice in the header");
        t.header.push_back(std::move(name));
      }
      have_header = true;
      continue;
    }
    if (fields.size() != t.header.size())
      return Status::invalid(t.source, " row ", start_line, ": ", fields.size(), " fields, but the header has ", t.header.size(), " columns");
    for (std::string& f : fields) f = std::string(trim(f));
    t.rows.push_back(std::move(fields));
    t.line.push_back(start_line);
  }
  if (!have_header) return Status::invalid(t.source, ": no header row (the file is empty)");
  return t;
}

Result<CsvTable> read_csv(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string text, read_file(path, size_t{1} << 30));
  return parse_csv(text, path);
}

}  // namespace kiln::discover
