// Fuzz target: an untrusted CSV as `kiln discover` reads it (results, candidate pools), through
// the parser and on into pool loading and measurement validation against a fixed campaign.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kiln/discover/campaign.h"

namespace {

const kiln::discover::Campaign& campaign() {
  static const kiln::discover::Campaign c = [] {
    auto cfg = kiln::discover::parse_campaign_yaml(R"(
parameters:
  - {name: theta, type: continuous, low: 0, high: 200}
  - {name: n, type: integer, low: 6, high: 12}
  - {name: solvent, type: categorical, values: [water, ethanol]}
  - {name: Cs, type: continuous, low: 0, high: 1}
  - {name: FA, type: continuous, low: 0, high: 1}
mixtures:
  - {components: [Cs, FA], total: 1.0}
objectives:
  - {name: toughness, direction: maximize}
)", "fuzz.yaml");
    auto made = kiln::discover::Campaign::create(*cfg, nullptr);
    made->add_pending({{1, {100, 9, 0, 0.5, 0.5}}});
    return std::move(made).value();
  }();
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = kiln::discover::parse_csv(text, "fuzz.csv");
  if (!t.is_ok()) return 0;
  (void)campaign().parse_measurements(*t);
  (void)kiln::discover::load_pool(campaign().space(), *t);
  for (int r = 0; r < t->num_rows() && r < 64; ++r)
    for (int c = 0; c < static_cast<int>(t->header.size()) && c < 16; ++c) (void)t->number(r, c);
  return 0;
}
