/* Greedy RNNT / TDT decoding (NeMo's label looping) as one native loop on the CPU; built and
   loaded by cpu_greedy.py. The decisions are greedy.py's (and greedy_reference.py's): the
   products go to the system BLAS (sgemv for one row, sgemm for several), everything else is
   a plain loop, so a step never returns to Python or MLX. `CLONES` and `exp_clamped` come
   from mlx-cpu-runtime's vector_math.c, compiled in front of this file.

   Per outer step, as NeMo's label looping: every utterance still inside its length searches
   for its next token (the joint rows of all searching utterances as one product; a blank
   moves on by its duration and searches again), then the utterances that found one emit it
   and step the prediction network together (one product per LSTM matrix over them). One
   record row per outer step: an utterance emits at most once in it.

   Utterances never interact (a batch only shares products), so a batch is split into one
   group per thread (the work pool's `parallel_items`), the groups balanced by the frames
   they have left, each group looping on its own core with the BLAS held to one thread by
   the caller: the loop's per-row work (activations, argmaxes, the LSTM cells, the small
   products) is most of its time, so a group per core takes ~40% off a batch of 16 on two.
   CBLAS enums: 101 row-major, 111 no transpose, 112 transpose. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_t)(int, int, int, int, int, int, float, const float*, int, const float*,
                        int, float, float*, int);
typedef void (*sgemv_t)(int, int, int, int, float, const float*, int, const float*, int, float,
                        float*, int);
enum { ROW = 101, NO = 111, TRANS = 112, MAX_LAYERS = 16 };

/* The weights (float32, row-major, as the MLX parameters): cpu_greedy.Model mirrors it. */
typedef struct {
  sgemm_t sgemm;
  sgemv_t sgemv;
  int P, J, L, O, blank, tdt, maxsym, act, ndur;
  const float* table;             /* (V + 1, 4P): layer 0's bias + embedding Wx^T per label */
  const float* wx[MAX_LAYERS];    /* (4P, P) each; layer 0's unused (the table) */
  const float* wh[MAX_LAYERS];    /* (4P, P) each */
  const float* bias[MAX_LAYERS];  /* (4P) each; layer 0's unused (in the table) */
  const float *wp, *bp;           /* (J, P), (J): the joint's predictor projection */
  const float *wo, *bo;           /* (O, J), (O): the joint's output layer */
  const int* durations;           /* (ndur) */
} model_t;

/* One call: encoder frames, lengths, the state (changed in place) and the records. */
typedef struct {
  const float* enc; /* (B, T, J): the joint's encoder projection */
  const int* lengths;
  int B, T;
  float *g, *h, *c;      /* (B, J), (L, B, P), (L, B, P) */
  int *t, *last, *rep;   /* (B) each: frame, frame of the last token, tokens on it in a row */
  int capacity;          /* record rows available: the most outer steps to run */
  int* rec;              /* (capacity, B, 4): emit, label, frame, duration */
  float* lp;             /* (capacity, B): the emitted token's log-probability */
  int threads;           /* groups to run at once (1: the calling thread alone) */
} run_t;

/* y (n, rows) = y + x (n, k) w^T, w (rows, k); y preset (to a bias or gates) by the caller.
   Up to GEMV_ROWS rows one sgemv each: OpenBLAS's sgemm packs w first, which cost as much
   as ~4 sgemv calls on a (2560, 640) matrix here (378 us for 2 rows against 2 x 122 us). */
enum { GEMV_ROWS = 3 };
static void product(const model_t* m, int n, int rows, int k, const float* x, const float* w,
                    float* y) {
  if (n <= GEMV_ROWS) {
    for (int i = 0; i < n; ++i)
      m->sgemv(ROW, NO, rows, k, 1.0f, w, k, x + (size_t)i * k, 1, 1.0f, y + (size_t)i * rows, 1);
  } else {
    m->sgemm(ROW, NO, TRANS, n, rows, k, 1.0f, x, k, w, k, 1.0f, y, rows);
  }
}

static void preset(float* y, const float* bias, int n, int rows) {
  for (int i = 0; i < n; ++i) memcpy(y + (size_t)i * rows, bias, sizeof(float) * rows);
}

/* sigmoid and tanh through exp_clamped (vector_math.c), so that loops over them vectorise;
   tanh as 1 - 2 / (exp(2x) + 1), to float32's absolute precision. */
static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_clamped(-x)); }
static inline float tanh_fast(float x) { return 1.0f - 2.0f / (exp_clamped(2.0f * x) + 1.0f); }

static float activate(int act, float x) {
  if (act == 0) return x > 0.0f ? x : 0.0f;
  if (act == 1) return tanh_fast(x);
  return sigmoid(x);
}

/* The first index of the largest of n values (argmax's tie rule). */
static int argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

/* log-softmax of the top value among n (tokens and blank): -log(sum exp(v - top)) */
static float top_logprob(const float* v, int n, float top) {
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += expf(v[i] - top);
  return (float)-log(sum);
}

/* One utterance's LSTM cell from its gates (input, forget, cell, output; PyTorch's order),
   c and h updated in place: one vectorised loop over the P units. */
