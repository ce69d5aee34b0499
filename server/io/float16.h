// IEEE binary16 (float16) <-> binary32 (float32) conversions, as numpy's astype() does them.
//
// Widening is exact; narrowing rounds to nearest, ties to even, and overflows to +-inf. NaN stays
// NaN in both directions.
//
// Thread-safe: free functions without state.
#ifndef TIMBRE_SERVER_IO_FLOAT16_H_
#define TIMBRE_SERVER_IO_FLOAT16_H_

#include <cstdint>

namespace timbre {

// The float32 value of the binary16 bit pattern `half`.
float HalfToFloat(uint16_t half);

// The binary16 bit pattern nearest to `value` (ties to even); +-inf beyond +-65504.
uint16_t FloatToHalf(float value);

}  // namespace timbre

#endif  // TIMBRE_SERVER_IO_FLOAT16_H_
