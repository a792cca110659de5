/* Vector-friendly float math for this project's native kernels, prepended to a package's C
   source by `mlx_cpu_runtime.native.load(..., vector_math=True)` so that every kernel
   shares one copy: `CLONES` (AVX-512, AVX2 and baseline clones of a function, picked at
   load, where GCC makes them) and `exp_clamped`, which loops vectorise (libm's expf is a
   call per value).

   exp_clamped(x) = exp(r) 2^n, x = n ln 2 + r, with Cephes expf's polynomial for exp(r)
   and x clamped to [-87.3, 88] so that 2^n is a normal float. The same polynomial and
   clamp as mlx-conformer's `fastmath` exp (its MLX path), so that native and MLX softmax
   and SiLU agree. */

#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

static inline float exp_clamped(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.0f ? 88.0f : x;
    float t = x * 1.4426950408889634f;
    int32_t n = (int32_t)(t + (t >= 0.0f ? 0.5f : -0.5f));
    float fn = (float)n;
    float r = (x - fn * 0.693145751953125f) - fn * 1.428606765330187045e-06f;
    float r2 = r * r;
    float inner = (5.0000001201e-1f + 1.6666665459e-1f * r) +
                  r2 * ((4.1665795894e-2f + 8.3334519073e-3f * r) +
                        r2 * (1.3981999507e-3f + 1.9875691500e-4f * r));
    union { int32_t i; float f; } two = {.i = (n + 127) << 23};
    return (inner * r2 + r + 1.0f) * two.f;
}
