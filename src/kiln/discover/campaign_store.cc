#include "kiln/discover/campaign_store.h"

#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <ctime>

namespace kiln::discover {
namespace {

// RAII statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK && s_; }
  sqlite3_stmt* get() { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string column_text(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s, i)) : std::string();
}

const char* kSchema = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE proposals (
  id INTEGER PRIMARY KEY AUTOINCREMENT, batch INTEGER NOT NULL, params TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'observed')), created TEXT NOT NULL);
CREATE TABLE observations (
  id INTEGER PRIMARY KEY AUTOINCREMENT, proposal_id INTEGER REFERENCES proposals(id),
  params TEXT NOT NULL, objectives TEXT NOT NULL, source TEXT NOT NULL, created TEXT NOT NULL);
CREATE UNIQUE INDEX observations_by_proposal ON observations(proposal_id) WHERE proposal_id IS NOT NULL;
CREATE TABLE result_files (hash TEXT PRIMARY KEY, name TEXT NOT NULL, rows INTEGER NOT NULL, created TEXT NOT NULL);
)sql";

}  // namespace

std::string content_hash(const std::string& bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

CampaignStore::CampaignStore(CampaignStore&& o) noexcept : db_(o.db_), path_(std::move(o.path_)) { o.db_ = nullptr; }
CampaignStore& CampaignStore::operator=(CampaignStore&& o) noexcept {
  if (this != &o) {
    if (db_) sqlite3_close(db_);
    db_ = o.db_;
    path_ = std::move(o.path_);
    o.db_ = nullptr;
  }
  return *this;
}
CampaignStore::~CampaignStore() {
  if (db_) sqlite3_close(db_);
}

Status CampaignStore::exec(const char* sql) const {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string m = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Status::io(path_, ": ", m);
  }
  return Status::ok();
}

Status CampaignStore::corrupt(const std::string& what) const {
  return Status::invalid(path_, ": not a usable Kiln campaign database (", what, ")");
}

