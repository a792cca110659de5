/* A probe, not used by the product: how fast float32 products of a Conformer layer's shapes run
   on Intel AMX when each operand is split into bfloat16 parts (x = hi + mid [+ lo], each part
   rounded to nearest) and the parts' products summed in AMX's float32 tiles: 2 parts, 3
   products (hi*hi, hi*mid, mid*hi), or 3 parts, 6 products (float32's error). C (M x N) =
   A (M x K) W^T, W (N x K) as a Linear layer's weight; W split and packed once (as weights
   would be at load), A split per call (timed). Against the system OpenBLAS's cblas_sgemm on
   the same 2 threads, and both against a double-precision sum (error / sum |a b|).

     gcc -O2 -march=sapphirerapids benchmarks/amx_probe.c -o /tmp/amx_probe \
         /usr/lib/x86_64-linux-gnu/libopenblas.so.0 -lpthread -lm
     /tmp/amx_probe 2606 4096 1024 2      # M N K parts

   Naive blocking (2 x 2 tiles of 16 x 16, 256 rows of A per block), no remainder in K
   (a multiple of 32), two threads over N. Needs Linux's arch_prctl permission for AMX. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
enum { CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 };
void cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);

typedef struct { uint8_t palette, start; uint8_t res[14]; uint16_t colsb[16]; uint8_t rows[16]; } cfg_t;
static inline uint16_t bf16_rne(float x) { uint32_t u; memcpy(&u, &x, 4); u += 0x7fff + ((u >> 16) & 1); return u >> 16; }
static inline float bf16_f(uint16_t h) { uint32_t u = (uint32_t)h << 16; float x; memcpy(&x, &u, 4); return x; }
static void split(float x, int parts, uint16_t *out) { for (int p = 0; p < parts; p++) { uint16_t h = bf16_rne(x); out[p] = h; x -= bf16_f(h); } }

/* W (N x K) -> parts of VNNI tiles: [nb][kb][16 kpairs][16 n][2] per part, N, K padded to 16/32 */
static uint16_t *pack_w(const float *W, int N, int K, int parts, int Np, int Kp) {
  uint16_t *P = aligned_alloc(64, (size_t)parts * Np * Kp * 2);
  memset(P, 0, (size_t)parts * Np * Kp * 2);
  size_t part = (size_t)Np * Kp;
  for (int n = 0; n < N; n++) for (int k = 0; k < K; k++) {
    uint16_t s[3]; split(W[(size_t)n * K + k], parts, s);
    size_t idx = (((size_t)(n / 16) * (Kp / 32) + k / 32) * 512) + ((k % 32) / 2) * 32 + (n % 16) * 2 + (k % 2);
    for (int p = 0; p < parts; p++) P[p * part + idx] = s[p];
  }
  return P;
}
/* A (M x K) -> parts, row-major (Mp x Kp); K a multiple of 16 here */
static void pack_a(const float *A, int M, int K, int parts, int Mp, int Kp, uint16_t *P, int m0, int m1) {
  size_t part = (size_t)Mp * Kp;
  for (int m = m0; m < m1; m++) {
    for (int k = 0; k < Kp; k += 16) {
      __m512 x = (m < M && k < K) ? _mm512_loadu_ps(A + (size_t)m * K + k) : _mm512_setzero_ps();
      for (int p = 0; p < parts; p++) {
        __m256bh h = _mm512_cvtneps_pbh(x);
        _mm256_storeu_si256((__m256i *)(P + p * part + (size_t)m * Kp + k), (__m256i)h);
        __m512 back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16));
        x = _mm512_sub_ps(x, back);
      }
    }
  }
}
static const int PAIRS3[][2] = {{0,0},{0,1},{1,0}};
static const int PAIRS6[][2] = {{0,0},{0,1},{1,0},{0,2},{1,1},{2,0}};
typedef struct { const uint16_t *Ap, *Wp; float *C; int M, N, Mp, Np, Kp, parts, npairs, n0, n1; } job_t;
static void *work(void *arg) {
  job_t *j = arg;
  cfg_t c; memset(&c, 0, sizeof c); c.palette = 1;
  for (int i = 0; i < 8; i++) { c.rows[i] = 16; c.colsb[i] = 64; }
  _tile_loadconfig(&c);
  const int (*pairs)[2] = j->parts == 2 ? PAIRS3 : PAIRS6;
  size_t apart = (size_t)j->Mp * j->Kp, wpart = (size_t)j->Np * j->Kp;
  int kbs = j->Kp / 32;
  float tmp[16 * 16];
  const int MB = 16;  /* m tiles per block: 256 rows of A parts stay in L2 */
  for (int mb0 = 0; mb0 < j->Mp / 16; mb0 += MB) {
  int mb1 = mb0 + MB < j->Mp / 16 ? mb0 + MB : j->Mp / 16;
  for (int nb = j->n0; nb < j->n1; nb += 2) {
    for (int mb = mb0; mb < mb1; mb += 2) {
      _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
      for (int kb = 0; kb < kbs; kb++) {
        int last_a = -1;
        for (int q = 0; q < j->npairs; q++) {
          int pa = pairs[q][0], pb = pairs[q][1];
          if (pa != last_a) {
            const uint16_t *a = j->Ap + pa * apart + (size_t)mb * 16 * j->Kp + kb * 32;
            _tile_loadd(4, a, j->Kp * 2); _tile_loadd(5, a + 16 * j->Kp, j->Kp * 2); last_a = pa;
          }
          const uint16_t *w = j->Wp + pb * wpart + ((size_t)nb * kbs + kb) * 512;
          _tile_loadd(6, w, 64); _tile_loadd(7, w + (size_t)kbs * 512, 64);
          _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(2, 5, 6); _tile_dpbf16ps(3, 5, 7);
        }
      }
      for (int t = 0; t < 4; t++) {
        int m = (mb + t / 2) * 16, n = (nb + t % 2) * 16;
        if (t == 0) _tile_stored(0, tmp, 64); else if (t == 1) _tile_stored(1, tmp, 64); else if (t == 2) _tile_stored(2, tmp, 64); else _tile_stored(3, tmp, 64);
        for (int r = 0; r < 16 && m + r < j->M; r++) {
          int w = j->N - n < 16 ? j->N - n : 16;
          if (w > 0) memcpy(j->C + (size_t)(m + r) * j->N + n, tmp + r * 16, w * 4);
        }
      }
    }
  }
  }
  _tile_release();
  return NULL;
}
typedef struct { const float *A; int M, K, parts, Mp, Kp; uint16_t *P; int m0, m1; } pjob_t;
static void *pwork(void *arg) { pjob_t *p = arg; pack_a(p->A, p->M, p->K, p->parts, p->Mp, p->Kp, p->P, p->m0, p->m1); return NULL; }

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
  int M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]), parts = atoi(argv[4]);
  if (syscall(SYS_arch_prctl, 0x1023, 18)) { printf("no AMX\n"); return 1; }
  int Mp = (M + 31) / 32 * 32, Np = (N + 31) / 32 * 32, Kp = (K + 31) / 32 * 32;
  float *A = malloc((size_t)M * K * 4), *W = malloc((size_t)N * K * 4), *C = malloc((size_t)M * N * 4), *R = malloc((size_t)M * N * 4);
  srand(1); for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (rand() / (float)RAND_MAX - 0.5f);
  for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (rand() / (float)RAND_MAX - 0.5f) * 0.05f;
  uint16_t *Wp = pack_w(W, N, K, parts, Np, Kp);
  uint16_t *Ap = aligned_alloc(64, (size_t)parts * Mp * Kp * 2);
  int npairs = parts == 2 ? 3 : 6;
  double best = 1e9, bestb = 1e9, bestp = 1e9;
  for (int rep = 0; rep < 7; rep++) {
    double s = now();
    pthread_t th[2]; pjob_t pj[2];
    for (int t = 0; t < 2; t++) { pj[t] = (pjob_t){A, M, K, parts, Mp, Kp, Ap, t * Mp / 2, (t + 1) * Mp / 2}; pthread_create(&th[t], 0, pwork, &pj[t]); }
    for (int t = 0; t < 2; t++) pthread_join(th[t], 0);
    double pk = now() - s; if (pk < bestp) bestp = pk;
    job_t jb[2]; int nbs = Np / 16;
    for (int t = 0; t < 2; t++) { jb[t] = (job_t){Ap, Wp, C, M, N, Mp, Np, Kp, parts, npairs, (t * nbs / 2) / 2 * 2, t ? nbs : (nbs / 2) / 2 * 2}; pthread_create(&th[t], 0, work, &jb[t]); }
    for (int t = 0; t < 2; t++) pthread_join(th[t], 0);
    double e = now() - s; if (e < best) best = e;
    s = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 0.0f, R, N);
    e = now() - s; if (e < bestb) bestb = e;
  }
  /* accuracy vs double */
  double maxrel_amx = 0, maxrel_blas = 0;
  for (int i = 0; i < M; i += 7) for (int n = 0; n < N; n += 5) {
    double ref = 0, mag = 0; for (int k = 0; k < K; k++) { ref += (double)A[(size_t)i * K + k] * W[(size_t)n * K + k]; mag += fabs((double)A[(size_t)i * K + k] * W[(size_t)n * K + k]); }
    double ea = fabs(C[(size_t)i * N + n] - ref) / mag, eb = fabs(R[(size_t)i * N + n] - ref) / mag;
    if (ea > maxrel_amx) maxrel_amx = ea;
    if (eb > maxrel_blas) maxrel_blas = eb;
  }
  double fl = 2.0 * M * N * K;
  printf("pack A %.2f ms; ", bestp * 1e3); printf("M=%d N=%d K=%d parts=%d: amx %.2f ms (%.0f GFLOP/s), openblas %.2f ms (%.0f GFLOP/s), %.2fx; max err/sum|ab|: amx %.2e blas %.2e\n",
         M, N, K, parts, best * 1e3, fl / best / 1e9, bestb * 1e3, fl / bestb / 1e9, bestb / best, maxrel_amx, maxrel_blas);
  return 0;
}
