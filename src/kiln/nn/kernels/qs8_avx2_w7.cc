// int8 GEMM / IGEMM for AVX2 CPUs without VNNI on layers whose weights all lie in [-64, 64] (the
// 7-bit weights of `kiln quantize --reduce-range`, ONNX Runtime's reduce_range): the AVX-VNNI
// micro-kernel (qs8_avxvnni.cc: 6 x 16 tiles, uint8 activations, kGroup4 weights) with vpdpbusd
// computed as vpmaddubsw + vpmaddwd, which cannot saturate on such weights. Built with -mavx2
// -mfma only; qgemm_config_for() picks it per layer, and 8-bit layers keep the exact vpmaddwd
// kernel of qs8_avx2.cc.
#define KILN_QS8_VNNI_MADDUBS 1
#include "qs8_avxvnni.cc"
