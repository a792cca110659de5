/* Full relative-position attention on the CPU, one block of query rows at a time.

   For each (item, head, block of R queries): the content scores (q + u) k^T and the
   positional scores (q + v) p^T of the R + K - 1 positions the block's rows use go through
   the BLAS's sgemm (one thread each); the sum, the mask, the row max, the exp and the row
   sums are one vectorised pass over the block while it is in cache; the weights times the
   values are a third sgemm, normalised per row afterwards. Blocks are shared out to
   `threads` workers, so the elementwise work runs on every core, where MLX's CPU backend
   runs it on one thread. Scores never exist beyond one block: memory grows with K, not
   T x K.

   Same maths as `fastmath.softmax_attention` with the blocked positional bias of
   `RelPositionAttention._full`: score(i, j) = scale * ((q_u[i] . k[j]) + (q_v[i] .
   pos[i + K - 1 - j])) + key_bias[j], masked keys set to -1e9 (a row with none kept gives
   the mean of the values, as there), exp by the same Cephes polynomial with the same
   clamp. Without `pos` (plain attention, a Transformer's) the positional term is left out;
   `key_bias` is an additive mask per key (a Transformer's padded keys), or none. */

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                         const float *, int, float, float *, int);
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

typedef struct {
    sgemm_fn sgemm;
    int B, H, T, K, D, R;  /* items, heads, queries, keys, head size, rows per block */
    float scale;
    const float *qu, *qv;  /* (B, H, T, D) */
    const float *k, *v;    /* (B, H, K, D) */
    const float *pos;      /* NULL, or (H, T + K - 1, D): positions -(T - 1) ... K - 1 */
    const float *key_bias; /* NULL, or key_bias[b * key_bias_item + j] */
    long key_bias_item;    /* 0 (one row for all items) or K */
    const uint8_t *keep;   /* NULL, or keep[b * keep_item + i * K + j] */
    long keep_item;        /* 0 (one mask for all items) or T * K */
    const int32_t *lengths;  /* NULL, or (B,) valid frames: pairs beyond them are masked */
    float *out;            /* (B, H, T, D) */
    int threads;
} attention_t;

typedef struct {
    const attention_t *a;
    long *next;  /* the next work item, shared */
} worker_t;

static long items_of(const attention_t *a) {
    return (long)a->B * a->H * ((a->T + a->R - 1) / a->R);
}

#define MASKED (-1e9f)

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* exp(x) = exp(r) 2^n, Cephes expf's polynomial; x clamped so that 2^n is normal. */
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

/* Rows [0, rows) of a block: scores in s (rows x K) become exp(score - row max); the row
   sums go to sums. p is the positional block (rows x (rows + K - 1)). */
CLONES static void softmax_rows(float *s, const float *p, float *sums, int rows, int K,
                                float scale, const float *key_bias, const uint8_t *keep,
                                int first, int valid) {
    int width = rows + K - 1;
    for (int r = 0; r < rows; r++) {
        float *row = s + (long)r * K;
        const float *pr = p ? p + (long)r * width + r + K - 1 : NULL;  /* pr[-j]: key j's */
        const uint8_t *kr = keep ? keep + (long)(first + r) * K : NULL;
        int keys = first + r < valid ? valid : 0;  /* keys [0, keys) may be kept */
        float m = -3.0e38f;
        for (int j = 0; j < K; j++) {
            float x = scale * (pr ? row[j] + pr[-j] : row[j]);
            x = key_bias ? x + key_bias[j] : x;
            int kept = j < keys && (kr == NULL || kr[j]);
            x = kept ? x : MASKED;
            row[j] = x;
            m = x > m ? x : m;
        }
        float sum = 0.0f;
        for (int j = 0; j < K; j++) {
            float e = exp_clamped(row[j] - m);
            row[j] = e;
            sum += e;
        }
        sums[r] = sum;
    }
}

static void block(const attention_t *a, long item, float *s, float *p, float *sums) {
    int blocks = (a->T + a->R - 1) / a->R;
    int bh = (int)(item / blocks), first = (int)(item % blocks) * a->R;
    int b = bh / a->H, h = bh % a->H;
    int rows = a->T - first < a->R ? a->T - first : a->R;
    int K = a->K, D = a->D, width = rows + K - 1;
    const float *qu = a->qu + ((long)bh * a->T + first) * D;
    const float *qv = a->qv ? a->qv + ((long)bh * a->T + first) * D : NULL;
    const float *k = a->k + (long)bh * K * D, *v = a->v + (long)bh * K * D;
    const float *pos = a->pos ? a->pos + ((long)h * (a->T + K - 1) + first) * D : NULL;
    float *out = a->out + ((long)bh * a->T + first) * D;
    a->sgemm(ROW_MAJOR, NO_TRANS, TRANS, rows, K, D, 1.0f, qu, D, k, D, 0.0f, s, K);
    if (pos) a->sgemm(ROW_MAJOR, NO_TRANS, TRANS, rows, width, D, 1.0f, qv, D, pos, D, 0.0f, p, width);
    const uint8_t *keep = a->keep ? a->keep + b * a->keep_item : NULL;
    int valid = a->lengths ? a->lengths[b] : (K > a->T ? K : a->T);  /* else: all */
    const float *key_bias = a->key_bias ? a->key_bias + b * a->key_bias_item : NULL;
    softmax_rows(s, pos ? p : NULL, sums, rows, K, a->scale, key_bias, keep, first, valid);
    a->sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, rows, D, K, 1.0f, s, K, v, D, 0.0f, out, D);
    for (int r = 0; r < rows; r++) {
        float inverse = 1.0f / sums[r];
        for (int d = 0; d < D; d++) out[(long)r * D + d] *= inverse;
    }
}

static void *work(void *arg) {
    worker_t *w = (worker_t *)arg;
    const attention_t *a = w->a;
    long items = items_of(a);
    long scratch = (long)a->R * a->K + (long)a->R * (a->R + a->K - 1) + a->R;
    float *s = (float *)malloc(sizeof(float) * scratch);
    if (s == NULL) return NULL;  /* the other workers take its share */
    float *p = s + (long)a->R * a->K, *sums = p + (long)a->R * (a->R + a->K - 1);
    for (;;) {
        long item = __atomic_fetch_add(w->next, 1, __ATOMIC_RELAXED);
        if (item >= items) break;
        block(a, item, s, p, sums);
    }
    free(s);
    return NULL;
}

/* 0 when done; -1 when no worker had scratch memory (out not complete). */
int conformer_attention(const attention_t *a) {
    enum { MAX_THREADS = 64 };
    int threads = a->threads < 1 ? 1 : (a->threads > MAX_THREADS ? MAX_THREADS : a->threads);
    long next = 0;
    worker_t workers[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started = 0;
    for (int t = 0; t < threads; t++) {
        workers[t].a = a;
        workers[t].next = &next;
    }
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&ids[t], NULL, work, &workers[t]) != 0) break;
        started = t;
    }
    work(&workers[0]);
    for (int t = 1; t <= started; t++) pthread_join(ids[t], NULL);
    return next >= items_of(a) ? 0 : -1;
}
