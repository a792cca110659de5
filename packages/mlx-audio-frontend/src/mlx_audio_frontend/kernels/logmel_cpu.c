/* NeMo's log-mel front end on the CPU in one native pass per block of frames.

   MLX's CPU backend runs the STFT and the elementwise passes around it on one thread per
   stream, each pass over the whole (frames, bins) spectrum in memory. Here each worker
   takes LANES frames of one item at a time and keeps them in cache from the samples to the
   log-mel: pre-emphasis and the length mask, the window, a real FFT, the magnitude raised
   to mag_power, the mel filters (each over the bins it touches), the log with NeMo's guard.
   The lanes are the innermost index of every loop, so the compiler vectorises across
   frames (x86-64-v4, v3 or baseline clones chosen at load on x86, NEON on arm64). Frames past an
   item's valid length are not computed: they are written as pad_value, as NeMo masks them.
   A second pass normalises each item over its valid frames (sums in double: exact for a
   constant feature, as the MLX path's shifted sums are), per feature or over all.

   The FFT: the n_fft real samples as n_fft / 2 complex ones (even, odd), a radix-2
   decimation-in-time FFT of that size (inputs loaded in bit-reversed order), then the
   split into the real transform's n_fft / 2 + 1 bins. Twiddles are computed in double. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__)
/* whole x86-64 levels: FMA comes with them (the FFT's butterflies 1.5x faster than with
   "avx512f" alone, GCC 12) */
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#elif defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

enum { LANES = 16, CHUNK = 32 };  /* frames per vector group; frames per work item */
enum { NORM_NONE = 0, NORM_PER_FEATURE = 1, NORM_ALL = 2, NORM_FIXED = 3 };

typedef struct {
    int B;                    /* items */
    long N;                   /* samples per row of audio */
    const float *audio;       /* (B, N) */
    const int32_t *lengths;   /* (B,) samples per item */
    const int32_t *valid;     /* (B,) valid frames per item */
    int T;                    /* frames out */
    long first_frame;         /* the first frame's index (a stream's later frames) */
    long origin;              /* the sample index of audio[b][0]; samples outside are zero */
    int n_fft, hop, pad;      /* padded position j holds sample j - pad */
    int exact_pad;            /* the length mask counts positions from the padded start */
    int preemph_on;
    float preemph;
    const float *window;      /* (n_fft,) */
    int n_bins, n_mels;
    const float *filterbank;  /* (n_bins, n_mels) */
    const int32_t *mel_lo, *mel_hi;  /* (n_mels,): the bins each filter touches */
    float mag_power;
    int log_on, guard_clamp;
    float guard;
    int normalize;
    const float *fixed_mean, *fixed_std;  /* (n_mels,), NORM_FIXED */
    float pad_value;
    float *out;               /* (B, T, n_mels) */
    int threads;
    const float *twiddle;     /* (re, im) of e^(-2 pi i k / (n_fft / 2)), k < n_fft / 2, then */
                              /* of e^(-2 pi i k / n_fft), k <= n_fft / 2 (the split) */
    const int32_t *reversed;  /* (n_fft / 2,) bit-reversed index */
} logmel_t;

/* log(x) for x > 0 (Cephes logf's polynomial); 0 gives -inf, as logf does. */
static inline float log_positive(float x) {
    float scaled = x < 1.17549435e-38f ? x * 8388608.0f : x;  /* subnormals: times 2^23 */
    union { float f; int32_t i; } bits = {.f = scaled};
    int32_t e = ((bits.i >> 23) & 0xff) - 126 - (x < 1.17549435e-38f ? 23 : 0);
    bits.i = (bits.i & 0x807fffff) | 0x3f000000;  /* mantissa in [0.5, 1) */
    float m = bits.f;
    int below = m < 0.707106781186547524f;
    e -= below;
    m = below ? m + m - 1.0f : m - 1.0f;
    float z = m * m;
    float y = ((((((((7.0376836292e-2f * m - 1.1514610310e-1f) * m + 1.1676998740e-1f) * m -
                    1.2420140846e-1f) * m + 1.4249322787e-1f) * m - 1.6668057665e-1f) * m +
                 2.0000714765e-1f) * m - 2.4999993993e-1f) * m + 3.3333331174e-1f) * m * z;
    float fe = (float)e;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    float r = m + y + 0.693359375f * fe;
    return x == 0.0f ? -INFINITY : r;
}

