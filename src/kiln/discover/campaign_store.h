// kiln/discover/campaign_store.h — a campaign's durable state in one SQLite file.
//
// Tables: `meta` (schema version, the campaign YAML text, the candidate pool CSV text, the
// GP warm start), `proposals` (id, batch, parameters as JSON, pending/observed), `observations`
// (parameters and objectives as JSON, the proposal they answer), `result_files` (a hash of every
// results file applied, so re-running the same `observe` after a crash is a no-op). Every
// command's writes are one transaction in SQLite's default rollback journal with
// synchronous=FULL: a process killed at any instant leaves either all of a command's rows or
// none, and the file opens and continues. Rows read back are untrusted: a damaged file is
// reported, never trusted.
//
//   KILN_ASSIGN_OR_RETURN(auto db, kiln::discover::CampaignStore::create("c.db", yaml, pool_csv));
//   KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ids, db.add_proposals({R"({"x": 0.5})"}, hyper_json));
//   KILN_ASSIGN_OR_RETURN(auto db2, kiln::discover::CampaignStore::open("c.db"));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/discover/campaign.h"

struct sqlite3;

namespace kiln::discover {

struct StoredProposal {
  int64_t id = 0;
  int64_t batch = 0;
  std::string params_json;
  bool pending = true;
};

struct StoredObservation {
  int64_t id = 0;
  int64_t proposal_id = 0;  // 0 = none
  std::string params_json;
  std::string objectives_json;  // JSON array of numbers, config order
};

class CampaignStore {
 public:
  static constexpr int kSchemaVersion = 1;

  // Creates a new database; refuses to overwrite an existing non-empty file.
  static Result<CampaignStore> create(const std::string& path, const std::string& config_yaml, const std::string& pool_csv);
  // Opens an existing database and checks it is a Kiln campaign of a known schema version.
  static Result<CampaignStore> open(const std::string& path);

  CampaignStore(CampaignStore&& o) noexcept;
  CampaignStore& operator=(CampaignStore&& o) noexcept;
  CampaignStore(const CampaignStore&) = delete;
  ~CampaignStore();

  const std::string& path() const { return path_; }
  Result<std::string> meta(const std::string& key) const;  // "" when absent
  Result<std::vector<StoredProposal>> proposals() const;
  Result<std::vector<StoredObservation>> observations() const;
  Result<bool> has_result_file(const std::string& hash) const;

  // One transaction: the proposals (a new batch number) and the GP warm start. Returns ids.
  Result<std::vector<int64_t>> add_proposals(const std::vector<std::string>& params_json, const std::string& gp_state);
  // One transaction: the observations, their proposals marked observed, the file hash.
  Status add_observations(const std::vector<StoredObservation>& obs, const std::string& file_hash, const std::string& file_name);

 private:
  CampaignStore() = default;
  Status exec(const char* sql) const;
  Status set_meta(const std::string& key, const std::string& value);
  Status corrupt(const std::string& what) const;

  sqlite3* db_ = nullptr;
  std::string path_;
};

// Rebuilds the Campaign a database holds: config, pool, observations, pending proposals and the
// GP warm start. Every stored row is validated against the campaign's space.
Result<Campaign> load_campaign(const CampaignStore& store);
// GP hyperparameters as JSON text (the `gp_state` meta value) and back.
std::string gp_hyper_to_json(const GpHyper& h);
std::optional<GpHyper> gp_hyper_from_json(const std::string& text);

// 64-bit FNV-1a of the bytes, as 16 hex digits: identifies a results file.
std::string content_hash(const std::string& bytes);

}  // namespace kiln::discover