CLONES static void lstm_cell(const float* gt, float* c, float* h, int P) {
  for (int k = 0; k < P; ++k) {
    const float cn = sigmoid(gt[P + k]) * c[k] + sigmoid(gt[k]) * tanh_fast(gt[2 * P + k]);
    c[k] = cn;
    h[k] = sigmoid(gt[3 * P + k]) * tanh_fast(cn);
  }
}

typedef struct {
  float *hid, *logits, *gates, *x, *hb, *gout;
  int *search, *found, *label, *dur;
} scratch_t;

/* The prediction network's step for the n utterances in `found` with labels `label`: the
   LSTM layers in turn (gates of all n as one product per matrix), then g = Wp h + bp. */
static void predict(const model_t* m, const run_t* r, scratch_t* s, int n) {
  const int P = m->P, B = r->B, G = 4 * P;
  for (int l = 0; l < m->L; ++l) {
    if (l == 0) {
      for (int i = 0; i < n; ++i)
        memcpy(s->gates + (size_t)i * G, m->table + (size_t)s->label[i] * G, sizeof(float) * G);
    } else {
      preset(s->gates, m->bias[l], n, G);
      product(m, n, G, P, s->x, m->wx[l], s->gates);
    }
    for (int i = 0; i < n; ++i)
      memcpy(s->hb + (size_t)i * P, r->h + ((size_t)l * B + s->found[i]) * P, sizeof(float) * P);
    product(m, n, G, P, s->hb, m->wh[l], s->gates);
    for (int i = 0; i < n; ++i) {
      const float* gt = s->gates + (size_t)i * G;
      float* c = r->c + ((size_t)l * B + s->found[i]) * P;
      float* h = r->h + ((size_t)l * B + s->found[i]) * P;
      lstm_cell(gt, c, h, P);
      memcpy(s->x + (size_t)i * P, h, sizeof(float) * P);
    }
  }
  preset(s->gout, m->bp, n, m->J);
  product(m, n, m->J, P, s->x, m->wp, s->gout);
  for (int i = 0; i < n; ++i)
    memcpy(r->g + (size_t)s->found[i] * m->J, s->gout + (size_t)i * m->J, sizeof(float) * m->J);
}

/* The token and duration decided from one joint row; the duration of a blank at least 1. */
static int decide(const model_t* m, const float* row, int* duration) {
  const int label = argmax(row, m->blank + 1);
  const int blank = label == m->blank;
  if (m->tdt) {
    *duration = m->durations[argmax(row + m->blank + 1, m->ndur)];
    if (blank && *duration == 0) *duration = 1;
  } else {
    *duration = blank ? 1 : 0;
  }
  return label;
}

/* The inner search: every utterance inside its length moves over blanks until it finds a
   token (appended to s->found with its label, duration and log-probability in lp) or its
   end. Returns how many found one. */
static int search(const model_t* m, const run_t* r, const int* members, int count,
                  scratch_t* s, float* lp) {
  const int J = m->J, O = m->O;
  int n = 0, nfound = 0;
  for (int j = 0; j < count; ++j)
    if (r->t[members[j]] < r->lengths[members[j]]) s->search[n++] = members[j];
  while (n > 0) {
    for (int i = 0; i < n; ++i) {
      const int b = s->search[i];
      const float* f = r->enc + ((size_t)b * r->T + r->t[b]) * J;
      const float* g = r->g + (size_t)b * J;
      float* hid = s->hid + (size_t)i * J;
      for (int k = 0; k < J; ++k) hid[k] = activate(m->act, f[k] + g[k]);
    }
    preset(s->logits, m->bo, n, O);
    product(m, n, O, J, s->hid, m->wo, s->logits);
    int still = 0;
    for (int i = 0; i < n; ++i) {
      const int b = s->search[i];
      const float* row = s->logits + (size_t)i * O;
      int duration;
      const int label = decide(m, row, &duration);
      if (label == m->blank) {
        r->t[b] += duration;
        if (r->t[b] < r->lengths[b]) s->search[still++] = b;
        continue;
      }
      s->found[nfound] = b;
      s->label[nfound] = label;
      s->dur[nfound] = duration;
      lp[b] = top_logprob(row, m->blank + 1, row[label]);
      nfound += 1;
    }
    n = still;
  }
  return nfound;
}

/* The past-end record (no token, blank, the frame reached) of `members` in rows
   [from, to): what a step writes for an utterance that no longer searches. */
static void past_end(const model_t* m, const run_t* r, const int* members, int count, int from,
                     int to) {
  for (int step = from; step < to; ++step)
    for (int j = 0; j < count; ++j) {
      const int b = members[j];
      int* out = r->rec + ((size_t)step * r->B + b) * 4;
      out[0] = 0;
      out[1] = m->blank;
      out[2] = r->t[b];
      out[3] = 0;
      r->lp[(size_t)step * r->B + b] = 0.0f;
    }
}

/* Runs outer steps for the utterances `members` until each is past its length or the
   records are full; returns the steps run. -1: out of memory. */
