/* A work pool for this project's native kernels: `parallel_items` runs a function over
   numbered work items on a given number of threads (the calling thread one of them), each
   thread taking the next item from a shared counter; `parallel_rows` splits a row range
   into one equal part per thread. Prepended to a package's C source by
   `mlx_cpu_runtime.native.load(..., pool=True)`, so that every kernel shares this one copy.
   Threads are made per call: a call's work is milliseconds, a thread's start microseconds. */

#include <pthread.h>
#include <stdlib.h>

typedef void (*item_fn)(const void *ctx, long item, float *scratch);

typedef struct {
    item_fn fn;
    const void *ctx;
    long items, scratch;
    long *next;  /* the next work item, shared */
} queue_t;

static void *drain(void *arg) {
    const queue_t *q = (const queue_t *)arg;
    float *scratch = q->scratch > 0 ? (float *)malloc(sizeof(float) * q->scratch) : NULL;
    if (q->scratch > 0 && scratch == NULL) return NULL;  /* the others take its share */
    for (;;) {
        long item = __atomic_fetch_add(q->next, 1, __ATOMIC_RELAXED);
        if (item >= q->items) break;
        q->fn(q->ctx, item, scratch);
    }
    free(scratch);
    return NULL;
}

/* fn over items [0, items) on `threads` workers (the calling thread one of them), each
   taking the next item from a shared counter (items of unequal cost balance themselves)
   with its own `scratch` floats (none when 0). 0 when every item ran; -1 when no worker
   had its scratch. */
static int parallel_items(item_fn fn, const void *ctx, long items, long scratch, int threads) {
    enum { MAX_THREADS = 64 };
    threads = threads < 1 ? 1 : (threads > MAX_THREADS ? MAX_THREADS : threads);
    long next = 0;
    queue_t queue = {fn, ctx, items, scratch, &next};
    pthread_t ids[MAX_THREADS];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&ids[t], NULL, drain, &queue) != 0) break;
        started = t;
    }
    drain(&queue);
    for (int t = 1; t <= started; t++) pthread_join(ids[t], NULL);
    return next >= items ? 0 : -1;
}

/* ------------------------------------------------------------------ row ranges */

typedef void (*rows_fn)(const void *ctx, long first, long last);

typedef struct {
    rows_fn fn;
    const void *ctx;
    long rows;
    int parts;
} ranges_t;

static void range_item(const void *ctx, long item, float *scratch) {
    const ranges_t *r = (const ranges_t *)ctx;
    (void)scratch;
    r->fn(r->ctx, r->rows * item / r->parts, r->rows * (item + 1) / r->parts);
}

/* fn over rows [0, rows) in `threads` equal ranges, one per worker of `parallel_items`
   (needing no scratch, it always runs them all: a thread that cannot start leaves its
   range to the others). */
static void parallel_rows(rows_fn fn, const void *ctx, long rows, int threads) {
    if (threads < 1) threads = 1;
    if (threads > rows) threads = rows < 1 ? 1 : (int)rows;
    ranges_t ranges = {fn, ctx, rows, threads};
    parallel_items(range_item, &ranges, threads, 0, threads);
}

