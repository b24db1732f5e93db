// Fuzz target: an untrusted Sparkplug B NCMD/DCMD payload from the network (kiln/io/sparkplug_codec.h).
#include <cstddef>
#include <cstdint>

#include "kiln/io/sparkplug_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = kiln::io::decode_command(data, size);
  if (r.is_ok()) {
    double sum = 0;
    for (const auto& m : *r) sum += m.value + static_cast<double>(m.name.size());
    (void)sum;
  }
  return 0;
}