Status CampaignStore::set_meta(const std::string& key, const std::string& value) {
  Stmt s(db_, "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  if (!s.ok()) return Status::io(path_, ": ", sqlite3_errmsg(db_));
  sqlite3_bind_text(s.get(), 1, key.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.get(), 2, value.c_str(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return Status::io(path_, ": ", sqlite3_errmsg(db_));
  return Status::ok();
}

Result<CampaignStore> CampaignStore::create(const std::string& path, const std::string& config_yaml, const std::string& pool_csv) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && st.st_size > 0)
    return Status::invalid(path, ": already exists; choose another --db or delete it to start over");
  CampaignStore s;
  s.path_ = path;
  if (sqlite3_open_v2(path.c_str(), &s.db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK)
    return Status::io(path, ": cannot create the database: ", s.db_ ? sqlite3_errmsg(s.db_) : "out of memory");
  sqlite3_busy_timeout(s.db_, 10000);
  KILN_RETURN_IF_ERROR(s.exec("PRAGMA synchronous = FULL"));
  KILN_RETURN_IF_ERROR(s.exec("BEGIN IMMEDIATE"));
  Status st2 = s.exec(kSchema);
  if (st2.is_ok()) st2 = s.set_meta("schema_version", std::to_string(kSchemaVersion));
  if (st2.is_ok()) st2 = s.set_meta("config_yaml", config_yaml);
  if (st2.is_ok()) st2 = s.set_meta("pool_csv", pool_csv);
  if (st2.is_ok()) st2 = s.set_meta("created", now_iso());
  if (st2.is_ok()) st2 = s.exec("COMMIT");
  if (!st2.is_ok()) {
    (void)s.exec("ROLLBACK");
    return st2;
  }
  return s;
}

Result<CampaignStore> CampaignStore::open(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::not_found(path, ": no such database (run 'kiln discover init' first)");
  CampaignStore s;
  s.path_ = path;
  if (sqlite3_open_v2(path.c_str(), &s.db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
    return Status::io(path, ": cannot open the database: ", s.db_ ? sqlite3_errmsg(s.db_) : "out of memory");
  sqlite3_busy_timeout(s.db_, 10000);
  if (!s.exec("PRAGMA synchronous = FULL").is_ok()) return s.corrupt(sqlite3_errmsg(s.db_));
  {
    Stmt q(s.db_, "PRAGMA quick_check");
    if (!q.ok()) return s.corrupt(sqlite3_errmsg(s.db_));
    int rc = sqlite3_step(q.get());
    if (rc != SQLITE_ROW || column_text(q.get(), 0) != "ok")
      return s.corrupt(rc == SQLITE_ROW ? column_text(q.get(), 0) : sqlite3_errmsg(s.db_));
  }
  Result<std::string> v = s.meta("schema_version");
  if (!v.is_ok()) return s.corrupt("no campaign tables");
  if (*v != std::to_string(kSchemaVersion)) return s.corrupt("schema version '" + v->substr(0, 16) + "', expected " + std::to_string(kSchemaVersion));
  for (const char* t : {"proposals", "observations", "result_files"}) {
    std::string sql = std::string("SELECT count(*) FROM ") + t;
    Stmt q(s.db_, sql.c_str());
    if (!q.ok() || sqlite3_step(q.get()) != SQLITE_ROW) return s.corrupt(std::string("table ") + t + " is missing");
  }
  return s;
}

Result<std::string> CampaignStore::meta(const std::string& key) const {
  Stmt s(db_, "SELECT value FROM meta WHERE key = ?");
  if (!s.ok()) return Status::invalid(path_, ": ", sqlite3_errmsg(db_));
  sqlite3_bind_text(s.get(), 1, key.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_ROW) return column_text(s.get(), 0);
  if (rc == SQLITE_DONE) return std::string();
  return Status::invalid(path_, ": ", sqlite3_errmsg(db_));
}

Result<std::vector<StoredProposal>> CampaignStore::proposals() const {
  Stmt s(db_, "SELECT id, batch, params, status FROM proposals ORDER BY id");
  if (!s.ok()) return corrupt(sqlite3_errmsg(db_));
  std::vector<StoredProposal> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    StoredProposal p;
    p.id = sqlite3_column_int64(s.get(), 0);
    p.batch = sqlite3_column_int64(s.get(), 1);
    p.params_json = column_text(s.get(), 2);
    std::string status = column_text(s.get(), 3);
    if (status != "pending" && status != "observed") return corrupt("proposal " + std::to_string(p.id) + " has status '" + status.substr(0, 16) + "'");
    p.pending = status == "pending";
    out.push_back(std::move(p));
  }
  if (rc != SQLITE_DONE) return corrupt(sqlite3_errmsg(db_));
  return out;
}

Result<std::vector<StoredObservation>> CampaignStore::observations() const {
  Stmt s(db_, "SELECT id, proposal_id, params, objectives FROM observations ORDER BY id");
  if (!s.ok()) return corrupt(sqlite3_errmsg(db_));
  std::vector<StoredObservation> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    StoredObservation o;
    o.id = sqlite3_column_int64(s.get(), 0);
    o.proposal_id = sqlite3_column_type(s.get(), 1) == SQLITE_NULL ? 0 : sqlite3_column_int64(s.get(), 1);
    o.params_json = column_text(s.get(), 2);
    o.objectives_json = column_text(s.get(), 3);
    out.push_back(std::move(o));
  }
  if (rc != SQLITE_DONE) return corrupt(sqlite3_errmsg(db_));
  return out;
}

Result<bool> CampaignStore::has_result_file(const std::string& hash) const {
  Stmt s(db_, "SELECT 1 FROM result_files WHERE hash = ?");
  if (!s.ok()) return corrupt(sqlite3_errmsg(db_));
  sqlite3_bind_text(s.get(), 1, hash.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return corrupt(sqlite3_errmsg(db_));
}

Result<std::vector<int64_t>> CampaignStore::add_proposals(const std::vector<std::string>& params, const std::string& gp_state) {
  KILN_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
  std::vector<int64_t> ids;
  auto body = [&]() -> Status {
    int64_t batch = 1;
    {
      Stmt b(db_, "SELECT COALESCE(MAX(batch), 0) + 1 FROM proposals");
      if (!b.ok() || sqlite3_step(b.get()) != SQLITE_ROW) return Status::io(path_, ": ", sqlite3_errmsg(db_));
      batch = sqlite3_column_int64(b.get(), 0);
    }
    std::string now = now_iso();
    for (const std::string& p : params) {
      Stmt s(db_, "INSERT INTO proposals(batch, params, status, created) VALUES(?, ?, 'pending', ?)");
      if (!s.ok()) return Status::io(path_, ": ", sqlite3_errmsg(db_));
      sqlite3_bind_int64(s.get(), 1, batch);
      sqlite3_bind_text(s.get(), 2, p.c_str(), static_cast<int>(p.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(s.get(), 3, now.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return Status::io(path_, ": ", sqlite3_errmsg(db_));
      ids.push_back(sqlite3_last_insert_rowid(db_));
    }
    if (!gp_state.empty()) KILN_RETURN_IF_ERROR(set_meta("gp_state", gp_state));
    return exec("COMMIT");
  };
  Status st = body();
  if (!st.is_ok()) {
    (void)exec("ROLLBACK");
    return st;
  }
  return ids;
}

Status CampaignStore::add_observations(const std::vector<StoredObservation>& obs, const std::string& hash, const std::string& name) {
  KILN_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> Status {
    std::string now = now_iso();
    for (const StoredObservation& o : obs) {
      Stmt s(db_, "INSERT INTO observations(proposal_id, params, objectives, source, created) VALUES(?, ?, ?, ?, ?)");
      if (!s.ok()) return Status::io(path_, ": ", sqlite3_errmsg(db_));
      if (o.proposal_id) sqlite3_bind_int64(s.get(), 1, o.proposal_id);
      else sqlite3_bind_null(s.get(), 1);
      sqlite3_bind_text(s.get(), 2, o.params_json.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(s.get(), 3, o.objectives_json.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(s.get(), 4, name.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(s.get(), 5, now.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return Status::invalid(path_, ": ", sqlite3_errmsg(db_));
      if (o.proposal_id) {
        Stmt u(db_, "UPDATE proposals SET status = 'observed' WHERE id = ? AND status = 'pending'");
        if (!u.ok()) return Status::io(path_, ": ", sqlite3_errmsg(db_));
        sqlite3_bind_int64(u.get(), 1, o.proposal_id);
        if (sqlite3_step(u.get()) != SQLITE_DONE) return Status::io(path_, ": ", sqlite3_errmsg(db_));
        if (sqlite3_changes(db_) != 1) return Status::invalid("proposal ", o.proposal_id, " is not pending");
      }
    }
    Stmt f(db_, "INSERT INTO result_files(hash, name, rows, created) VALUES(?, ?, ?, ?)");
    if (!f.ok()) return Status::io(path_, ": ", sqlite3_errmsg(db_));
    sqlite3_bind_text(f.get(), 1, hash.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(f.get(), 2, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(f.get(), 3, static_cast<int64_t>(obs.size()));
    sqlite3_bind_text(f.get(), 4, now.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(f.get()) != SQLITE_DONE) return Status::invalid(path_, ": ", sqlite3_errmsg(db_));
    return exec("COMMIT");
  };
  Status st = body();
  if (!st.is_ok()) (void)exec("ROLLBACK");
  return st;
}

std::string gp_hyper_to_json(const GpHyper& h) {
  nlohmann::json j;
  j["log_lengthscale"] = std::vector<double>(h.log_lengthscale.data(), h.log_lengthscale.data() + h.log_lengthscale.size());
  j["log_signal"] = h.log_signal;
  j["log_noise"] = h.log_noise;
  j["fitted_on"] = h.fitted_on;
  return j.dump();
}

std::optional<GpHyper> gp_hyper_from_json(const std::string& text) {
  if (text.empty()) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto ls = j.find("log_lengthscale");
  auto sg = j.find("log_signal");
  auto nz = j.find("log_noise");
  if (ls == j.end() || !ls->is_array() || sg == j.end() || !sg->is_number() || nz == j.end() || !nz->is_number()) return std::nullopt;
  GpHyper h;
  h.log_lengthscale.resize(ls->size());
  for (size_t i = 0; i < ls->size(); ++i) {
    if (!(*ls)[i].is_number()) return std::nullopt;
    h.log_lengthscale[i] = (*ls)[i].get<double>();
  }
  h.log_signal = sg->get<double>();
  h.log_noise = nz->get<double>();
  // Absent in databases written before it existed: unknown, so the next proposal refits.
  auto fo = j.find("fitted_on");
  if (fo != j.end() && fo->is_number_integer() && fo->get<int64_t>() > 0 && fo->get<int64_t>() < (int64_t{1} << 30))
    h.fitted_on = fo->get<int>();
  if (!h.log_lengthscale.allFinite() || !std::isfinite(h.log_signal) || !std::isfinite(h.log_noise)) return std::nullopt;
  return h;
}

Result<Campaign> load_campaign(const CampaignStore& store) {
  KILN_ASSIGN_OR_RETURN(std::string yaml, store.meta("config_yaml"));
  KILN_ASSIGN_OR_RETURN(std::string pool_csv, store.meta("pool_csv"));
  Result<CampaignConfig> cfg = parse_campaign_yaml(yaml, store.path() + " (stored campaign)");
  if (!cfg.is_ok()) return cfg.status();
  Result<Campaign> c = Status::invalid("unset");
  if (!pool_csv.empty()) {
    KILN_ASSIGN_OR_RETURN(CsvTable t, parse_csv(pool_csv, store.path() + " (stored pool)"));
    c = Campaign::create(*cfg, &t);
  } else {
    c = Campaign::create(*cfg, nullptr);
  }
  if (!c.is_ok()) return c.status();
  KILN_ASSIGN_OR_RETURN(std::vector<StoredProposal> props, store.proposals());
  std::vector<Proposal> pending;
  for (const StoredProposal& p : props) {
    if (!p.pending) continue;
    Result<Point> pt = c->point_from_json(p.params_json);
    if (!pt.is_ok()) return pt.status().with_context(store.path() + ": proposal " + std::to_string(p.id));
    pending.push_back({p.id, *pt});
  }
  c->add_pending(pending);
  KILN_ASSIGN_OR_RETURN(std::vector<StoredObservation> obs, store.observations());
  std::vector<Observation> os;
  const size_t O = c->config().objectives.size();
  for (const StoredObservation& so : obs) {
    std::string where = store.path() + ": observation " + std::to_string(so.id);
    Result<Point> pt = c->point_from_json(so.params_json);
    if (!pt.is_ok()) return pt.status().with_context(where);
    nlohmann::json j = nlohmann::json::parse(so.objectives_json, nullptr, false);
    if (j.is_discarded() || !j.is_array() || j.size() != O) return Status::invalid(where, ": objectives are not a list of ", O, " numbers");
    Observation o;
    o.params = *pt;
    o.proposal_id = so.proposal_id;
    for (const auto& v : j) {
      if (!v.is_number() || !std::isfinite(v.get<double>())) return Status::invalid(where, ": an objective is not a finite number");
      o.objectives.push_back(v.get<double>());
    }
    os.push_back(std::move(o));
  }
  c->add_measurements(os);
  KILN_ASSIGN_OR_RETURN(std::string gp, store.meta("gp_state"));
  c->set_gp_hyper(gp_hyper_from_json(gp));
  return c;
}

}  // namespace kiln::discover