static int run_group(const model_t* m, run_t* r, const int* members, int count) {
  const int P = m->P, J = m->J, B = count;
  if (count == 0) return 0;
  scratch_t s;
  s.hid = malloc(sizeof(float) * ((size_t)B * J + (size_t)B * m->O + (size_t)B * 4 * P +
                                  (size_t)2 * B * P + (size_t)B * J));
  s.search = malloc(sizeof(int) * 4 * (size_t)B);
  if (!s.hid || !s.search) {
    free(s.hid);
    free(s.search);
    return -1;
  }
  s.logits = s.hid + (size_t)B * J;
  s.gates = s.logits + (size_t)B * m->O;
  s.x = s.gates + (size_t)B * 4 * P;
  s.hb = s.x + (size_t)B * P;
  s.gout = s.hb + (size_t)B * P;
  s.found = s.search + B;
  s.label = s.found + B;
  s.dur = s.label + B;
  int steps = 0;
  while (steps < r->capacity) {
    int* rec = r->rec + (size_t)steps * r->B * 4;
    float* lp = r->lp + (size_t)steps * r->B;
    past_end(m, r, members, count, steps, steps + 1); /* until one is found */
    const int n = search(m, r, members, count, &s, lp);
    for (int j = 0; j < count; ++j) rec[4 * members[j] + 2] = r->t[members[j]];
    if (n == 0) break; /* every utterance is past its end */
    for (int i = 0; i < n; ++i) {
      const int b = s.found[i], frame = r->t[b];
      int* out = rec + 4 * b;
      out[0] = 1;
      out[1] = s.label[i];
      out[3] = s.dur[i];
      int next = frame + s.dur[i];
      r->rep[b] = r->last[b] == frame ? r->rep[b] + 1 : 1;
      r->last[b] = frame;
      /* NeMo's forced blank after max_symbols tokens on one frame */
      if (m->maxsym >= 0 && next < r->lengths[b] && r->rep[b] >= m->maxsym && next == frame)
        next += 1;
      r->t[b] = next;
    }
    predict(m, r, &s, n);
    steps += 1;
  }
  free(s.hid);
  free(s.search);
  return steps;
}

typedef struct {
  const model_t* m;
  run_t* r;
  const int* members; /* group g's utterances: members[first[g]] ... members[first[g + 1] - 1] */
  const int* first;
  int* steps;         /* each group's steps (-1: out of memory) */
} split_t;

static void group_item(const void* ctx, long g, float* scratch) {
  const split_t* split = (const split_t*)ctx;
  (void)scratch;
  split->steps[g] = run_group(split->m, split->r, split->members + split->first[g],
                              split->first[g + 1] - split->first[g]);
}

/* Runs outer steps until every utterance is past its length or the records are full, the
   batch in r->threads groups at once; returns the steps run (the longest group's; the
   others' utterances have past-end records after their own). -1: out of memory. */
enum { MAX_GROUPS = 64 };
int transducer_greedy_run(const model_t* m, run_t* r) {
  const int B = r->B;
  int groups = r->threads < B ? r->threads : B;
  groups = groups < 1 ? 1 : (groups > MAX_GROUPS ? MAX_GROUPS : groups);
  int* order = malloc(sizeof(int) * (4 * (size_t)B + 2 * (size_t)groups + 1));
  if (!order) return -1;
  int *group_of = order + B, *members = group_of + B, *load = members + B;
  int *first = load + B, *steps = first + groups + 1;
  /* Longest remaining first, each to the group with the fewest frames so far (ties: the
     lowest index), then each group's members in batch order. */
  for (int b = 0; b < B; ++b) {
    order[b] = b;
    load[b] = r->t[b] < r->lengths[b] ? r->lengths[b] - r->t[b] : 0;
  }
  for (int i = 1; i < B; ++i)
    for (int j = i; j > 0 && load[order[j]] > load[order[j - 1]]; --j) {
      const int swap = order[j];
      order[j] = order[j - 1];
      order[j - 1] = swap;
    }
  long totals[MAX_GROUPS] = {0};
  for (int i = 0; i < B; ++i) {
    int best = 0;
    for (int g = 1; g < groups; ++g)
      if (totals[g] < totals[best]) best = g;
    group_of[order[i]] = best;
    totals[best] += load[order[i]];
  }
  first[0] = 0;
  for (int g = 0; g < groups; ++g) {
    int count = 0;
    for (int b = 0; b < B; ++b)
      if (group_of[b] == g) members[first[g] + count++] = b;
    first[g + 1] = first[g] + count;
  }
  split_t split = {m, r, members, first, steps};
  if (groups == 1)
    group_item(&split, 0, NULL);
  else
    parallel_items(group_item, &split, groups, 0, groups);
  int most = 0, failed = 0;
  for (int g = 0; g < groups; ++g) {
    failed |= steps[g] < 0;
    if (steps[g] > most) most = steps[g];
  }
  for (int g = 0; g < groups && !failed; ++g)
    past_end(m, r, members + first[g], first[g + 1] - first[g], steps[g], most);
  free(order);
  return failed ? -1 : most;
}
