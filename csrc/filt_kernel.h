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

/* Polyphase resampling of 4 interleaved channels: outputs y0 .. y0 + n_out - 1 of SciPy's
 * upfirdn(h, x, up, down) with zero padding (mode "constant", cval 0), as resample_poly calls it.
 * h_tf: the transposed, flipped filter of scipy.signal._upfirdn._pad_h (len_h values, a multiple
 * of up). Per lane the float64 operations and their order are SciPy's _apply_impl: every output
 * starts at 0.0 and adds x[k] * h_tf[j] for k ascending; while the output's last input is inside
 * x, inputs left of x are skipped, after it (the flush) the out-of-range inputs add 0.0 * h_tf[j].
 * x: len_x vectors, out: n_out vectors (both 32-byte aligned). */
static inline void aemg_upfirdn4(const double *__restrict x, ptrdiff_t len_x,
                                 const double *__restrict h_tf, ptrdiff_t len_h, ptrdiff_t up,
                                 ptrdiff_t down, ptrdiff_t y0, ptrdiff_t n_out,
                                 double *__restrict out)
{
    const aemg_v4d *xv = (const aemg_v4d *)x;
    aemg_v4d *ov = (aemg_v4d *)out;
    const aemg_v4d zero = {0.0, 0.0, 0.0, 0.0};
    ptrdiff_t h_per_phase = len_h / up, y, k, j, x_idx, k0;
    aemg_v4d acc;
    ptrdiff_t end = y0 + n_out, i, xa, xb, xc, xd, ja, jb, jc, jd;
    aemg_v4d a0, a1, a2, a3;
    for (y = y0; y < end;) {
        /* four interior outputs at once (all h_per_phase inputs inside x): four independent
         * accumulations, each in SciPy's order, so the add latency overlaps */
        if (y + 3 < end && (y * down) / up - h_per_phase + 1 >= 0 && ((y + 3) * down) / up < len_x) {
            xa = (y * down) / up - h_per_phase + 1;
            xb = ((y + 1) * down) / up - h_per_phase + 1;
            xc = ((y + 2) * down) / up - h_per_phase + 1;
            xd = ((y + 3) * down) / up - h_per_phase + 1;
            ja = ((y * down) % up) * h_per_phase;
            jb = (((y + 1) * down) % up) * h_per_phase;
            jc = (((y + 2) * down) % up) * h_per_phase;
            jd = (((y + 3) * down) % up) * h_per_phase;
            a0 = a1 = a2 = a3 = zero;
            for (i = 0; i < h_per_phase; i++) {
                a0 = a0 + xv[xa + i] * h_tf[ja + i];
                a1 = a1 + xv[xb + i] * h_tf[jb + i];
                a2 = a2 + xv[xc + i] * h_tf[jc + i];
                a3 = a3 + xv[xd + i] * h_tf[jd + i];
            }
            ov[y - y0] = a0;
            ov[y + 1 - y0] = a1;
            ov[y + 2 - y0] = a2;
            ov[y + 3 - y0] = a3;
            y += 4;
            continue;
        }
        x_idx = (y * down) / up;
        j = ((y * down) % up) * h_per_phase;
        k0 = x_idx - h_per_phase + 1;
        acc = zero;
        if (x_idx < len_x) {
            if (k0 < 0) {
                j -= k0;
                k0 = 0;
            }
            for (k = k0; k <= x_idx; k++, j++)
                acc = acc + xv[k] * h_tf[j];
        } else {
            for (k = k0; k <= x_idx; k++, j++)
                acc = acc + ((k >= 0 && k < len_x) ? xv[k] : zero) * h_tf[j];
        }
        ov[y - y0] = acc;
        y++;
    }
}

/* -- float32: 8 lanes (one AVX register) and 4 lanes (SSE, the channels left over) ---------------
 *
 * The same recursions and accumulation orders in float32, as SciPy's own float32 paths do them
 * (sosfiltfilt / resample_poly of float32 input with float32 coefficients: _sosfilt and
 * _apply_impl instantiated for float). Still -ffp-contract=off: the same bytes from every x86
 * build (native or portable), so archives do not depend on the machine that wrote them. */
typedef float aemg_v8f __attribute__((vector_size(32)));
typedef float aemg_v4f __attribute__((vector_size(16)));

