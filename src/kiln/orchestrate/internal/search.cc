#include "kiln/orchestrate/internal/search.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <numeric>
#include <cstdlib>

namespace kiln::orchestrate::internal {

namespace {
constexpr int64_t kInf = std::numeric_limits<int64_t>::max() / 4;

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

// ---------------------------------------------------------------------------------------------
// State

State::State(const FlatProblem& p)
    : P(p),
      opt(p.n, 0),
      mach(p.n, 0),
      dur(p.n, 0),
      mp(p.n, -1),
      ms(p.n, -1),
      first(p.m, -1),
      last(p.m, -1),
      r(p.n, 0),
      q(p.n, 0),
      order(p.n, 0),
      pos(p.n, 0),
      indeg(p.n, 0),
      mark_(p.n, 0),
      dirty_(p.n, 0) {
  crit.reserve(p.n);
  for (int o = 0; o < p.n; ++o)
    if (p.js[o] < 0) job_last.push_back(o);
}

void State::load(const Solution& s) {
  opt = s.opt;
  mp = s.mp;
  ms = s.ms;
  first = s.first;
  last = s.last;
  for (int o = 0; o < P.n; ++o) {
    mach[o] = P.opt_machine[opt[o]];
    dur[o] = P.opt_dur[opt[o]];
  }
}

void State::store(Solution* s) const {
  s->opt = opt;
  s->mp = mp;
  s->ms = ms;
  s->first = first;
  s->last = last;
  s->start = r;
  s->makespan = cmax;
}

void State::load_sequences(const std::vector<std::vector<int>>& seq, const std::vector<int>& option) {
  opt = option;
  std::fill(first.begin(), first.end(), -1);
  std::fill(last.begin(), last.end(), -1);
  for (int o = 0; o < P.n; ++o) {
    mach[o] = P.opt_machine[opt[o]];
    dur[o] = P.opt_dur[opt[o]];
  }
  for (int k = 0; k < P.m; ++k) {
    int prev = -1;
    for (int o : seq[k]) {
      mp[o] = prev;
      if (prev >= 0) ms[prev] = o;
      else first[k] = o;
      prev = o;
    }
    if (prev >= 0) {
      ms[prev] = -1;
      last[k] = prev;
    }
  }
}

bool State::evaluate() {
  const int n = P.n;
  const int* jp = P.jp.data();
  const int* js = P.js.data();
  const int64_t* rel = P.release.data();
  int* ord = order.data();
  int* deg = indeg.data();
  int64_t* rr = r.data();
  const int64_t* d = dur.data();
  int tail = 0;
  for (int x = 0; x < n; ++x) {
    int dg = (jp[x] >= 0) + (mp[x] >= 0);
    deg[x] = dg;
    if (dg == 0) ord[tail++] = x;
  }
  int64_t cm = 0;
  for (int i = 0; i < tail; ++i) {
    const int x = ord[i];
    const int k = mach[x];
    int64_t s = rel[x];
    int a = jp[x];
    if (a >= 0) s = std::max(s, rr[a] + d[a]);
    a = mp[x];
    s = std::max(s, a >= 0 ? rr[a] + d[a] : P.machine_ready[k]);
    if (P.has_down[k]) s = earliest_fit(P.down[k], s, d[x]);
    rr[x] = s;
    cm = std::max(cm, s + d[x]);
    int y = js[x];
    if (y >= 0 && --deg[y] == 0) ord[tail++] = y;
    y = ms[x];
    if (y >= 0 && --deg[y] == 0) ord[tail++] = y;
  }
  if (tail < n) return false;
  for (int i = 0; i < n; ++i) pos[ord[i]] = i;
  int64_t* qq = q.data();
  for (int i = n - 1; i >= 0; --i) {
    const int x = ord[i];
    int64_t t = 0;
    int y = js[x];
    if (y >= 0) t = qq[y] + d[y];
    y = ms[x];
    if (y >= 0) t = std::max(t, qq[y] + d[y]);
    qq[x] = t;
  }
  cmax = cm;
  return true;
}

void State::find_critical_path(Rng& rng) {
  crit.clear();
  int end = -1, ties = 0;
  for (int x : job_last)
    if (r[x] + dur[x] == cmax && rng.below(++ties) == 0) end = x;
  for (int x = end; x >= 0;) {
    crit.push_back(x);
    int b = mp[x];
    if (b >= 0 && r[b] + dur[b] == r[x]) {
      x = b;
      continue;
    }
    int a = P.jp[x];
    if (a >= 0 && r[a] + dur[a] == r[x]) {
      x = a;
      continue;
    }
    break;
  }
  std::reverse(crit.begin(), crit.end());
}

void State::unlink(int op) {
  const int k = mach[op];
  const int a = mp[op], b = ms[op];
  if (a >= 0) ms[a] = b;
  else first[k] = b;
  if (b >= 0) mp[b] = a;
  else last[k] = a;
  mp[op] = ms[op] = -1;
}

void State::link_after(int op, int k, int after) {
  if (after < 0) {
    const int b = first[k];
    mp[op] = -1;
    ms[op] = b;
    if (b >= 0) mp[b] = op;
    else last[k] = op;
    first[k] = op;
  } else {
    const int b = ms[after];
    mp[op] = after;
    ms[op] = b;
    if (b >= 0) mp[b] = op;
    else last[k] = op;
    ms[after] = op;
  }
}

void State::relocate(int op, int option, int after) {
  assert(after != op);
  unlink(op);
  opt[op] = option;
  mach[op] = P.opt_machine[option];
  dur[op] = P.opt_dur[option];
  link_after(op, mach[op], after);
}

int64_t State::head_of(int x) const {
  const int k = mach[x];
  int64_t s = P.release[x];
  int a = P.jp[x];
  if (a >= 0) s = std::max(s, r[a] + dur[a]);
  a = mp[x];
  s = std::max(s, a >= 0 ? r[a] + dur[a] : P.machine_ready[k]);
  if (P.has_down[k]) s = earliest_fit(P.down[k], s, dur[x]);
  return s;
}

int64_t State::tail_of(int x) const {
  int64_t t = 0;
  int y = P.js[x];
  if (y >= 0) t = q[y] + dur[y];
  y = ms[x];
  if (y >= 0) t = std::max(t, q[y] + dur[y]);
  return t;
}

bool State::fix_order(int x, int y) {
  if (x < 0 || y < 0 || pos[x] < pos[y]) return true;
  const int lb = pos[y], ub = pos[x];
  // Forward from y among positions <= ub; reaching x means the arc closes a cycle.
  fwd_.clear();
  bwd_.clear();
  stack_.clear();
  stack_.push_back(y);
  mark_[y] = 1;
  bool cycle = false;
  while (!stack_.empty() && !cycle) {
    const int z = stack_.back();
    stack_.pop_back();
    fwd_.push_back(z);
    for (int s : {P.js[z], ms[z]}) {
      if (s < 0 || mark_[s] || pos[s] > ub) continue;
      if (s == x) {
        cycle = true;
        break;
      }
      mark_[s] = 1;
      stack_.push_back(s);
    }
  }
  if (cycle) {
    for (int z : fwd_) mark_[z] = 0;
    for (int z : stack_) mark_[z] = 0;
    return false;
  }
  // Backward from x among positions >= lb.
  stack_.push_back(x);
  mark_[x] = 1;
  while (!stack_.empty()) {
    const int z = stack_.back();
    stack_.pop_back();
    bwd_.push_back(z);
    for (int s : {P.jp[z], mp[z]}) {
      if (s < 0 || mark_[s] || pos[s] < lb) continue;
      mark_[s] = 1;
      stack_.push_back(s);
    }
  }
  // The affected positions, refilled with everything that must precede x, then what follows y.
  auto by_pos = [&](int a, int b) { return pos[a] < pos[b]; };
  std::sort(fwd_.begin(), fwd_.end(), by_pos);
  std::sort(bwd_.begin(), bwd_.end(), by_pos);
  slots_.clear();
  for (int z : bwd_) slots_.push_back(pos[z]);
  for (int z : fwd_) slots_.push_back(pos[z]);
  std::sort(slots_.begin(), slots_.end());
  size_t i = 0;
  for (int z : bwd_) {
    order[slots_[i]] = z;
    pos[z] = slots_[i++];
    mark_[z] = 0;
  }
  for (int z : fwd_) {
    order[slots_[i]] = z;
    pos[z] = slots_[i++];
    mark_[z] = 0;
  }
  return true;
}

void State::update_heads(int s0, int s1, int s2) {
  // In a valid topological order only operations at or after the first changed one can get a new
  // head: recompute those in one straight pass (cheaper than tracking which ones really change —
  // after a critical move most of them do).
  int start = P.n;
  for (int s : {s0, s1, s2})
    if (s >= 0) start = std::min(start, pos[s]);
  const int* jp = P.jp.data();
  const int64_t* rel = P.release.data();
  const int* ord = order.data();
  int64_t* rr = r.data();
  const int64_t* d = dur.data();
  for (int i = start; i < P.n; ++i) {
    const int x = ord[i];
    const int k = mach[x];
    int64_t s = rel[x];
    int a = jp[x];
    if (a >= 0) s = std::max(s, rr[a] + d[a]);
    a = mp[x];
    s = std::max(s, a >= 0 ? rr[a] + d[a] : P.machine_ready[k]);
    if (P.has_down[k]) s = earliest_fit(P.down[k], s, d[x]);
    rr[x] = s;
  }
}

void State::update_tails(int s0, int s1, int s2) {
  int start = -1;
  for (int s : {s0, s1, s2})
    if (s >= 0) start = std::max(start, pos[s]);
  const int* js = P.js.data();
  const int* ord = order.data();
  int64_t* qq = q.data();
  const int64_t* d = dur.data();
  for (int i = start; i >= 0; --i) {
    const int x = ord[i];
    int64_t t = 0;
    int y = js[x];
    if (y >= 0) t = qq[y] + d[y];
    y = ms[x];
    if (y >= 0) t = std::max(t, qq[y] + d[y]);
    qq[x] = t;
  }
}

bool State::apply(int op, int option, int after) {
  const int old_option = opt[op], a = mp[op], b = ms[op];
  relocate(op, option, after);
  const int c = mp[op], d = ms[op];
  // New arcs: a -> b (already in order: a, op, b were), c -> op and op -> d.
  if (!fix_order(c, op) || !fix_order(op, d)) {
    relocate(op, old_option, a);
    evaluate();
    return false;
  }
  update_heads(op, b, d);
  update_tails(op, a, c);
  int64_t cm = 0;
  for (int x : job_last) cm = std::max(cm, r[x] + dur[x]);
  cmax = cm;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Construction

Solution construct(const FlatProblem& p, Rule rule, Generation gen, Rng& rng) {
  const int n = p.n, m = p.m, nj = p.num_jobs;
  std::vector<int> next(nj), opt(n, -1);
  std::vector<int64_t> job_ready(nj, 0), mach_free(p.machine_ready);
  std::vector<int64_t> work_left(nj, 0);
  std::vector<int> ops_left(nj, 0);
  std::vector<int64_t> min_dur(n, 0);
  for (int o = 0; o < n; ++o) {
    int64_t b = kInf;
    for (int k = p.opt_begin[o]; k < p.opt_begin[o + 1]; ++k) b = std::min(b, p.opt_dur[k]);
    min_dur[o] = b;
    work_left[p.job[o]] += b;
    ops_left[p.job[o]] += 1;
  }
  for (int j = 0; j < nj; ++j) next[j] = p.job_first[j];
  std::vector<std::vector<int>> seq(m);
  auto start_on = [&](int o, int opt_index) {
    const int k = p.opt_machine[opt_index];
    int64_t s = std::max({p.release[o], job_ready[p.job[o]], mach_free[k]});
    if (p.has_down[k]) s = earliest_fit(p.down[k], s, p.opt_dur[opt_index]);
    return s;
  };
  struct Cand {
    int op, option;
    int64_t start;
  };
  std::vector<Cand> conflict;
  for (int step = 0; step < n; ++step) {
    // The machine where a ready operation completes (active) or starts (non-delay) first.
    int64_t best = kInf;
    int best_machine = -1;
    for (int j = 0; j < nj; ++j) {
      const int o = next[j];
      if (o < 0) continue;
      for (int x = p.opt_begin[o]; x < p.opt_begin[o + 1]; ++x) {
        int64_t s = start_on(o, x);
        int64_t v = gen == Generation::kActive ? s + p.opt_dur[x] : s;
        if (v < best) {
          best = v;
          best_machine = p.opt_machine[x];
        }
      }
    }
    conflict.clear();
    for (int j = 0; j < nj; ++j) {
      const int o = next[j];
      if (o < 0) continue;
      for (int x = p.opt_begin[o]; x < p.opt_begin[o + 1]; ++x) {
        if (p.opt_machine[x] != best_machine) continue;
        int64_t s = start_on(o, x);
        bool in = gen == Generation::kActive ? s < best || (s == best && p.opt_dur[x] == 0) : s == best;
        if (in) conflict.push_back({o, x, s});
      }
    }
    if (conflict.empty()) {  // only zero-length corner cases: take the operation that set `best`
      for (int j = 0; j < nj && conflict.empty(); ++j) {
        const int o = next[j];
        if (o < 0) continue;
        for (int x = p.opt_begin[o]; x < p.opt_begin[o + 1]; ++x)
          if (p.opt_machine[x] == best_machine) {
            conflict.push_back({o, x, start_on(o, x)});
            break;
          }
      }
    }
    // Priority: higher score wins; random tie-break.
    int pick = 0, ties = 0;
    double best_score = -1e300;
    for (int c = 0; c < static_cast<int>(conflict.size()); ++c) {
      const Cand& cd = conflict[c];
      const int j = p.job[cd.op];
      double score = 0;
      switch (rule) {
        case Rule::kMostWorkRemaining: score = static_cast<double>(work_left[j]); break;
        case Rule::kShortestProcessingTime: score = -static_cast<double>(p.opt_dur[cd.option]); break;
        case Rule::kMostOperationsRemaining: score = ops_left[j]; break;
        case Rule::kEarliestStart: score = -static_cast<double>(cd.start + p.opt_dur[cd.option]); break;
        case Rule::kRandom: score = 0; break;
      }
      if (score > best_score) {
        best_score = score;
        pick = c;
        ties = 1;
      } else if (score == best_score && rng.below(++ties) == 0) {
        pick = c;
      }
    }
    const Cand& c = conflict[pick];
    const int j = p.job[c.op];
    const int k = p.opt_machine[c.option];
    opt[c.op] = c.option;
    seq[k].push_back(c.op);
    const int64_t end = c.start + p.opt_dur[c.option];
    mach_free[k] = end;
    job_ready[j] = end;
    work_left[j] -= min_dur[c.op];
    ops_left[j] -= 1;
    next[j] = p.js[c.op];
  }
  State st(p);
  st.load_sequences(seq, opt);
  Solution s;
  st.evaluate();  // the construction order is topological: no cycle
  st.store(&s);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Repair and relinking

Solution repair(const FlatProblem& p, const std::vector<std::vector<int>>& seq, const std::vector<int>& opt,
                const std::vector<double>& key) {
  const int n = p.n, m = p.m;
  std::vector<char> placed(n, 0);
  std::vector<int> ptr(m, 0);
  std::vector<std::vector<int>> out(m);
  for (int k = 0; k < m; ++k) out[k].reserve(seq[k].size());
  std::vector<int> frontier(p.num_jobs);
  for (int j = 0; j < p.num_jobs; ++j) frontier[j] = p.job_first[j];
  std::vector<int> stack;
  auto ready = [&](int o) { return !placed[o] && (p.jp[o] < 0 || placed[p.jp[o]]); };
  auto head_of = [&](int k) {
    while (ptr[k] < static_cast<int>(seq[k].size()) && placed[seq[k][ptr[k]]]) ++ptr[k];
    return ptr[k] < static_cast<int>(seq[k].size()) ? seq[k][ptr[k]] : -1;
  };
  auto place = [&](int o) {
    const int k = p.opt_machine[opt[o]];
    out[k].push_back(o);
    placed[o] = 1;
    frontier[p.job[o]] = p.js[o];
    int h = head_of(k);
    if (h >= 0 && ready(h)) stack.push_back(k);
    const int s = p.js[o];
    if (s >= 0) {
      const int ks = p.opt_machine[opt[s]];
      if (head_of(ks) == s) stack.push_back(ks);
    }
  };
  for (int k = 0; k < m; ++k) {
    int h = head_of(k);
    if (h >= 0 && ready(h)) stack.push_back(k);
  }
  int done = 0;
  while (done < n) {
    int o = -1;
    while (!stack.empty() && o < 0) {
      int k = stack.back();
      stack.pop_back();
      int h = head_of(k);
      if (h >= 0 && ready(h)) o = h;
    }
    if (o < 0) {
      // Deadlock: the desired orders contain a cycle. Break it at the ready operation with the
      // smallest key.
      double bk = 0;
      for (int j = 0; j < p.num_jobs; ++j) {
        int f = frontier[j];
        if (f >= 0 && (o < 0 || key[f] < bk)) {
          o = f;
          bk = key[f];
        }
      }
    }
    place(o);
    ++done;
  }
  State st(p);
  st.load_sequences(out, opt);
  Solution s;
  s.opt = st.opt;
  s.mp = st.mp;
  s.ms = st.ms;
  s.first = st.first;
  s.last = st.last;
  s.start.assign(n, 0);
  s.makespan = -1;
  return s;
}

Solution relink(const FlatProblem& p, const Solution& a, const Solution& b, double lambda, Rng& rng) {
  const int n = p.n;
  std::vector<int> opt(n);
  std::vector<double> key(n);
  for (int o = 0; o < n; ++o) {
    opt[o] = (a.opt[o] == b.opt[o] || rng.uniform() >= lambda) ? a.opt[o] : b.opt[o];
    // A small jitter breaks ties between operations that start together in both parents.
    key[o] = (1 - lambda) * static_cast<double>(a.start[o]) + lambda * static_cast<double>(b.start[o]) +
             1e-3 * rng.uniform();
  }
  std::vector<std::vector<int>> seq(p.m);
  for (int o = 0; o < n; ++o) seq[p.opt_machine[opt[o]]].push_back(o);
  for (auto& s : seq) std::sort(s.begin(), s.end(), [&](int x, int y) { return key[x] < key[y]; });
  return repair(p, seq, opt, key);
}

// ---------------------------------------------------------------------------------------------
// Tabu search

namespace {

// Lossy direct-mapped table of forbidden attributes: a collision forgets the older entry, which
// only makes the search slightly less tabu; it never forbids something that was not stored.
class TabuTable {
 public:
  TabuTable() : key_(kSize, 0), until_(kSize, 0) {}
  static uint64_t arc(int before, int after) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(before)) << 32 | static_cast<uint32_t>(after)) + 1;
  }
  static uint64_t assignment(int op, int machine) {
    return (uint64_t{1} << 63) | (static_cast<uint64_t>(static_cast<uint32_t>(op)) << 32) | static_cast<uint32_t>(machine);
  }
  void add(uint64_t k, int64_t until) {
    size_t s = slot(k);
    key_[s] = k;
    until_[s] = until;
  }
  bool tabu(uint64_t k, int64_t now) const {
    size_t s = slot(k);
    return key_[s] == k && until_[s] > now;
  }

 private:
  static constexpr int kBits = 15;
  static constexpr size_t kSize = size_t{1} << kBits;
  static size_t slot(uint64_t k) { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> (64 - kBits)); }
  std::vector<uint64_t> key_;
  std::vector<int64_t> until_;
};

enum MoveType : uint8_t { kForward, kBackward, kReassign };

struct Move {
  MoveType type;
  int u, v;     // forward: u goes right after v; backward: v goes right before u; reassign: u, after v
  int option;   // reassign: the new option
  int64_t est;
};

class Tabu {
 public:
  Tabu(State& st, const TabuParams& prm, Rng& rng, Budget& budget)
      : st_(st), P_(st.P), prm_(prm), rng_(rng), budget_(budget), buf_(st.P.n + 1) {}

