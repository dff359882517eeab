/* Exact decimal -> double for 19-digit significands (aemg._ext.parse_cy).
 *
 * wide_decimal(m, e) returns m * 10**e correctly rounded (round to nearest, ties to even) for
 * 2**53 < m < 2**64 and -22 <= e <= 19, using exact 128-bit integer arithmetic; NaN when the case
 * is outside that range or the compiler has no 128-bit integers (the caller then uses the general
 * conversion). This is the case of NumPy's default `%.18e` export, which Clinger's fast path
 * (significands up to 2**53) does not cover.
 *
 *   e >= 0: P = m * 10**e is exact (< 2**128); one rounding converts it.
 *   e <  0: N = m shifted so its top bit is bit 127, Q = N / 10**-e (>= 2**53.9, so at least 54
 *           bits), sticky = (N % 10**-e != 0); the double nearest to (2Q + sticky) is the double
 *           nearest to 2 N / 10**-e (the sticky bit lies below the rounding bit), scaled back by a
 *           power of two (exact: the results here are far from the subnormal range).
 * Integer -> double conversion of an unsigned 128-bit value is correctly rounded (C11 6.3.1.4,
 * current rounding mode: nearest).
 */
#ifndef AEMG_PARSE_NUM_H
#define AEMG_PARSE_NUM_H
#include <math.h>
#include <stdint.h>

static inline double wide_decimal(uint64_t m, long e) {
#if defined(__SIZEOF_INT128__)
    typedef unsigned __int128 u128;
    u128 p10 = 1;
    int k, shift;
    if (m <= (UINT64_C(1) << 53) || e < -22 || e > 19) return NAN;
    for (k = 0; k < (e < 0 ? -e : e); k++) p10 *= 10u;
    if (e >= 0) return (double)((u128)m * p10);
    shift = __builtin_clzll(m) + 64;          /* top bit of m moves to bit 127 */
    {
        u128 n = (u128)m << shift;
        u128 q = n / p10;
        int sticky = (n % p10) != 0;
        return ldexp((double)((q << 1) | (u128)sticky), -(shift + 1));
    }
#else
    (void)m; (void)e;
    return NAN;
#endif
}
#endif
