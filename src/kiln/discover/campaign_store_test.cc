#include "kiln/discover/campaign_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace kiln::discover {
namespace {

std::string temp_path(const char* name) {
  std::string p = ::testing::TempDir() + "/kiln_store_" + std::to_string(::getpid()) + "_" + name;
  std::remove(p.c_str());
  return p;
}

const char* kYaml = "parameters: [{name: x, low: 0, high: 1}]\nobjectives: [{name: y}]\n";

TEST(CampaignStore, RoundTripsProposalsAndObservations) {
  std::string path = temp_path("a.db");
  {
    auto s = CampaignStore::create(path, kYaml, "");
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    auto ids = s->add_proposals({"{\"x\":0.5}", "{\"x\":0.25}"}, "{\"log_lengthscale\":[0.1],\"log_signal\":0,\"log_noise\":-3}");
    ASSERT_TRUE(ids.is_ok());
    ASSERT_EQ(ids->size(), 2u);
    StoredObservation o;
    o.proposal_id = (*ids)[0];
    o.params_json = "{\"x\":0.5}";
    o.objectives_json = "[1.5]";
    ASSERT_TRUE(s->add_observations({o}, "abc", "r.csv").is_ok());
    // The same proposal cannot be observed twice: the whole transaction is refused.
    StoredObservation o2 = o;
    EXPECT_FALSE(s->add_observations({o2}, "def", "r2.csv").is_ok());
    EXPECT_FALSE(*s->has_result_file("def"));
  }
  auto s = CampaignStore::open(path);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_TRUE(*s->has_result_file("abc"));
  auto c = load_campaign(*s);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->observations().size(), 1u);
  ASSERT_EQ(c->pending().size(), 1u);
  EXPECT_EQ(c->pending()[0].params[0], 0.25);
  ASSERT_TRUE(c->gp_hyper().has_value());
  EXPECT_DOUBLE_EQ(c->gp_hyper()->log_noise, -3);
  EXPECT_EQ(c->gp_hyper()->fitted_on, 0);  // written before fitted_on existed: unknown
  GpHyper h = *c->gp_hyper();
  h.fitted_on = 512;
  auto back = gp_hyper_from_json(gp_hyper_to_json(h));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->fitted_on, 512);
  EXPECT_EQ(back->log_lengthscale, h.log_lengthscale);
  EXPECT_FALSE(CampaignStore::create(path, kYaml, "").is_ok());  // never overwrites
  std::remove(path.c_str());
}

TEST(CampaignStore, CorruptFilesAreReportedNotTrusted) {
  std::string path = temp_path("bad.db");
  {
    std::ofstream f(path);
    f << "this is not a database, just text that is long enough to look like a header............";
  }
  auto s = CampaignStore::open(path);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("not a usable Kiln campaign database"), std::string::npos) << s.status().message();
  EXPECT_FALSE(CampaignStore::open(temp_path("missing.db")).is_ok());
  // A valid store whose rows were tampered with.
  std::string p2 = temp_path("tampered.db");
  {
    auto st = CampaignStore::create(p2, kYaml, "");
    ASSERT_TRUE(st.is_ok());
    ASSERT_TRUE(st->add_proposals({"{\"x\":\"oops\"}"}, "").is_ok());
  }
  auto st = CampaignStore::open(p2);
  ASSERT_TRUE(st.is_ok());
  auto c = load_campaign(*st);
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("proposal 1"), std::string::npos) << c.status().message();
  std::remove(path.c_str());
  std::remove(p2.c_str());
}

TEST(CampaignStore, HashIsStable) {
  EXPECT_EQ(content_hash(""), "cbf29ce484222325");
  EXPECT_NE(content_hash("a"), content_hash("b"));
}

}  // namespace
}  // namespace kiln::discover
