// Fuzz target: an untrusted campaign YAML file (`kiln discover init`), parsed, turned into a
// search space, and — when valid — sampled, so the space's own validation is exercised too.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kiln/discover/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = kiln::discover::parse_campaign_yaml(text, "fuzz.yaml");
  if (!cfg.is_ok()) return 0;
  auto space = kiln::discover::build_space(*cfg);
  if (!space.is_ok() || space->num_params() > 64) return 0;
  (void)space->sample(4, kiln::discover::Design::kSobol, 1);
  return 0;
}
