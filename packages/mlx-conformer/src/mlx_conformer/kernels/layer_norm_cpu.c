/* The Conformer layer's residual sums and layer norms as one native pass
   (`conformer_add_norm`), rows shared out over the work pool's threads.

   Per row: s = x + scale * y (the residual stream after a module; y may be absent), written
   out when asked, then layer_norm(s) = (s - mean) / sqrt(var + eps) * weight + bias, the
   mean and the (biased) variance over the row's D values in two passes, as MLX's and
   PyTorch's layer norms. The sum rounds as MLX's `x + scale * y` (scale is 0.5 or 1: the
   product is exact); the norm differs from MLX's only in the order of its sums.
   Compiled after conformer_cpu.c (its CLONES), in one library with it. */

#include <math.h>
#include <string.h>

typedef struct {
    int M, D;               /* rows, width */
    const float *x;         /* (M, D) */
    const float *y;         /* NULL, or (M, D) */
    float scale;
    const float *weight;    /* (D) */
    const float *bias;      /* NULL, or (D) */
    float eps;
    float *sum;             /* NULL, or (M, D): x + scale * y */
    float *out;             /* (M, D): the norm of the sum */
    int threads;
} add_norm_t;

CLONES static void add_norm_rows(const add_norm_t *a, long first, long last) {
    const int D = a->D;
    for (long r = first; r < last; r++) {
        const float *x = a->x + r * D;
        float *out = a->out + r * D;
        if (a->y) {
            const float *y = a->y + r * D;
            for (int j = 0; j < D; j++) out[j] = x[j] + a->scale * y[j];
        } else {
            for (int j = 0; j < D; j++) out[j] = x[j];
        }
        if (a->sum) memcpy(a->sum + r * D, out, sizeof(float) * (size_t)D);
        float total = 0.0f;
        for (int j = 0; j < D; j++) total += out[j];
        const float mean = total / (float)D;
        float squares = 0.0f;
        for (int j = 0; j < D; j++) {
            const float d = out[j] - mean;
            squares += d * d;
        }
        const float inv = 1.0f / sqrtf(squares / (float)D + a->eps);
        for (int j = 0; j < D; j++) {
            const float n = (out[j] - mean) * inv * a->weight[j];
            out[j] = a->bias ? n + a->bias[j] : n;
        }
    }
}

static void add_norm_range(const void *ctx, long first, long last) {
    add_norm_rows((const add_norm_t *)ctx, first, last);
}

int conformer_add_norm(const add_norm_t *a) {
    parallel_rows(add_norm_range, a, a->M, a->threads);
    return 0;
}