#define AEMG_SOS_CASCADE_F(NAME, VT)                                                             \
static inline int NAME(float *__restrict buf, ptrdiff_t n, int step,                             \
                       const float *__restrict sos, const float *__restrict zi, ptrdiff_t n_sec) \
{                                                                                                \
    VT z0[AEMG_MAX_SECTIONS], z1[AEMG_MAX_SECTIONS];                                             \
    VT b0[AEMG_MAX_SECTIONS], b1[AEMG_MAX_SECTIONS], b2[AEMG_MAX_SECTIONS];                      \
    VT a1[AEMG_MAX_SECTIONS], a2[AEMG_MAX_SECTIONS];                                             \
    const VT zero = {0};                                                                         \
    ptrdiff_t s, t;                                                                              \
    VT *v;                                                                                       \
    VT first, cur, nw;                                                                           \
    if (n_sec > AEMG_MAX_SECTIONS)                                                               \
        return -1;                                                                               \
    if (n <= 0 || n_sec <= 0)                                                                    \
        return 0;                                                                                \
    v = (VT *)buf + (step > 0 ? 0 : n - 1);                                                      \
    first = *v;                                                                                  \
    for (s = 0; s < n_sec; s++) {                                                                \
        b0[s] = zero + sos[6 * s];                                                               \
        b1[s] = zero + sos[6 * s + 1];                                                           \
        b2[s] = zero + sos[6 * s + 2];                                                           \
        a1[s] = zero + sos[6 * s + 4];                                                           \
        a2[s] = zero + sos[6 * s + 5];                                                           \
        z0[s] = zi[2 * s] * first;                                                               \
        z1[s] = zi[2 * s + 1] * first;                                                           \
    }                                                                                            \
    for (t = 0; t < n; t++) {                                                                    \
        cur = *v;                                                                                \
        for (s = 0; s < n_sec; s++) {                                                            \
            nw = b0[s] * cur + z0[s];                                                            \
            z0[s] = b1[s] * cur - a1[s] * nw + z1[s];                                            \
            z1[s] = b2[s] * cur - a2[s] * nw;                                                    \
            cur = nw;                                                                            \
        }                                                                                        \
        *v = cur;                                                                                \
        v += step;                                                                               \
    }                                                                                            \
    return 0;                                                                                    \
}

/* buf: n vectors of 8 (or 4) float lanes, aligned to the vector size; as aemg_sos_cascade4 */
AEMG_SOS_CASCADE_F(aemg_sos_cascade8f, aemg_v8f)
AEMG_SOS_CASCADE_F(aemg_sos_cascade4f, aemg_v4f)

#define AEMG_UPFIRDN_F(NAME, VT)                                                                 \
static inline void NAME(const float *__restrict x, ptrdiff_t len_x, const float *__restrict h_tf, \
                        ptrdiff_t len_h, ptrdiff_t up, ptrdiff_t down, ptrdiff_t y0,             \
                        ptrdiff_t n_out, float *__restrict out)                                  \
{                                                                                                \
    const VT *xv = (const VT *)x;                                                                \
    VT *ov = (VT *)out;                                                                          \
    const VT zero = {0};                                                                         \
    ptrdiff_t h_per_phase = len_h / up, y, k, j, x_idx, k0;                                      \
    VT acc;                                                                                      \
    ptrdiff_t end = y0 + n_out, i, xa, xb, xc, xd, ja, jb, jc, jd;                               \
    VT a0, a1, a2, a3;                                                                           \
    for (y = y0; y < end;) {                                                                     \
        if (y + 3 < end && (y * down) / up - h_per_phase + 1 >= 0                                \
            && ((y + 3) * down) / up < len_x) {                                                  \
            xa = (y * down) / up - h_per_phase + 1;                                              \
            xb = ((y + 1) * down) / up - h_per_phase + 1;                                        \
            xc = ((y + 2) * down) / up - h_per_phase + 1;                                        \
            xd = ((y + 3) * down) / up - h_per_phase + 1;                                        \
            ja = ((y * down) % up) * h_per_phase;                                                \
            jb = (((y + 1) * down) % up) * h_per_phase;                                          \
            jc = (((y + 2) * down) % up) * h_per_phase;                                          \
            jd = (((y + 3) * down) % up) * h_per_phase;                                          \
            a0 = a1 = a2 = a3 = zero;                                                            \
            for (i = 0; i < h_per_phase; i++) {                                                  \
                a0 = a0 + xv[xa + i] * h_tf[ja + i];                                             \
                a1 = a1 + xv[xb + i] * h_tf[jb + i];                                             \
                a2 = a2 + xv[xc + i] * h_tf[jc + i];                                             \
                a3 = a3 + xv[xd + i] * h_tf[jd + i];                                             \
            }                                                                                    \
            ov[y - y0] = a0;                                                                     \
            ov[y + 1 - y0] = a1;                                                                 \
            ov[y + 2 - y0] = a2;                                                                 \
            ov[y + 3 - y0] = a3;                                                                 \
            y += 4;                                                                              \
            continue;                                                                            \
        }                                                                                        \
        x_idx = (y * down) / up;                                                                 \
        j = ((y * down) % up) * h_per_phase;                                                     \
        k0 = x_idx - h_per_phase + 1;                                                            \
        acc = zero;                                                                              \
        if (x_idx < len_x) {                                                                     \
            if (k0 < 0) {                                                                        \
                j -= k0;                                                                         \
                k0 = 0;                                                                          \
            }                                                                                    \
            for (k = k0; k <= x_idx; k++, j++)                                                   \
                acc = acc + xv[k] * h_tf[j];                                                     \
        } else {                                                                                 \
            for (k = k0; k <= x_idx; k++, j++)                                                   \
                acc = acc + ((k >= 0 && k < len_x) ? xv[k] : zero) * h_tf[j];                    \
        }                                                                                        \
        ov[y - y0] = acc;                                                                        \
        y++;                                                                                     \
    }                                                                                            \
}

/* float32 polyphase resampling of 8 (or 4) interleaved channels: as aemg_upfirdn4 */
AEMG_UPFIRDN_F(aemg_upfirdn8f, aemg_v8f)
AEMG_UPFIRDN_F(aemg_upfirdn4f, aemg_v4f)

#endif
