#include "kiln/control/tags.h"

namespace kiln::control {

const char* tag_type_name(TagType t) {
  switch (t) {
    case TagType::kBool: return "bool";
    case TagType::kInt: return "int";
    case TagType::kFloat: return "float";
    case TagType::kArray: return "array";
    case TagType::kWindow: return "window";
  }
  return "?";
}

bool is_scalar(TagType t) { return t == TagType::kBool || t == TagType::kInt || t == TagType::kFloat; }

ProcessImage::ProcessImage(std::vector<TagSpec> specs) : specs_(std::move(specs)) {
  slots_ = std::make_unique<Slot[]>(specs_.size());
  size_t total = 0;
  for (size_t i = 0; i < specs_.size(); ++i) {
    by_name_.emplace(specs_[i].name, static_cast<int>(i));
    const TagSpec& s = specs_[i];
    size_t cap = 0;
    if (s.type == TagType::kArray) cap = static_cast<size_t>(s.length);
    // Twice the length: a reader copying the newest N samples is not overtaken unless the producer
    // appends N more while it copies.
    if (s.type == TagType::kWindow) cap = 2 * static_cast<size_t>(s.length);
    slots_[i].offset = total;
    slots_[i].capacity = cap;
    total += cap;
  }
  buf_ = std::make_unique<std::atomic<float>[]>(total > 0 ? total : 1);
  reset();
}

int ProcessImage::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? -1 : it->second;
}

void ProcessImage::reset() {
  for (size_t i = 0; i < specs_.size(); ++i) {
    Slot& s = slots_[i];
    s.value.store(specs_[i].initial, std::memory_order_relaxed);
    s.forced.store(false, std::memory_order_relaxed);
    s.seq.store(0, std::memory_order_relaxed);
    for (size_t k = 0; k < s.capacity; ++k) buf_[s.offset + k].store(0.f, std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_release);
}

double ProcessImage::set(int id, double v) {
  Slot& s = slots_[id];
  if (s.forced.load(std::memory_order_acquire)) v = s.force_value.load(std::memory_order_acquire);
  s.value.store(v, std::memory_order_release);
  return v;
}

void ProcessImage::force(int id, double v) {
  Slot& s = slots_[id];
  s.force_value.store(v, std::memory_order_release);
  s.forced.store(true, std::memory_order_release);
  s.value.store(v, std::memory_order_release);
}

void ProcessImage::unforce(int id) { slots_[id].forced.store(false, std::memory_order_release); }

void ProcessImage::write_array(int id, std::span<const float> v) {
  Slot& s = slots_[id];
  size_t n = v.size() < s.capacity ? v.size() : s.capacity;
  uint64_t q = s.seq.load(std::memory_order_relaxed);
  s.seq.store(q + 1, std::memory_order_relaxed);  // odd: a write is in progress
  std::atomic_thread_fence(std::memory_order_release);
  for (size_t k = 0; k < n; ++k) buf_[s.offset + k].store(v[k], std::memory_order_relaxed);
  s.seq.store(q + 2, std::memory_order_release);
}

bool ProcessImage::read_array(int id, std::span<float> out) const {
  const Slot& s = slots_[id];
  size_t n = out.size() < s.capacity ? out.size() : s.capacity;
  for (int attempt = 0; attempt < 4; ++attempt) {
    uint64_t q1 = s.seq.load(std::memory_order_acquire);
    for (size_t k = 0; k < n; ++k) out[k] = buf_[s.offset + k].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    uint64_t q2 = s.seq.load(std::memory_order_relaxed);
    if (q1 == q2 && (q1 & 1) == 0) return true;
  }
  return false;
}

void ProcessImage::push(int id, float v) {
  Slot& s = slots_[id];
  uint64_t q = s.seq.load(std::memory_order_relaxed);
  buf_[s.offset + q % s.capacity].store(v, std::memory_order_relaxed);
  s.seq.store(q + 1, std::memory_order_release);
}

int ProcessImage::read_window(int id, std::span<float> out) const {
  const Slot& s = slots_[id];
  const size_t cap = s.capacity;
  size_t n = out.size();
  if (n > cap / 2) n = cap / 2;
  int real = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    uint64_t end = s.seq.load(std::memory_order_acquire);
    uint64_t avail = end < n ? end : n;
    size_t pad = n - static_cast<size_t>(avail);
    for (size_t k = 0; k < pad; ++k) out[k] = 0.f;
    uint64_t first = end - avail;
    for (uint64_t k = 0; k < avail; ++k) out[pad + k] = buf_[s.offset + (first + k) % cap].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    uint64_t after = s.seq.load(std::memory_order_relaxed);
    real = static_cast<int>(avail);
    // The oldest sample copied is intact if the producer has not wrapped onto it meanwhile.
    if (after - first <= cap) break;
  }
  for (size_t k = n; k < out.size(); ++k) out[k] = 0.f;
  return real;
}

}  // namespace kiln::control