/* Samples of frame `t` of item `b`, pre-emphasised, masked and windowed (into `frame`),
   then into lane `lane` of the FFT's input (re, im: n_fft / 2 rows of LANES), even samples
   as real parts, odd as imaginary, in bit-reversed order. Sample j is audio[b][j - origin]. */
static void load_frame(const logmel_t *a, int b, long t, int lane, float *frame, float *re,
                       float *im) {
    const float *x = a->audio + (long)b * a->N - a->origin;  /* x[j]: sample j */
    const float *w = a->window;
    long first = t * a->hop - a->pad;  /* sample index of the frame's first position */
    long lo = a->origin, hi = a->origin + a->N;  /* the samples held */
    long length = a->lengths[b];
    long mask_shift = a->exact_pad ? a->pad : 0;  /* position = sample + mask_shift */
    int n = a->n_fft;
    float c = a->preemph;
    if (!a->preemph_on && first >= lo && first + n <= hi) {
        for (int i = 0; i < n; i++) frame[i] = x[first + i] * w[i];
    } else if (a->preemph_on && first - 1 >= lo && first + n <= hi &&
               first + n + mask_shift <= length) {
        for (int i = 0; i < n; i++) frame[i] = (x[first + i] - c * x[first + i - 1]) * w[i];
    } else {  /* the frame reaches past the audio or the item's length */
        for (int i = 0; i < n; i++) {
            long j = first + i;
            float cur = (j >= lo && j < hi) ? x[j] : 0.0f;
            if (a->preemph_on) {
                float prev = (j - 1 >= lo && j - 1 < hi) ? x[j - 1] : 0.0f;
                cur = (j + mask_shift < length) ? cur - c * prev : 0.0f;
            }
            frame[i] = cur * w[i];
        }
    }
    for (int k = 0; k < n / 2; k++) {
        int r = a->reversed[k];
        re[r * LANES + lane] = frame[2 * k];
        im[r * LANES + lane] = frame[2 * k + 1];
    }
}

/* LANES floats, one frame's value per lane: elementwise arithmetic in the vector unit.
   Rows of the scratch are 64-byte aligned (`frames_item`): 16 lanes fill an AVX-512
   register (the FFT ~8% faster than 8 lanes on AVX-512; other targets split them). */
typedef float lanes_t __attribute__((vector_size(LANES * sizeof(float))));

/* The complex FFT of n_fft / 2 points over LANES frames, inputs in bit-reversed order. */
CLONES static void fft_lanes(const logmel_t *a, lanes_t *re, lanes_t *im) {
    int n = a->n_fft / 2;
    const float *tw = a->twiddle;
    for (int size = 2; size <= n; size <<= 1) {
        int half = size / 2, step = n / size;
        for (int start = 0; start < n; start += size) {
            for (int k = 0; k < half; k++) {
                float wr = tw[2 * (k * step)], wi = tw[2 * (k * step) + 1];
                int i = start + k, j = i + half;
                lanes_t xr = re[j] * wr - im[j] * wi;
                lanes_t xi = re[j] * wi + im[j] * wr;
                re[j] = re[i] - xr;
                im[j] = im[i] - xi;
                re[i] += xr;
                im[i] += xi;
            }
        }
    }
}

/* The real transform's bins from the half-size complex FFT, their magnitudes raised to
   mag_power: power (n_bins rows of LANES). */