  Solution run(int64_t* global_best);
  void set_max_no_improve(int64_t n) { prm_.max_no_improve = n; }
  // Applies up to k moves drawn uniformly from the neighbourhood, ignoring estimates and tabu
  // status: a kick that leaves the current valley but stays close to it.
  void random_walk(int k);

 private:
  int64_t jp_end(int x) const {
    const int a = P_.jp[x];
    return a >= 0 ? std::max(P_.release[x], st_.r[a] + st_.dur[a]) : P_.release[x];
  }
  int64_t js_tail(int x) const {
    const int a = P_.js[x];
    return a >= 0 ? st_.q[a] + st_.dur[a] : 0;
  }
  int64_t machine_start(int k, int before) const {  // end of `before` on machine k, or its ready time
    return before >= 0 ? st_.r[before] + st_.dur[before] : P_.machine_ready[k];
  }
  int64_t est_forward(int u, int v, bool* tabu);
  int64_t est_backward(int u, int v, bool* tabu);
  void add_moves();
  void add_block_moves(int b0, int b1, bool first_block, bool last_block);
  void add_reassign_moves(int u);
  void consider(const Move& m, bool tabu);

  State& st_;
  const FlatProblem& P_;
  TabuParams prm_;
  Rng& rng_;
  Budget& budget_;
  TabuTable table_;
  std::vector<int64_t> buf_;
  int64_t iter_ = 0;
  int64_t best_ = 0;  // aspiration level: best makespan of this run
  // Selection state for the current neighbourhood.
  Move best_free_{}, best_tabu_{}, any_{};
  int free_ties_ = 0, tabu_ties_ = 0, count_ = 0;
};

int64_t Tabu::est_forward(int u, int v, bool* tabu) {
  // Order before: a, u, l1 .. lk(=v), b. After: a, l1 .. lk, u, b.
  const State& s = st_;
  const int k = s.mach[u];
  int64_t end = machine_start(k, s.mp[u]);
  int i = 0;
  bool t = false;
  for (int x = s.ms[u];; x = s.ms[x]) {
    int64_t h = std::max(jp_end(x), end);
    buf_[i++] = h;
    end = h + s.dur[x];
    if (table_.tabu(TabuTable::arc(x, u), iter_)) t = true;
    if (x == v) break;
  }
  const int64_t ru = std::max(jp_end(u), end);
  const int b = s.ms[v];
  const int64_t qu = std::max(js_tail(u), b >= 0 ? s.q[b] + s.dur[b] : 0);
  int64_t est = ru + s.dur[u] + qu;
  int64_t next = qu + s.dur[u];
  for (int x = v;; x = s.mp[x]) {
    --i;
    int64_t tq = std::max(js_tail(x), next);
    est = std::max(est, buf_[i] + s.dur[x] + tq);
    next = tq + s.dur[x];
    if (i == 0) break;
  }
  *tabu = t;
  return est;
}

int64_t Tabu::est_backward(int u, int v, bool* tabu) {
  // Order before: a, u(=l0) .. l(k-1), v, b. After: a, v, l0 .. l(k-1), b.
  const State& s = st_;
  const int k = s.mach[v];
  int64_t end = machine_start(k, s.mp[u]);
  const int64_t rv = std::max(jp_end(v), end);
  end = rv + s.dur[v];
  int i = 0;
  bool t = false;
  for (int x = u; x != v; x = s.ms[x]) {
    int64_t h = std::max(jp_end(x), end);
    buf_[i++] = h;
    end = h + s.dur[x];
    if (table_.tabu(TabuTable::arc(v, x), iter_)) t = true;
  }
  const int b = s.ms[v];
  int64_t next = b >= 0 ? s.q[b] + s.dur[b] : 0;
  int64_t est = 0;
  for (int x = s.mp[v];; x = s.mp[x]) {
    --i;
    int64_t tq = std::max(js_tail(x), next);
    est = std::max(est, buf_[i] + s.dur[x] + tq);
    next = tq + s.dur[x];
    if (x == u) break;
  }
  const int64_t qv = std::max(js_tail(v), next);
  est = std::max(est, rv + s.dur[v] + qv);
  *tabu = t;
  return est;
}

void Tabu::consider(const Move& m, bool tabu) {
  ++count_;
  if (rng_.below(count_) == 0) any_ = m;
  if (tabu && m.est >= best_) {
    if (tabu_ties_ == 0 || m.est < best_tabu_.est) {
      best_tabu_ = m;
      tabu_ties_ = 1;
    } else if (m.est == best_tabu_.est && rng_.below(++tabu_ties_) == 0) {
      best_tabu_ = m;
    }
    return;
  }
  // Not tabu, or tabu but better than the best of the run (aspiration).
  if (free_ties_ == 0 || m.est < best_free_.est) {
    best_free_ = m;
    free_ties_ = 1;
  } else if (m.est == best_free_.est && rng_.below(++free_ties_) == 0) {
    best_free_ = m;
  }
}

void Tabu::add_block_moves(int b0, int b1, bool first_block, bool last_block) {
  // crit[b0..b1] is a block of k >= 2 operations. Only moves that change the block's first or last
  // operation can shorten the path (moves inside the block keep its length); the first block gains
  // nothing from a new first operation, the last block nothing from a new last one.
  const std::vector<int>& c = st_.crit;
  const State& s = st_;
  const int k = b1 - b0 + 1;
  auto fwd = [&](int u, int v) {  // u right after v
    if (s.ms[u] != v) {
      const int j = P_.js[u];
      if (j >= 0 && s.q[v] + s.dur[v] < s.q[j] + s.dur[j]) return;  // could create a cycle
    }
    bool tabu = false;
    int64_t e = est_forward(u, v, &tabu);
    consider({kForward, u, v, -1, e}, tabu);
  };
  auto bwd = [&](int u, int v) {  // v right before u
    if (s.ms[u] != v) {
      const int j = P_.jp[v];
      if (j >= 0 && s.r[u] + s.dur[u] < s.r[j] + s.dur[j]) return;
    }
    bool tabu = false;
    int64_t e = est_backward(u, v, &tabu);
    consider({kBackward, u, v, -1, e}, tabu);
  };
  if (!last_block) {
    for (int i = 0; i <= k - 2; ++i) fwd(c[b0 + i], c[b1]);      // to the end
    for (int i = 0; i <= k - 3; ++i) bwd(c[b0 + i], c[b1]);      // last one inwards
  }
  if (!first_block) {
    for (int i = 2; i <= k - 1; ++i)                             // to the front
      if (!(i == k - 1 && !last_block)) bwd(c[b0], c[b0 + i]);
    for (int i = 1; i <= k - 1; ++i)                             // first one inwards
      if (!(i == k - 1 && !last_block)) fwd(c[b0], c[b0 + i]);
  }
}

void Tabu::add_reassign_moves(int u) {
  const State& s = st_;
  const int64_t head_in = jp_end(u);
  const int64_t tail_out = js_tail(u);
  const int64_t ru = s.r[u], qu = s.q[u], pu = s.dur[u];
  for (int x = P_.opt_begin[u]; x < P_.opt_begin[u + 1]; ++x) {
    const int k = P_.opt_machine[x];
    if (k == s.mach[u]) continue;
    const bool tabu = table_.tabu(TabuTable::assignment(u, k), iter_);
    const int64_t p = P_.opt_dur[x];
    // Positions that cannot close a cycle: after every operation that may precede u in the graph
    // (r(w) + p(w) <= r(u) and q(w) >= q(u) + p(u)), before every one that may follow it
    // (r(w) >= r(u) + p(u) and q(w) + p(w) <= q(u)).
    int lo_after = -1;  // insert after this one at the earliest
    bool seen_desc = false;
    int best_after = -2;
    int64_t best_est = kInf;
    // First pass: the last potential ancestor.
    for (int w = s.first[k]; w >= 0; w = s.ms[w])
      if (s.r[w] + s.dur[w] <= ru && s.q[w] >= qu + pu) lo_after = w;
    int prev = lo_after;
    int w = lo_after >= 0 ? s.ms[lo_after] : s.first[k];
    while (true) {
      // Candidate position: between prev and w.
      int64_t h = std::max(head_in, machine_start(k, prev));
      int64_t t = std::max(tail_out, w >= 0 ? s.q[w] + s.dur[w] : 0);
      int64_t e = h + p + t;
      if (e < best_est) {
        best_est = e;
        best_after = prev;
      }
      if (w < 0) break;
      seen_desc = s.r[w] >= ru + pu && s.q[w] + s.dur[w] <= qu;
      if (seen_desc) break;  // inserting after w could put a successor of u before it
      prev = w;
      w = s.ms[w];
    }
    if (best_after == -2) continue;
    consider({kReassign, u, best_after, x, best_est}, tabu);
  }
}

void Tabu::add_moves() {
  best_free_ = best_tabu_ = any_ = Move{};
  free_ties_ = tabu_ties_ = count_ = 0;
  const std::vector<int>& c = st_.crit;
  const int len = static_cast<int>(c.size());
  // Blocks: maximal runs of the path on one machine, consecutive in its order.
  int nblocks = 0;
  for (int i = 0; i < len;) {
    int j = i;
    while (j + 1 < len && st_.mp[c[j + 1]] == c[j]) ++j;
    ++nblocks;
    i = j + 1;
  }
  int bi = 0;
  for (int i = 0; i < len; ++bi) {
    int j = i;
    while (j + 1 < len && st_.mp[c[j + 1]] == c[j]) ++j;
    if (j > i) add_block_moves(i, j, bi == 0, bi == nblocks - 1);
    i = j + 1;
  }
  if (P_.flexible)
    for (int x : c)
      if (P_.num_options(x) > 1) add_reassign_moves(x);
}

void Tabu::random_walk(int k) {
  for (int i = 0; i < k; ++i) {
    st_.find_critical_path(rng_);
    add_moves();
    if (count_ == 0) return;
    const Move mv = any_;
    if (mv.type == kForward) st_.apply(mv.u, st_.opt[mv.u], mv.v);
    else if (mv.type == kBackward) st_.apply(mv.v, st_.opt[mv.v], st_.mp[mv.u]);
    else st_.apply(mv.u, mv.option, mv.v);
  }
}

Solution Tabu::run(int64_t* global_best) {
  Solution best;
  st_.store(&best);
  best_ = best.makespan;
  if (best.makespan < *global_best) {
    *global_best = best.makespan;
    if (budget_.on_best) budget_.on_best(best);
  }
  int64_t no_improve = 0;
  const int span = std::max(1, prm_.tenure_max - prm_.tenure_min + 1);
  while (best_ > budget_.target && !budget_.exhausted()) {
    st_.find_critical_path(rng_);
    add_moves();
    if (count_ == 0) break;  // the path is one block: no move of this neighbourhood can help
    const Move mv = free_ties_ > 0 ? best_free_ : tabu_ties_ > 0 ? best_tabu_ : any_;
    // Remember what the move destroys, for the tabu list, and how to undo it.
    const int old_machine = st_.mach[mv.u];
    const int64_t until = iter_ + prm_.tenure_min + rng_.below(span);
    switch (mv.type) {
      case kForward:
        for (int x = st_.ms[mv.u];; x = st_.ms[x]) {
          table_.add(TabuTable::arc(mv.u, x), until);
          if (x == mv.v) break;
        }
        break;
      case kBackward:
        for (int x = mv.u; x != mv.v; x = st_.ms[x]) table_.add(TabuTable::arc(x, mv.v), until);
        break;
      case kReassign:
        table_.add(TabuTable::assignment(mv.u, old_machine), until);
        break;
    }
    bool ok = mv.type == kForward    ? st_.apply(mv.u, st_.opt[mv.u], mv.v)
              : mv.type == kBackward ? st_.apply(mv.v, st_.opt[mv.v], st_.mp[mv.u])
                                     : st_.apply(mv.u, mv.option, mv.v);
    ++iter_;
    ++budget_.iterations;
    if (!ok) {
      // The estimate's safety conditions assume positive durations; with zero-length operations a
      // move can still close a cycle. apply() has undone it; make the move itself tabu.
      const int64_t forever = iter_ + (int64_t{1} << 40);
      if (mv.type == kReassign) {
        table_.add(TabuTable::assignment(mv.u, P_.opt_machine[mv.option]), forever);
      } else if (mv.type == kForward) {
        for (int x = st_.ms[mv.u];; x = st_.ms[x]) {
          table_.add(TabuTable::arc(x, mv.u), forever);
          if (x == mv.v) break;
        }
      } else {
        for (int x = mv.u; x != mv.v; x = st_.ms[x]) table_.add(TabuTable::arc(mv.v, x), forever);
      }
      if (++no_improve >= prm_.max_no_improve) break;
      continue;
    }
    if (st_.cmax < best_) {
      best_ = st_.cmax;
      st_.store(&best);
      no_improve = 0;
      if (best_ < *global_best) {
        *global_best = best_;
        if (budget_.on_best) budget_.on_best(best);
      }
    } else if (++no_improve >= prm_.max_no_improve) {
      break;
    }
  }
  return best;
}

}  // namespace

