/* The inner loop of csrc/filt_cy.pyx: one pass of a second-order-section cascade over 4
 * interleaved channels (GCC/Clang vector extensions; SSE2 pairs where AVX is missing).
 *
 * Per lane the float64 operations and their order are those of SciPy's _sosfilt (direct form II
 * transposed): new = b0 * cur + z0; z0 = (b1 * cur - a1 * new) + z1; z1 = b2 * cur - a2 * new.
 * Compiled with -ffp-contract=off, so the result is bit-identical to SciPy's.
 */
#ifndef AEMG_FILT_KERNEL_H
#define AEMG_FILT_KERNEL_H

#include <stddef.h>

typedef double aemg_v4d __attribute__((vector_size(32)));

#define AEMG_MAX_SECTIONS 64

/* buf (32-byte aligned): n vectors of 4 lanes (lane-interleaved, i.e. buf[4 t + j]), filtered in place; step +1
 * runs forward from vector 0, -1 backward from vector n - 1. sos: n_sec x 6, zi: n_sec x 2; the
 * state starts at zi * the first vector visited. Returns -1 if n_sec > AEMG_MAX_SECTIONS. */
static inline int aemg_sos_cascade4(double *__restrict buf, ptrdiff_t n, int step,
                                    const double *__restrict sos, const double *__restrict zi,
                                    ptrdiff_t n_sec)
{
    aemg_v4d z0[AEMG_MAX_SECTIONS], z1[AEMG_MAX_SECTIONS];
    aemg_v4d b0[AEMG_MAX_SECTIONS], b1[AEMG_MAX_SECTIONS], b2[AEMG_MAX_SECTIONS];
    aemg_v4d a1[AEMG_MAX_SECTIONS], a2[AEMG_MAX_SECTIONS];
    ptrdiff_t s, t;
    aemg_v4d *v;
    aemg_v4d first, cur, nw;
    if (n_sec > AEMG_MAX_SECTIONS)
        return -1;
    if (n <= 0 || n_sec <= 0)
        return 0;
    v = (aemg_v4d *)buf + (step > 0 ? 0 : n - 1);
    first = *v;
    for (s = 0; s < n_sec; s++) {
        b0[s] = (aemg_v4d){sos[6 * s], sos[6 * s], sos[6 * s], sos[6 * s]};
        b1[s] = (aemg_v4d){sos[6 * s + 1], sos[6 * s + 1], sos[6 * s + 1], sos[6 * s + 1]};
        b2[s] = (aemg_v4d){sos[6 * s + 2], sos[6 * s + 2], sos[6 * s + 2], sos[6 * s + 2]};
        a1[s] = (aemg_v4d){sos[6 * s + 4], sos[6 * s + 4], sos[6 * s + 4], sos[6 * s + 4]};
        a2[s] = (aemg_v4d){sos[6 * s + 5], sos[6 * s + 5], sos[6 * s + 5], sos[6 * s + 5]};
        z0[s] = zi[2 * s] * first;
        z1[s] = zi[2 * s + 1] * first;
    }
    for (t = 0; t < n; t++) {
        cur = *v;
        for (s = 0; s < n_sec; s++) {
            nw = b0[s] * cur + z0[s];
            z0[s] = b1[s] * cur - a1[s] * nw + z1[s];
            z1[s] = b2[s] * cur - a2[s] * nw;
            cur = nw;
        }
        *v = cur;
        v += step;
    }
    return 0;
}

#endif
