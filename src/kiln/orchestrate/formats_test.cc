#include "kiln/orchestrate/formats.h"

#include <gtest/gtest.h>

#include <random>

#include "kiln/orchestrate/testing/feasibility.h"

namespace kiln::orchestrate {
namespace {

std::string message(const Result<Problem>& r) { return r.is_ok() ? "ok" : r.status().message(); }

TEST(Formats, ReadsTheStandardJobShopFormat) {
  Result<Problem> p = parse_instance(testing::kFt06, InstanceFormat::kJobShop, "ft06.txt");
  ASSERT_TRUE(p.is_ok()) << message(p);
  ASSERT_EQ(p->jobs.size(), 6u);
  ASSERT_EQ(p->resources.size(), 6u);
  EXPECT_FALSE(p->is_flexible());
  EXPECT_EQ(p->jobs[0].operations[0].options[0].resource, 2);
  EXPECT_EQ(p->jobs[0].operations[0].options[0].duration, 1);
  EXPECT_EQ(p->jobs[5].operations[5].options[0].resource, 2);
  EXPECT_EQ(p->jobs[5].operations[5].options[0].duration, 1);
  // Comments, blank lines and CRLF line ends are fine.
  Result<Problem> q = parse_instance("# a comment\r\n\r\n2 2\r\n0 5 1 3\r\n\n1 2 0 0\r\n", InstanceFormat::kJobShop, "x");
  ASSERT_TRUE(q.is_ok()) << message(q);
  EXPECT_EQ(q->jobs[1].operations[1].options[0].duration, 0);
}

TEST(Formats, ReadsTaillardsFormatWithAndWithoutLabels) {
  const char* labelled =
      "Nb of jobs, Nb of Machines, Time seed, Machine seed, Upper bound, Lower bound\n"
      "  2 3 840612802 398197754 1231 1005\n"
      "Times\n 5 6 7\n 8 9 10\n"
      "Machines\n 1 2 3\n 3 1 2\n";
  Result<Problem> p = parse_instance(labelled, InstanceFormat::kTaillard, "ta.txt");
  ASSERT_TRUE(p.is_ok()) << message(p);
  ASSERT_EQ(p->jobs.size(), 2u);
  EXPECT_EQ(p->jobs[1].operations[0].options[0].resource, 2);  // 1-based in the file
  EXPECT_EQ(p->jobs[1].operations[0].options[0].duration, 8);
  Result<Problem> bare = parse_instance("2 3\n5 6 7\n8 9 10\n1 2 3\n3 1 2\n", InstanceFormat::kTaillard, "ta.txt");
  ASSERT_TRUE(bare.is_ok()) << message(bare);
  EXPECT_EQ(bare->jobs[0].operations[2].options[0].resource, 2);
}

TEST(Formats, ReadsBrandimartesFlexibleFormat) {
  const char* text =
      "2\t3\t1.5\n"
      " 2  2 1 5 3 4  1 2 6\n"
      " 1  3 1 1 2 2 3 3\n";
  Result<Problem> p = parse_instance(text, InstanceFormat::kFlexible, "mk.fjs");
  ASSERT_TRUE(p.is_ok()) << message(p);
  EXPECT_TRUE(p->is_flexible());
  ASSERT_EQ(p->jobs[0].operations.size(), 2u);
  ASSERT_EQ(p->jobs[0].operations[0].options.size(), 2u);
  EXPECT_EQ(p->jobs[0].operations[0].options[1].resource, 2);
  EXPECT_EQ(p->jobs[0].operations[0].options[1].duration, 4);
  EXPECT_EQ(p->jobs[1].operations[0].options.size(), 3u);
}

TEST(Formats, RoundTripsThroughTheWriters) {
  Problem p = testing::random_jobshop(4, 3, 7);
  Result<std::string> text = format_jobshop(p);
  ASSERT_TRUE(text.is_ok());
  Result<Problem> back = parse_instance(*text, InstanceFormat::kJobShop, "rt");
  ASSERT_TRUE(back.is_ok()) << message(back);
  for (size_t j = 0; j < p.jobs.size(); ++j)
    for (size_t i = 0; i < p.jobs[j].operations.size(); ++i) {
      EXPECT_EQ(back->jobs[j].operations[i].options[0].resource, p.jobs[j].operations[i].options[0].resource);
      EXPECT_EQ(back->jobs[j].operations[i].options[0].duration, p.jobs[j].operations[i].options[0].duration);
    }
  Problem f = testing::random_flexible(5, 4, 3, 9);
  Result<Problem> fb = parse_instance(format_flexible(f), InstanceFormat::kFlexible, "rt");
  ASSERT_TRUE(fb.is_ok()) << message(fb);
  ASSERT_EQ(fb->jobs.size(), f.jobs.size());
  for (size_t j = 0; j < f.jobs.size(); ++j) {
    ASSERT_EQ(fb->jobs[j].operations.size(), f.jobs[j].operations.size());
    for (size_t i = 0; i < f.jobs[j].operations.size(); ++i)
      for (size_t x = 0; x < f.jobs[j].operations[i].options.size(); ++x) {
        EXPECT_EQ(fb->jobs[j].operations[i].options[x].resource, f.jobs[j].operations[i].options[x].resource);
        EXPECT_EQ(fb->jobs[j].operations[i].options[x].duration, f.jobs[j].operations[i].options[x].duration);
      }
  }
  EXPECT_FALSE(format_jobshop(f).is_ok());
}

struct BadCase {
  InstanceFormat format;
  const char* text;
  const char* where;     // "file:line"
  const char* fragment;  // part of the explanation
};

TEST(Formats, BadInputNamesTheLineAndWhatWasExpected) {
  const BadCase cases[] = {
      {InstanceFormat::kJobShop, "", "bad.txt:1", "empty"},
      {InstanceFormat::kJobShop, "2 2\n0 5 1 3\n", "bad.txt:2", "file ends early"},          // truncated
      {InstanceFormat::kJobShop, "2 2\n0 5 1 3\n1 2 0\n", "bad.txt:3", "expected 4"},        // short line
      {InstanceFormat::kJobShop, "2 2\n0 5 1 3\n1 -2 0 1\n", "bad.txt:3", "negative"},       // negative
      {InstanceFormat::kJobShop, "2 2\n0 5 1 x3\n1 2 0 1\n", "bad.txt:2", "not an integer"}, // non-numeric
      {InstanceFormat::kJobShop, "2 2\n0 5 1 3.5\n1 2 0 1\n", "bad.txt:2", "not an integer"},
      {InstanceFormat::kJobShop, "2 2\n0 5 2 3\n1 2 0 1\n", "bad.txt:2", "out of range"},    // machine index
      {InstanceFormat::kJobShop, "2 2\n0 5 1 3\n1 2 0 1\n7\n", "bad.txt:4", "unexpected"},
      {InstanceFormat::kJobShop, "0 2\n", "bad.txt:1", "number of jobs"},
      {InstanceFormat::kJobShop, "2\n", "bad.txt:1", "header"},
      {InstanceFormat::kJobShop, "2 2\n0 99999999999999999999 1 3\n1 2 0 1\n", "bad.txt:2", "out of range"},
      {InstanceFormat::kTaillard, "2 2\n1 2\n3 4\n1 2\n", "bad.txt:4", "file ends early"},
      {InstanceFormat::kTaillard, "2 2\n1 2\n3 4\n1 2\n0 1\n", "bad.txt:5", "1-based"},
      {InstanceFormat::kTaillard, "2 2\n1 2\n3 -4\n1 2\n2 1\n", "bad.txt:3", "negative"},
      {InstanceFormat::kTaillard, "2 2\n1 2\n", "bad.txt:2", "file ends early"},             // no machines
      {InstanceFormat::kTaillard, "2 2\n1 2\n3 x\n1 2\n2 1\n", "bad.txt:3", "not an integer"},
      {InstanceFormat::kTaillard, "2 2\n1 2\n3 4\n1 2\n2 3\n", "bad.txt:5", "out of range"},
      {InstanceFormat::kTaillard, "2 0\n", "bad.txt:1", "out of range"},
      {InstanceFormat::kJobShop, "2 0\n\n\n", "bad.txt:1", "out of range"},               // zero operations
      {InstanceFormat::kJobShop, "2 -2\n", "bad.txt:1", "negative"},
      {InstanceFormat::kJobShop, "2 2\n0 5 1 3\n1 2 -1 1\n", "bad.txt:3", "out of range"},
      {InstanceFormat::kFlexible, "1 2\n1 1 1 -5\n", "bad.txt:2", "negative"},
      {InstanceFormat::kFlexible, "1 2\n1 1 1 5.5\n", "bad.txt:2", "not an integer"},
      {InstanceFormat::kFlexible, "1 2\n1 1 0 5\n", "bad.txt:2", "out of range"},
      {InstanceFormat::kFlexible, "1 2\n-1 1 1 5\n", "bad.txt:2", "out of range"},
      {InstanceFormat::kFlexible, "1 2\n1\n", "bad.txt:2", "ends after 0 of its 1 operations"},
      {InstanceFormat::kFlexible, "2 2\n1 1 1 5\n0\n", "bad.txt:3", "zero operations"},
      {InstanceFormat::kFlexible, "1 2\n2 1 1 5 0\n", "bad.txt:2", "no eligible machine"},
      {InstanceFormat::kFlexible, "1 2\n1 2 1 5 3 4\n", "bad.txt:2", "out of range"},
      {InstanceFormat::kFlexible, "1 2\n1 2 1 5 1 4\n", "bad.txt:2", "listed twice"},
      {InstanceFormat::kFlexible, "1 2\n2 1 1 5\n", "bad.txt:2", "ends after 1 of its 2 operations"},
      {InstanceFormat::kFlexible, "1 2\n1 1 1 5 9\n", "bad.txt:2", "unexpected"},
      {InstanceFormat::kFlexible, "1 2\n1 1 1 abc\n", "bad.txt:2", "not an integer"},
      {InstanceFormat::kFlexible, "1 2 x\n1 1 1 5\n", "bad.txt:1", "not a number"},
      {InstanceFormat::kFlexible, "3 2 1\n1 1 1 5\n", "bad.txt:2", "file ends early"},
  };
  for (const BadCase& c : cases) {
    Result<Problem> r = parse_instance(c.text, c.format, "bad.txt");
    ASSERT_FALSE(r.is_ok()) << c.text;
    const std::string& m = r.status().message();
    EXPECT_EQ(m.rfind(c.where, 0), 0u) << "message '" << m << "' should start with " << c.where;
    EXPECT_NE(m.find(c.fragment), std::string::npos) << "message '" << m << "' should mention " << c.fragment;
  }
}

TEST(Formats, LoadInstanceReportsMissingFiles) {
  Result<Problem> r = load_instance("/no/such/instance.txt", InstanceFormat::kJobShop);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("/no/such/instance.txt"), std::string::npos);
}

TEST(Formats, FormatNames) {
  EXPECT_EQ(*parse_instance_format("taillard"), InstanceFormat::kTaillard);
  EXPECT_EQ(*parse_instance_format("fjsp"), InstanceFormat::kFlexible);
  EXPECT_EQ(*parse_instance_format("jssp"), InstanceFormat::kJobShop);
  EXPECT_FALSE(parse_instance_format("xml").is_ok());
}

// A small in-process fuzz loop: mutated files never crash the parsers, and whatever they accept
// passes validation.
TEST(Formats, MutatedInputsNeverCrash) {
  std::mt19937 rng(5);
  const std::string seeds[] = {testing::kFt06, "2 3 1.5\n 2  2 1 5 3 4  1 2 6\n 1  3 1 1 2 2 3 3\n",
                               "2 3\n5 6 7\n8 9 10\n1 2 3\n3 1 2\n"};
  const InstanceFormat formats[] = {InstanceFormat::kJobShop, InstanceFormat::kFlexible, InstanceFormat::kTaillard};
  const char alphabet[] = "0123456789 \n-x#.9";
  for (int round = 0; round < 3000; ++round) {
    int which = round % 3;
    std::string s = seeds[which];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[at] = alphabet[rng() % (sizeof alphabet - 1)]; break;
        case 1: s.erase(at, 1 + rng() % 3); break;
        case 2: s.insert(at, 1, alphabet[rng() % (sizeof alphabet - 1)]); break;
      }
    }
    Result<Problem> r = parse_instance(s, formats[which], "fuzz");
    if (r.is_ok()) {
      EXPECT_TRUE(r->validate().is_ok());
    } else {
      EXPECT_EQ(r.status().message().rfind("fuzz", 0), 0u) << r.status().message();
    }
  }
}

}  // namespace
}  // namespace kiln::orchestrate