CLONES static void power_lanes(const logmel_t *a, const lanes_t *re, const lanes_t *im,
                               lanes_t *power) {
    int n = a->n_fft / 2;
    const float *split = a->twiddle + 2 * n;  /* e^(-2 pi i k / n_fft), k = 0 .. n */
    for (int k = 0; k <= n; k++) {
        int i = k == n ? 0 : k, j = k == 0 ? 0 : n - k;
        float wr = split[2 * k], wi = split[2 * k + 1];
        /* even part (Z[k] + conj Z[n-k]) / 2, odd part (Z[k] - conj Z[n-k]) / 2i */
        lanes_t er = 0.5f * (re[i] + re[j]), ei = 0.5f * (im[i] - im[j]);
        lanes_t odd_r = 0.5f * (im[i] + im[j]), odd_i = -0.5f * (re[i] - re[j]);
        lanes_t xr = er + (wr * odd_r - wi * odd_i);
        lanes_t xi = ei + (wr * odd_i + wi * odd_r);
        lanes_t squared = xr * xr + xi * xi, magnitude;
        for (int l = 0; l < LANES; l++) magnitude[l] = sqrtf(squared[l]);  /* NeMo's order: */
        if (a->mag_power == 2.0f) {                           /* magnitude, then power */
            magnitude = magnitude * magnitude;
        } else if (a->mag_power != 1.0f) {
            for (int l = 0; l < LANES; l++) magnitude[l] = powf(magnitude[l], a->mag_power);
        }
        power[k] = magnitude;
    }
}

/* Mel filters and log of LANES frames: mel (n_mels rows of LANES). */
CLONES static void mel_lanes(const logmel_t *a, const float *power, float *mel) {
    for (int m = 0; m < a->n_mels; m++) {
        float acc[LANES] = {0};
        for (int k = a->mel_lo[m]; k < a->mel_hi[m]; k++) {
            float w = a->filterbank[(long)k * a->n_mels + m];
            const float *p = power + (long)k * LANES;
            for (int l = 0; l < LANES; l++) acc[l] += p[l] * w;
        }
        float *out = mel + (long)m * LANES;
        if (!a->log_on) {
            for (int l = 0; l < LANES; l++) out[l] = acc[l];
        } else if (a->guard_clamp) {
            for (int l = 0; l < LANES; l++) out[l] = log_positive(fmaxf(acc[l], a->guard));
        } else {
            for (int l = 0; l < LANES; l++) out[l] = log_positive(acc[l] + a->guard);
        }
    }
}

/* Work item: CHUNK frames of one item. */
static void frames_item(const void *ctx, long item, float *scratch) {
    const logmel_t *a = (const logmel_t *)ctx;
    long chunks = (a->T + CHUNK - 1) / CHUNK;
    int b = (int)(item / chunks);
    long first = (item % chunks) * CHUNK;
    long last = first + CHUNK < a->T ? first + CHUNK : a->T;
    long valid = a->valid[b] - a->first_frame;  /* in out's frames */
    long live = valid < last ? valid : last;  /* frames [first, live) computed */
    int half = a->n_fft / 2;
    float *re = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);  /* 64-byte rows */
    float *im = re + (long)half * LANES, *power = im + (long)half * LANES;
    float *mel = power + (long)a->n_bins * LANES, *frame = mel + (long)a->n_mels * LANES;
    float *out = a->out + ((long)b * a->T) * a->n_mels;
    for (long t = first; t < live; t += LANES) {
        int lanes = live - t < LANES ? (int)(live - t) : LANES;
        if (lanes < LANES) memset(re, 0, sizeof(float) * (size_t)half * LANES * 2);
        for (int l = 0; l < lanes; l++) load_frame(a, b, a->first_frame + t + l, l, frame, re, im);
        fft_lanes(a, (lanes_t *)re, (lanes_t *)im);
        power_lanes(a, (const lanes_t *)re, (const lanes_t *)im, (lanes_t *)power);
        mel_lanes(a, power, mel);
        for (int l = 0; l < lanes; l++)
            for (int m = 0; m < a->n_mels; m++)
                out[(t + l) * a->n_mels + m] = mel[(long)m * LANES + l];
    }
    for (long t = live > first ? live : first; t < last; t++)
        for (int m = 0; m < a->n_mels; m++) out[t * a->n_mels + m] = a->pad_value;
}

