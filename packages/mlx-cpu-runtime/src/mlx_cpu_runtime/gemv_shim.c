/* cblas_sgemm in front of the system BLAS (mlx_cpu_runtime/gemv.py builds and loads it):
   row-major products with one row or one column (a batch-1 decoder step) go to the BLAS's
   sgemv, which reads the matrix once; everything else goes to its sgemm unchanged.
   CBLAS enums: 101 row-major, 111 no transpose, 112 transpose. */
#include <stddef.h>
typedef void (*sgemm_t)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
typedef void (*sgemv_t)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
static sgemm_t real_sgemm;
static sgemv_t real_sgemv;
enum { ROW = 101, NO = 111, TRANS = 112 };

void mlx_cpu_runtime_gemv_init(void* sgemm, void* sgemv) {
  real_sgemm = (sgemm_t)sgemm;
  real_sgemv = (sgemv_t)sgemv;
}

/* beta = 0 must not read C (it may hold anything); some BLAS versions scale it by 0. */
static void clear(float* c, int n, int inc) {
  for (int i = 0; i < n; ++i) c[(size_t)i * inc] = 0.0f;
}

void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  /* C (1 x N) = alpha op(A) (1 x K) op(B) (K x N) + beta C: y = op(B)^T x */
  if (order == ROW && k > 0 && m == 1 && n > 1) {
    if (beta == 0.0f) clear(c, n, 1);
    const int inc = ta == NO ? 1 : lda;
    if (tb == NO) real_sgemv(ROW, TRANS, k, n, alpha, b, ldb, a, inc, beta, c, 1);
    else real_sgemv(ROW, NO, n, k, alpha, b, ldb, a, inc, beta, c, 1);
    return;
  }
  /* C (M x 1) = alpha op(A) (M x K) op(B) (K x 1) + beta C: y = op(A) x */
  if (order == ROW && k > 0 && n == 1 && m > 1) {
    if (beta == 0.0f) clear(c, m, ldc);
    const int inc = tb == NO ? ldb : 1;
    if (ta == NO) real_sgemv(ROW, NO, m, k, alpha, a, lda, b, inc, beta, c, ldc);
    else real_sgemv(ROW, TRANS, k, m, alpha, a, lda, b, inc, beta, c, ldc);
    return;
  }
  real_sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
