/* The Conformer's native CPU kernels: attention, the feed-forward and convolution modules,
   the subsampling.

   MLX's CPU backend runs elementwise work on one thread. These kernels keep MLX's products
   on the BLAS (OpenBLAS's sgemm, called through the pointer mlx-cpu-runtime hands over) and
   run the elementwise work between them on every core, vectorised (AVX-512, AVX2 or SSE2
   clones chosen at load; `CLONES` and `exp_clamped` are mlx-cpu-runtime's vector_math.c,
   compiled in front of this file).

   Attention (`conformer_attention`), one block of query rows at a time: for each (item,
   head, block of R queries) the content scores (q + u) k^T and the positional scores
   (q + v) p^T of the R + K - 1 positions the block's rows use go through sgemm (one thread
   each); the sum, the mask, the row max, the exp and the row sums are one vectorised pass
   over the block while it is in cache; the weights times the values are a third sgemm,
   normalised per row afterwards. Blocks are shared out to `threads` workers. Scores never
   exist beyond one block: memory grows with K, not T x K. q, k, v and out are per head, or
   (given the heads' biases u and v) in frames of all heads as the projections leave them,
   read and written with strides (no transposes), u and v added to each block's query rows.
   Same maths as `fastmath.softmax_attention` with the blocked positional bias of
   `RelPositionAttention._full`: score(i, j) = scale * ((q_u[i] . k[j]) + (q_v[i] .
   pos[i + K - 1 - j])) + key_bias[j], masked keys set to -1e9 (a row with none kept gives
   the mean of the values, as there), exp by the same Cephes polynomial with the same
   clamp. Without `pos` (plain attention, a Transformer's) the positional term is left out;
   `key_bias` is an additive mask per key (a Transformer's padded keys), or none.

   Feed-forward (`conformer_feed_forward`): linear1 as one sgemm over all rows (the BLAS's
   own threads), then SiLU(h + b1) on `threads` workers over row ranges, then linear2 as one
   sgemm onto rows holding b2. SiLU is x / (1 + exp(-x)) with the exp above, as
   `fastmath.silu` computes it.

   Convolution module (`conformer_convolution`, batch-norm variant, offline): pointwise_conv1
   as one sgemm, then on the workers over row ranges the GLU (padded frames zeroed), then
   the depthwise convolution over time (zeros beyond each item's ends, as MLX's padded input
   gives), its bias, the batch norm's affine map and SiLU, then pointwise_conv2 as one sgemm
   onto rows holding its bias. */

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
    const int32_t *offsets;  /* NULL, or (B + 1,): packed rows (with bias_u only). Item b's
                                frames are frames offsets[b] .. offsets[b + 1] - 1 of q, k, v
                                and out, (offsets[B], H, D); T = K is then the longest item's
                                length */
    const float *bias_u, *bias_v;  /* NULL: q, k, v, out per head as above. Else the heads'
                                biases u and v ((H, D) each), added here, and q (as qu), k, v,
                                out as the projections leave them: frames of H * D values
                                ((B, T, H, D), or packed), K = T */
} attention_t;

static long items_of(const attention_t *a) {
    return (long)a->B * a->H * ((a->T + a->R - 1) / a->R);
}

#define MASKED (-1e9f)

/* Rows [0, rows) of a block over keys [0, K): scores in s (rows x K) become exp(score - row
   max); the row sums go to sums. p is the positional block (rows x (rows + K - 1)); keep's
   rows are keep_stride wide, its first row the block's first query's. */