TabuParams default_tabu_params(const FlatProblem& p) {
  TabuParams t;
  const int jobs = std::max(1, p.num_jobs), machines = std::max(1, p.m);
  t.tenure_min = 10 + jobs / machines;
  t.tenure_max = t.tenure_min + std::max(2, t.tenure_min * 4 / 10);
  t.max_no_improve = 5000;
  return t;
}

Solution tabu_search(State& st, const TabuParams& params, Rng& rng, Budget& budget, int64_t* global_best) {
  Tabu ts(st, params, rng, budget);
  return ts.run(global_best);
}

// ---------------------------------------------------------------------------------------------
// The engine: elite pool + tabu search + relinking

EngineParams default_engine_params(const FlatProblem& p) {
  EngineParams e;
  e.tabu = default_tabu_params(p);
  e.pool_size = 8;
  e.init_no_improve = e.tabu.max_no_improve;
#ifdef KILN_ORCHESTRATE_TUNING
  // Developer hook for parameter studies (never defined in a shipped build).
  if (const char* v = getenv("KP_POOL")) e.pool_size = atoi(v);
  if (const char* v = getenv("KP_NOIMP")) e.tabu.max_no_improve = atoi(v);
  if (const char* v = getenv("KP_INIT")) e.init_no_improve = atoi(v);
  if (const char* v = getenv("KP_TMIN")) e.tabu.tenure_min = atoi(v);
  if (const char* v = getenv("KP_TMAX")) e.tabu.tenure_max = atoi(v);
  if (const char* v = getenv("KP_LMIN")) e.lambda_min = atof(v);
  if (const char* v = getenv("KP_LSPAN")) e.lambda_span = atof(v);
#endif
  return e;
}

