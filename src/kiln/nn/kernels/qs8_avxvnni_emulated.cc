// Test-only: the AVX-VNNI micro-kernel (qs8_avxvnni.cc) with vpdpbusd replaced by an exact AVX2
// emulation, so that its tiling, packing, tails and zero-point handling are checked by the
// differential tests on machines without AVX-VNNI. Built with -mavx2 -mfma into nn_int8_test only.
#define KILN_QS8_VNNI_EMULATION 1
#include "qs8_avxvnni.cc"
