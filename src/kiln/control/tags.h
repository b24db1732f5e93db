// kiln/control/tags.h — the process image: every typed signal of a cell, shared by its loops and
// drivers without locks.
//
// A tag is a named signal with a type (bool, int, float, a fixed-length float array, or a ring
// window of the last N float samples), units, a valid range and an optional safe value. The image
// is allocated once when the cell is built; afterwards reading and writing never allocates, never
// locks and never blocks, from any thread:
//   - scalars (bool/int/float) are one atomic double each (lock-free on every 64-bit target);
//   - arrays are written whole by one writer and read through a sequence counter (seqlock), so a
//     reader never sees half of one write;
//   - windows are single-producer rings twice the declared length, so a reader can copy the last N
//     samples while the producer keeps appending.
// A tag can be *forced* (by an interlock or the safe state): while forced, every write stores the
// forced value instead, so the owner of the tag cannot undo a safety action by writing again.
//
//   std::vector<kiln::control::TagSpec> specs = {{.name = "temp", .type = TagType::kFloat}};
//   kiln::control::ProcessImage image(std::move(specs));
//   int t = image.find("temp");
//   image.set(t, 21.5);
//   image.force(t, 0.0);           // image.get(t) == 0.0 until unforce(t)
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kiln::control {

enum class TagType { kBool, kInt, kFloat, kArray, kWindow };

// "bool", "int", "float", "array", "window".
const char* tag_type_name(TagType t);
bool is_scalar(TagType t);

struct TagSpec {
  std::string name;
  TagType type = TagType::kFloat;
  std::string units;
  std::string description;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  double initial = 0;
  bool has_safe = false;
  double safe = 0;
  int length = 1;  // elements of an array, samples of a window; 1 for scalars
  int line = 0, column = 0;  // where the tag was declared (1-based; 0 = unknown)
};

class ProcessImage {
 public:
  ProcessImage() = default;
  explicit ProcessImage(std::vector<TagSpec> specs);
  ProcessImage(const ProcessImage&) = delete;
  ProcessImage& operator=(const ProcessImage&) = delete;

  int size() const { return static_cast<int>(specs_.size()); }
  // Tag id by name, or -1.
  int find(std::string_view name) const;
  const TagSpec& spec(int id) const { return specs_[static_cast<size_t>(id)]; }

  // Scalars. Real-time safe.
  double get(int id) const { return slots_[id].value.load(std::memory_order_acquire); }
  // Stores v, or the forced value while the tag is forced. Returns what was stored.
  double set(int id, double v);
  void force(int id, double v);
  void unforce(int id);
  bool forced(int id) const { return slots_[id].forced.load(std::memory_order_acquire); }

  // Arrays (one writer). read_array returns false when it could not get a consistent copy after a
  // few tries (a writer faster than the reader), leaving the last attempt in `out`.
  void write_array(int id, std::span<const float> v);
  bool read_array(int id, std::span<float> out) const;

  // Windows (one producer). push appends; read_window copies the newest out.size() samples, oldest
  // first, and returns how many real samples there were (earlier slots are zero-filled).
  void push(int id, float v);
  int read_window(int id, std::span<float> out) const;
  // Samples ever pushed to a window, or writes ever made to an array.
  uint64_t count(int id) const { return slots_[id].seq.load(std::memory_order_acquire); }

  // Every scalar to its initial value; arrays and windows to zero.
  void reset();

 private:
  struct alignas(64) Slot {
    std::atomic<double> value{0};
    std::atomic<double> force_value{0};
    std::atomic<bool> forced{false};
    std::atomic<uint64_t> seq{0};
    size_t offset = 0;    // into buf_, arrays and windows
    size_t capacity = 0;  // elements reserved in buf_
  };
  std::vector<TagSpec> specs_;
  std::unordered_map<std::string, int> by_name_;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<std::atomic<float>[]> buf_;
};

}  // namespace kiln::control