CLONES static void softmax_rows(float *s, const float *p, float *sums, int rows, int K,
                                float scale, const float *key_bias, const uint8_t *keep,
                                long keep_stride) {
    int width = rows + K - 1;
    for (int r = 0; r < rows; r++) {
        float *row = s + (long)r * K;
        const float *pr = p ? p + (long)r * width + r + K - 1 : NULL;  /* pr[-j]: key j's */
        const uint8_t *kr = keep ? keep + (long)r * keep_stride : NULL;
        float m = -3.0e38f;
        for (int j = 0; j < K; j++) {
            float x = scale * (pr ? row[j] + pr[-j] : row[j]);
            x = key_bias ? x + key_bias[j] : x;
            x = kr == NULL || kr[j] ? x : MASKED;
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

/* One block of queries of one (item, head). With `lengths`, only the item's valid queries
   and keys are computed: a padded batch pays for each item's own length (its padded query
   rows are written as zeros, as NeMo's masked softmax leaves them). */
static void block(const attention_t *a, long item, float *s, float *p, float *sums,
                  float *biased) {
    int blocks = (a->T + a->R - 1) / a->R;
    int bh = (int)(item / blocks), first = (int)(item % blocks) * a->R;
    int b = bh / a->H, h = bh % a->H;
    int rows = a->T - first < a->R ? a->T - first : a->R;
    int D = a->D;
    /* a frame's stride in q, k, v and out: one head's D values, or all heads' (biases) */
    int all_heads = a->bias_u != NULL;
    long ld = all_heads ? (long)a->H * D : D;
    /* where this (item, head)'s queries and keys start: padded (B, H, T, D), or in frames
       of all heads, padded or packed */
    long q0 = ((long)bh * a->T + first) * D, k0 = (long)bh * a->K * D;
    if (all_heads) {
        q0 = ((long)b * a->T + first) * ld + (long)h * D;
        k0 = (long)b * a->K * ld + (long)h * D;
    }
    int valid = a->lengths ? a->lengths[b] : (a->K > a->T ? a->K : a->T);  /* else: all */
    if (a->offsets) {  /* packed frames of all heads */
        long start = a->offsets[b];
        valid = a->offsets[b + 1] - a->offsets[b];
        if (first >= valid) return;  /* no padded rows to write */
        rows = valid - first < rows ? valid - first : rows;
        q0 = (start + first) * ld + (long)h * D;
        k0 = start * ld + (long)h * D;
    }
    float *out = a->out + q0;
    int live = valid - first < rows ? valid - first : rows;  /* queries to compute */
    int K = valid < a->K ? valid : a->K;                     /* keys to compute */
    live = live < 0 ? 0 : live;
    K = K < 0 ? 0 : K;
    if (live > 0 && K > 0) {
        int width = live + K - 1;
        const float *qu = a->qu + q0;
        const float *qv = a->qv ? a->qv + q0 : NULL;
        long ldq = ld;
        if (all_heads) {  /* q + u and q + v of the block's rows, one head's D values each */
            const float *q = qu, *u = a->bias_u + (long)h * D, *w = a->bias_v + (long)h * D;
            float *bu = biased, *bv = biased + (long)live * D;
            for (int r = 0; r < live; r++)
                for (int d = 0; d < D; d++) {
                    bu[(long)r * D + d] = q[r * ld + d] + u[d];
                    bv[(long)r * D + d] = q[r * ld + d] + w[d];
                }
            qu = bu;
            qv = bv;
            ldq = D;
        }
        const float *k = a->k + k0, *v = a->v + k0;
        /* positions -(T - 1) ... K_all - 1 per head; this block's keys [0, K) meet its
           rows at columns (a->K - K) ... of the block's window */
        const float *pos = a->pos
            ? a->pos + ((long)h * (a->T + a->K - 1) + first + (a->K - K)) * D : NULL;
        a->sgemm(ROW_MAJOR, NO_TRANS, TRANS, live, K, D, 1.0f, qu, ldq, k, ld, 0.0f, s, K);
        if (pos) a->sgemm(ROW_MAJOR, NO_TRANS, TRANS, live, width, D, 1.0f, qv, ldq, pos, D, 0.0f, p, width);
        const uint8_t *keep = a->keep ? a->keep + b * a->keep_item + (long)first * a->K : NULL;
        const float *key_bias = a->key_bias ? a->key_bias + b * a->key_bias_item : NULL;
        softmax_rows(s, pos ? p : NULL, sums, live, K, a->scale, key_bias, keep, a->K);
        a->sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, live, D, K, 1.0f, s, K, v, ld, 0.0f, out, ld);
        for (int r = 0; r < live; r++) {
            float inverse = 1.0f / sums[r];
            for (int d = 0; d < D; d++) out[(long)r * ld + d] *= inverse;
        }
    }
    for (int r = live; r < rows; r++) memset(out + (long)r * ld, 0, sizeof(float) * (size_t)D);
}

static void attention_item(const void *ctx, long item, float *scratch) {
    const attention_t *a = (const attention_t *)ctx;
    float *p = scratch + (long)a->R * a->K, *sums = p + (long)a->R * (a->R + a->K - 1);
    block(a, item, scratch, p, sums, sums + a->R);
}

/* 0 when done; -1 when no worker had scratch memory (out not complete). */
int conformer_attention(const attention_t *a) {
    long scratch = (long)a->R * a->K + (long)a->R * (a->R + a->K - 1) + a->R;
    if (a->bias_u) scratch += 2L * a->R * a->D;  /* the block's q + u and q + v rows */
    return parallel_items(attention_item, a, items_of(a), scratch, a->threads);
}

/* ------------------------------------------------------------------ feed-forward */

typedef struct {
    sgemm_fn sgemm;
    int M, D, F;            /* rows, model width, hidden width */
    const float *x;         /* (M, D) */
    const float *w1, *b1;   /* (F, D), NULL or (F,) */
    const float *w2, *b2;   /* (D, F), NULL or (D,) */
    float *hidden;          /* (M, F) scratch */
    float *out;             /* (M, D) */
    int threads;
    int T;                    /* rows per item when lengths is set */
    const int32_t *lengths;   /* NULL (every row), or (M / T,) valid rows per item: only those
                                 are computed, the others written as zeros */
    float *packed;            /* with lengths: (M, D) scratch for the valid rows, packed */
} feed_forward_t;

CLONES static void silu_rows(float *h, const float *bias, long rows, int F) {
    for (long r = 0; r < rows; r++) {
        float *row = h + r * F;
        for (int j = 0; j < F; j++) {
            float x = bias ? row[j] + bias[j] : row[j];
            row[j] = x / (1.0f + exp_clamped(-x));
        }
    }
}

static void silu_range(const void *ctx, long first, long last) {
    const feed_forward_t *a = (const feed_forward_t *)ctx;
    silu_rows(a->hidden + first * a->F, a->b1, last - first, a->F);
}

static long ff_valid(const feed_forward_t *a, long b) {
    long n = a->lengths[b];
    return n < 0 ? 0 : (n > a->T ? a->T : n);
}

/* Always 0: the scratch belongs to the caller; a thread that cannot start leaves its rows
   to the calling thread. With lengths, the items' valid rows are packed together first
   (one product over them all: a product per item would pack the weights once per item)
   and unpacked after, padded rows zero. */
int conformer_feed_forward(const feed_forward_t *a) {
    long D = a->D, rows = a->M, items = a->lengths ? a->M / a->T : 0;
    const float *x = a->x;
    float *out = a->out;
    if (a->lengths) {
        rows = 0;
        for (long b = 0; b < items; b++) {
            long n = ff_valid(a, b);
            memcpy(a->packed + rows * D, a->x + b * a->T * D, sizeof(float) * (size_t)(n * D));
            rows += n;
        }
        x = out = a->packed;  /* the packed inputs are read before the outputs are written */
    }
    if (rows > 0) {
        a->sgemm(ROW_MAJOR, NO_TRANS, TRANS, (int)rows, a->F, a->D, 1.0f, x, a->D, a->w1, a->D,
                 0.0f, a->hidden, a->F);
        parallel_rows(silu_range, a, rows, a->threads);
        float beta = 0.0f;
        if (a->b2) {
            for (long r = 0; r < rows; r++) memcpy(out + r * D, a->b2, sizeof(float) * D);
            beta = 1.0f;
        }
        a->sgemm(ROW_MAJOR, NO_TRANS, TRANS, (int)rows, a->D, a->F, 1.0f, a->hidden, a->F, a->w2,
                 a->F, beta, out, a->D);
    }
    if (a->lengths) {
        long from = 0;
        for (long b = 0; b < items; b++) {
            long n = ff_valid(a, b);
            float *item = a->out + b * a->T * D;
            memcpy(item, a->packed + from * D, sizeof(float) * (size_t)(n * D));
            memset(item + n * D, 0, sizeof(float) * (size_t)((a->T - n) * D));
            from += n;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ convolution module */

typedef struct {
    sgemm_fn sgemm;
    int B, T, D, taps, left;   /* items, frames, channels, depthwise taps, taps before t */
    const float *x;            /* (B * T, D) */
    const float *w1, *b1;      /* (2D, D), NULL or (2D,) */
    const float *dw;           /* (taps, D) */
    const float *dw_bias;      /* (D,) */
    const float *scale, *shift;  /* (D,): the batch norm as an affine map */
    const float *w2, *b2;      /* (D, D), NULL or (D,) */
    const uint8_t *padded;     /* NULL, or (B, T): 1 on padded frames */
    const int32_t *offsets;    /* NULL, or (B + 1,): packed rows, item b's frames being rows
                                  offsets[b] .. offsets[b + 1] - 1 (T unused; no padded rows) */
    float *hidden;             /* (B * T, 2D) scratch */
    float *gated;              /* (B * T, D) scratch */
    float *act;                /* (B * T, D) scratch */
    float *out;                /* (B * T, D) */
    int threads;
} convolution_t;

CLONES static void glu_rows(const float *hidden, float *gated, const uint8_t *padded,
                            long first, long last, int D) {
    for (long r = first; r < last; r++) {
        const float *h = hidden + r * 2 * D;
        float *g = gated + r * D;
        if (padded && padded[r]) {
            for (int c = 0; c < D; c++) g[c] = 0.0f;
            continue;
        }
        for (int c = 0; c < D; c++) g[c] = h[c] / (1.0f + exp_clamped(-h[D + c]));
    }
}

CLONES static void depthwise_rows(const convolution_t *a, long first, long last) {
    int D = a->D, T = a->T, b = 0;
    if (a->offsets) while (a->offsets[b + 1] <= first) b++;  /* the item of row `first` */
    for (long r = first; r < last; r++) {
        int t = (int)(r % T);
        if (a->offsets) {  /* rows go up: the item changes at its end */
            while (a->offsets[b + 1] <= r) b++;
            t = (int)(r - a->offsets[b]);
            T = a->offsets[b + 1] - a->offsets[b];
        }
        const float *item = a->gated + (r - t) * D;  /* frame 0 of this row's item */
        float *y = a->act + r * D;
        for (int c = 0; c < D; c++) y[c] = 0.0f;
        for (int k = 0; k < a->taps; k++) {
            int s = t + k - a->left;
            if (s < 0 || s >= T) continue;
            const float *in = item + (long)s * D, *w = a->dw + (long)k * D;
            for (int c = 0; c < D; c++) y[c] += in[c] * w[c];
        }
        for (int c = 0; c < D; c++) {
            float v = (y[c] + a->dw_bias[c]) * a->scale[c] + a->shift[c];
            y[c] = v / (1.0f + exp_clamped(-v));
        }
    }
}

static void glu_range(const void *ctx, long first, long last) {
    const convolution_t *a = (const convolution_t *)ctx;
    glu_rows(a->hidden, a->gated, a->padded, first, last, a->D);
}

static void depthwise_range(const void *ctx, long first, long last) {
    depthwise_rows((const convolution_t *)ctx, first, last);
}

static void bias_rows(float *out, const float *bias, long rows, int D) {
    for (long r = 0; r < rows; r++) memcpy(out + r * D, bias, sizeof(float) * D);
}

int conformer_convolution(const convolution_t *a) {
    long rows = a->offsets ? a->offsets[a->B] : (long)a->B * a->T;
    int D = a->D;
    if (a->b1) bias_rows(a->hidden, a->b1, rows, 2 * D);
    a->sgemm(ROW_MAJOR, NO_TRANS, TRANS, (int)rows, 2 * D, D, 1.0f, a->x, D, a->w1, D,
             a->b1 ? 1.0f : 0.0f, a->hidden, 2 * D);
    parallel_rows(glu_range, a, rows, a->threads);  /* every row gated before the taps read */
    parallel_rows(depthwise_range, a, rows, a->threads);
    if (a->b2) bias_rows(a->out, a->b2, rows, D);
    a->sgemm(ROW_MAJOR, NO_TRANS, TRANS, (int)rows, D, D, 1.0f, a->act, D, a->w2, D,
             a->b2 ? 1.0f : 0.0f, a->out, D);
    return 0;
}

/* ------------------------------------------------------------------ subsampling */

/* NeMo's dw_striding ConvSubsampling up to its output projection: a 3x3 stride-2
   convolution from one channel to C, ReLU, then per further stage a 3x3 stride-2 depthwise
   convolution, a pointwise one (sgemm) and ReLU; before every layer the frames at or past
   the item's current length are zero (NeMo's MaskedConvSequential). Work items are
   (item, `chunk` output frames): each computes the rows of every stage its frames read
   (their halo included) into its own scratch, so the first stage's output, the largest,
   never exists for a whole input, and items run on `threads` workers, each sgemm on one
   core. The output is each frame's (C, F_S) flattened channels-major, as NeMo flattens. */

typedef struct {
    sgemm_fn sgemm;
    int B, T, F;               /* items, feature frames, features */
    int C, stages;             /* channels, stride-2 stages (>= 1) */
    int before;                /* padding before each frame and bin (after: implied) */
    int chunk;                 /* output frames per work item */
    const float *x;            /* (B, T, F) */
    const int32_t *lengths;    /* (B, stages + 1): valid frames of the input and each stage */
    const int32_t *times;      /* (stages + 1): frames of the input and of each stage */
    const int32_t *freqs;      /* (stages + 1): bins of the input and of each stage */
    const float *w0, *b0;      /* first convolution: (9, C) taps-major, (C,) */
    const float *dw, *dw_bias; /* (stages - 1, 9, C), (stages - 1, C) */
    const float *pw, *pw_bias; /* (stages - 1, C, C) as (out, in), (stages - 1, C) */
    float *out;                /* (B, times[stages], C * freqs[stages]) */
    int threads;
} subsampling_t;

enum { MAX_STAGES = 8 };

static long sub_items(const subsampling_t *a) {
    return (long)a->B * ((a->times[a->stages] + a->chunk - 1) / a->chunk);
}

/* Stage 1 rows [lo, hi) of item b into y ((hi - lo), F1, C): ReLU(conv + bias), zero at or
   past the stage's length. */
CLONES static void first_stage(const subsampling_t *a, int b, int lo, int hi, float *y) {
    int C = a->C, T = a->T, F = a->F, F1 = a->freqs[1];
    int valid_in = a->lengths[(long)b * (a->stages + 1)];  /* a length past T reads no further */
    int valid = a->lengths[(long)b * (a->stages + 1) + 1];
    valid_in = valid_in < T ? valid_in : T;
    const float *x = a->x + (long)b * T * F;
    for (int t = lo; t < hi; t++) {
        float *row = y + (long)(t - lo) * F1 * C;
        if (t >= valid) {
            memset(row, 0, sizeof(float) * F1 * C);
            continue;
        }
        for (int f = 0; f < F1; f++) {
            float *acc = row + (long)f * C;
            for (int c = 0; c < C; c++) acc[c] = a->b0[c];
            for (int i = 0; i < 3; i++) {
                int s = 2 * t - a->before + i;
                if (s < 0 || s >= valid_in) continue;  /* padding, or a masked frame */
                for (int j = 0; j < 3; j++) {
                    int g = 2 * f - a->before + j;
                    if (g < 0 || g >= F) continue;
                    float v = x[(long)s * F + g];
                    const float *w = a->w0 + (i * 3 + j) * C;
                    for (int c = 0; c < C; c++) acc[c] += v * w[c];
                }
            }
            for (int c = 0; c < C; c++) acc[c] = acc[c] > 0.0f ? acc[c] : 0.0f;
        }
    }
}

/* Stage k >= 2, rows [lo, hi) into y, from the previous stage's rows [plo, phi) in prev:
   the depthwise taps and their bias (rows below the stage's length only), then the
   pointwise product, its bias and ReLU; rows at or past the length zero. */
CLONES static void depthwise_stage(const subsampling_t *a, int k, int b, int lo, int hi,
                                   const float *prev, int plo, int phi, float *y) {
    int C = a->C, Fp = a->freqs[k - 1], Fk = a->freqs[k];
    int valid = a->lengths[(long)b * (a->stages + 1) + k];
    const float *w = a->dw + (long)(k - 2) * 9 * C, *bias = a->dw_bias + (long)(k - 2) * C;
    int last = hi < valid ? hi : valid;
    for (int t = lo; t < last; t++) {
        for (int f = 0; f < Fk; f++) {
            float *acc = y + ((long)(t - lo) * Fk + f) * C;
            for (int c = 0; c < C; c++) acc[c] = bias[c];
            for (int i = 0; i < 3; i++) {
                int s = 2 * t - a->before + i;
                if (s < plo || s >= phi) continue;  /* padding (the range holds the rest) */
                for (int j = 0; j < 3; j++) {
                    int g = 2 * f - a->before + j;
                    if (g < 0 || g >= Fp) continue;
                    const float *in = prev + ((long)(s - plo) * Fp + g) * C;
                    const float *wt = w + (i * 3 + j) * C;
                    for (int c = 0; c < C; c++) acc[c] += in[c] * wt[c];
                }
            }
        }
    }
}

CLONES static void bias_relu_rows(float *y, const float *bias, long rows, int C, int relu) {
    for (long r = 0; r < rows; r++) {
        float *row = y + r * C;
        if (relu) {
            for (int c = 0; c < C; c++) row[c] = row[c] > 0.0f ? row[c] : 0.0f;
        } else {
            memcpy(row, bias, sizeof(float) * C);
        }
    }
}

/* One work item; scratch holds two stage buffers of `stage` floats each, then `mixed`
   (a stage's depthwise output, before its pointwise product). */
static void sub_item(const subsampling_t *a, long item, float *scratch, long stage, float *mixed) {
    int S = a->stages, C = a->C;
    int chunks = (a->times[S] + a->chunk - 1) / a->chunk;
    int b = (int)(item / chunks), o0 = (int)(item % chunks) * a->chunk;
    int o1 = o0 + a->chunk < a->times[S] ? o0 + a->chunk : a->times[S];
    int lo[MAX_STAGES + 1], hi[MAX_STAGES + 1];
    lo[S] = o0;
    hi[S] = o1;
    for (int k = S; k >= 1; k--) {  /* the rows stage k's rows read, within the stage */
        int l = 2 * lo[k] - a->before, h = 2 * (hi[k] - 1) - a->before + 3;
        lo[k - 1] = l < 0 ? 0 : l;
        hi[k - 1] = h > a->times[k - 1] ? a->times[k - 1] : h;
    }
    /* two buffers in turn: stage k's rows in one while stage k - 1's are read from the other */
    float *bufs[2] = {scratch, scratch + stage};
    first_stage(a, b, lo[1], hi[1], bufs[1]);
    for (int k = 2; k <= S; k++) {
        float *prev = bufs[(k - 1) & 1], *y = bufs[k & 1];
        depthwise_stage(a, k, b, lo[k], hi[k], prev, lo[k - 1], hi[k - 1], mixed);
        int valid = a->lengths[(long)b * (S + 1) + k];
        int last = hi[k] < valid ? hi[k] : valid;
        long rows = (long)(last > lo[k] ? last - lo[k] : 0) * a->freqs[k];
        long all = (long)(hi[k] - lo[k]) * a->freqs[k];
        const float *pw = a->pw + (long)(k - 2) * C * C, *pb = a->pw_bias + (long)(k - 2) * C;
        bias_relu_rows(y, pb, rows, C, 0);
        if (rows > 0)
            a->sgemm(ROW_MAJOR, NO_TRANS, TRANS, (int)rows, C, C, 1.0f, mixed, C, pw, C, 1.0f, y, C);
        bias_relu_rows(y, pb, rows, C, 1);
        memset(y + rows * C, 0, sizeof(float) * (all - rows) * C);
    }
    const float *z = bufs[S & 1];
    int FS = a->freqs[S];
    for (int t = o0; t < o1; t++) {  /* (F_S, C) -> (C, F_S) */
        const float *in = z + (long)(t - lo[S]) * FS * C;
        float *row = a->out + ((long)b * a->times[S] + t) * C * FS;
        for (int f = 0; f < FS; f++)
            for (int c = 0; c < C; c++) row[(long)c * FS + f] = in[(long)f * C + c];
    }
}

typedef struct {
    const subsampling_t *a;
    long stage;  /* floats of one stage buffer */
} sub_task_t;

static void sub_item_of(const void *ctx, long item, float *scratch) {
    const sub_task_t *task = (const sub_task_t *)ctx;
    sub_item(task->a, item, scratch, task->stage, scratch + 2 * task->stage);
}

/* 0 when done; -1 when no worker had scratch memory or the stages are too many. */
int conformer_subsampling(const subsampling_t *a) {
    if (a->stages < 1 || a->stages > MAX_STAGES) return -1;
    /* the most rows a stage's range can have: chunk frames' reach back through the stages;
       the first stage's buffer is the largest (each stage halves rows and bins) */
    long rows = a->chunk, stage = 0, mixed = 0;
    for (int k = a->stages; k >= 1; k--) {
        long size = rows * a->freqs[k] * a->C;
        stage = size > stage ? size : stage;
        if (k >= 2) mixed = size > mixed ? size : mixed;
        rows = 2 * rows + 1;
    }
    sub_task_t task = {a, stage};
    return parallel_items(sub_item_of, &task, sub_items(a), 2 * stage + mixed, a->threads);
}