namespace {

bool same_solution(const Solution& a, const Solution& b) {
  return a.makespan == b.makespan && a.opt == b.opt && a.ms == b.ms && a.first == b.first;
}

}  // namespace

Solution run_search(const FlatProblem& p, const EngineParams& params, uint64_t seed, Budget& budget,
                    const Solution* initial) {
  Rng rng(seed);
  State st(p);
  Tabu tabu(st, params.tabu, rng, budget);
  Solution best;
  int64_t global_best = kInf;
  auto improve = [&](const Solution& s, int64_t no_improve) {
    st.load(s);
    if (!st.evaluate()) return Solution{};
    tabu.set_max_no_improve(no_improve);
    Solution out = tabu.run(&global_best);
    if (!best.valid() || out.makespan < best.makespan) best = out;
    return out;
  };
  std::vector<Solution> pool;
  if (initial != nullptr) {
    Solution s = improve(*initial, params.init_no_improve);
    if (s.valid()) pool.push_back(std::move(s));
  }
  // The pool: constructive schedules under different rules, each improved by tabu search.
  static constexpr Rule kRules[] = {Rule::kMostWorkRemaining, Rule::kMostOperationsRemaining, Rule::kEarliestStart,
                                    Rule::kShortestProcessingTime, Rule::kRandom};
  int built = 0;
  while (static_cast<int>(pool.size()) < params.pool_size && !budget.exhausted() && global_best > budget.target) {
    Rule rule = kRules[built % 5];
    Generation gen = (built / 5) % 2 == 0 ? Generation::kActive : Generation::kNonDelay;
    ++built;
    Solution c = construct(p, rule, gen, rng);
    if (!best.valid()) {  // something to return even if the budget ends during the first search
      best = c;
      if (c.makespan < global_best) {
        global_best = c.makespan;
        if (budget.on_best) budget.on_best(c);
      }
    }
    Solution s = improve(c, params.init_no_improve);
    if (s.valid()) pool.push_back(std::move(s));
  }
  // Then: relink two pool members, improve the offspring, let it replace the worst member unless
  // it is a copy of one already there.
  while (!budget.exhausted() && global_best > budget.target) {
    Solution child;
    if (pool.size() >= 2) {
      int a = rng.below(static_cast<int>(pool.size()));
      int b = rng.below(static_cast<int>(pool.size()) - 1);
      if (b >= a) ++b;
      child = relink(p, pool[a], pool[b], params.lambda_min + params.lambda_span * rng.uniform(), rng);
    } else {
      // A pool of one: kick the best solution out of its valley with a few random moves.
      st.load(best);
      st.evaluate();
      tabu.random_walk(2 + rng.below(4));
      st.store(&child);
    }
    Solution s = improve(child, params.tabu.max_no_improve);
    if (!s.valid()) continue;
    if (pool.empty()) {
      pool.push_back(std::move(s));
      continue;
    }
    int worst = 0;
    bool dup = false;
    for (size_t i = 0; i < pool.size(); ++i) {
      if (pool[i].makespan > pool[worst].makespan) worst = static_cast<int>(i);
      if (same_solution(pool[i], s)) dup = true;
    }
    if (!dup && s.makespan <= pool[worst].makespan) pool[worst] = std::move(s);
  }
  return best;
}

}  // namespace kiln::orchestrate::internal
