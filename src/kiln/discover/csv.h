// kiln/discover/csv.h — a strict reader for the CSV files a lab hands to a campaign.
//
// Candidate pools, measurement results and benchmark datasets are CSV (RFC 4180: comma
// separated, optional double-quoted fields with "" for a quote, CRLF or LF line ends, a UTF-8
// byte-order mark allowed before the header). The first row is the header. Every error names
// the file, the 1-based row (the header is row 1) and, where it applies, the column, because the
// person reading the message has a spreadsheet open and needs to find the cell.
//
//   KILN_ASSIGN_OR_RETURN(kiln::discover::CsvTable t, kiln::discover::read_csv("results.csv"));
//   int col = t.column("toughness");                 // -1 when absent
//   KILN_ASSIGN_OR_RETURN(double v, t.number(0, col)); // "results.csv row 2, column 'toughness': ..."
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/status.h"

namespace kiln::discover {

struct CsvTable {
  std::string source;                          // file name (or "<memory>") used in messages
  std::vector<std::string> header;             // trimmed column names
  std::vector<std::vector<std::string>> rows;  // every row has header.size() fields
  std::vector<int> line;                       // 1-based row number in the file for each row

  int num_rows() const { return static_cast<int>(rows.size()); }
  // Index of the column named `name` (exact match after trimming), or -1.
  int column(std::string_view name) const;
  // "pool.csv row 7, column 'theta'" — the place every cell error points at.
  std::string where(int row, int col) const;
  // The cell parsed as a finite number; an error naming row and column otherwise.
  Result<double> number(int row, int col) const;
};

// Parses CSV text. No header or a duplicated / empty column name is an error; rows whose field
// count differs from the header's are errors; blank lines are skipped. Limits (columns, field
// length) keep hostile input from exhausting memory.
Result<CsvTable> parse_csv(std::string_view text, std::string source = "<memory>");
// Reads and parses a file.
Result<CsvTable> read_csv(const std::string& path);

// Parses a whole cell as a finite double ("1e-3", " 2.5 "); false for anything else,
// including "nan", "inf" and trailing garbage.
bool parse_number(std::string_view s, double* out);

// Quotes a field for writing when it contains a comma, quote or line break.
std::string csv_escape(std::string_view field);

}  // namespace kiln::discover