/* Work items of the normalisation: (item, FEATURES features), or whole items over all
   features. */
enum { FEATURES = 16 };

static long normalize_items(const logmel_t *a) {
    return a->normalize == NORM_ALL ? a->B : (long)a->B * ((a->n_mels + FEATURES - 1) / FEATURES);
}

/* Work item: features [f0, f1) of one item normalised over its valid frames, NeMo's
   (x - mean) / (std + 1e-5) with the unbiased std (per feature, or over all features; a
   single frame's NaN std is 0 per feature, as NeMo sets it), or a fixed mean and std.
   Scratch: 6 n_mels floats. */
static void normalize_item(const void *ctx, long item, float *scratch) {
    const logmel_t *a = (const logmel_t *)ctx;
    int F = a->n_mels, all = a->normalize == NORM_ALL;
    long blocks = all ? 1 : (F + FEATURES - 1) / FEATURES;
    long b = item / blocks;
    int f0 = all ? 0 : (int)(item % blocks) * FEATURES;
    int f1 = all || f0 + FEATURES > F ? F : f0 + FEATURES;
    long valid = a->valid[b] - a->first_frame;  /* out's valid frames */
    valid = valid < 0 ? 0 : (valid > a->T ? a->T : valid);
    float *x = a->out + b * (long)a->T * F;
    double *sum = (double *)scratch, *squares = sum + F;
    float *mean = (float *)(squares + F), *denominator = mean + F;
    if (a->normalize == NORM_FIXED) {
        for (int f = f0; f < f1; f++) {
            mean[f] = a->fixed_mean[f];
            denominator[f] = a->fixed_std[f];
        }
    } else {
        double count = all ? (double)valid * F : (double)valid;
        for (int f = f0; f < f1; f++) sum[f] = squares[f] = 0.0;
        for (long t = 0; t < valid; t++)
            for (int f = f0; f < f1; f++) sum[f] += x[t * F + f];
        double total = 0.0;
        for (int f = f0; f < f1; f++) total += sum[f];
        for (int f = f0; f < f1; f++) mean[f] = (float)((all ? total : sum[f]) / count);
        for (long t = 0; t < valid; t++)
            for (int f = f0; f < f1; f++) {
                double d = (double)x[t * F + f] - (double)mean[f];
                squares[f] += d * d;
            }
        total = 0.0;
        for (int f = f0; f < f1; f++) total += squares[f];
        for (int f = f0; f < f1; f++) {
            float std = (float)sqrt((all ? total : squares[f]) / (count - 1.0));
            if (!all && isnan(std)) std = 0.0f;
            denominator[f] = std + 1e-5f;
        }
    }
    for (long t = 0; t < valid; t++)
        for (int f = f0; f < f1; f++) x[t * F + f] = (x[t * F + f] - mean[f]) / denominator[f];
}

/* 0 when done; -1 when no worker had memory for its frames (out not complete). */
int logmel_cpu(const logmel_t *a) {
    long scratch = (long)(a->n_fft + a->n_bins + a->n_mels) * LANES + a->n_fft + 16;
    long chunks = (a->T + CHUNK - 1) / CHUNK;
    int failed = parallel_items(frames_item, a, (long)a->B * chunks, scratch, a->threads);
    if (!failed && a->normalize != NORM_NONE)
        failed = parallel_items(normalize_item, a, normalize_items(a), 6L * a->n_mels, a->threads);
    return failed;
}
