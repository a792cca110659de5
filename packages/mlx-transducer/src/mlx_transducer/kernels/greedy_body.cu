// The body of the greedy transducer kernel: mx.fast.cuda_kernel generates the signature
// (inputs, their shapes where used, outputs) and the template constants around it.
// Inputs: enc (B, T, J), lengths (B,), emb (V+1, P), wx / wh (L, 4P, P), bias (L, 4P),
// wp (J, P), bp (J,), wo (O, J), bo (O,), durations (D,), g0 (B, J), h0 / c0 (L, B, P),
// t0 / last0 / rep0 (B,), limit (1,): the most steps to run.
// Outputs: rec (S, B, 4) = emit, label, frame, duration; lp (S, B); g (B, J); h, hn, c
// (L, B, P); tstate (B, 3) = t, last frame, repeats; nsteps (1,); part (2, NB, B, 5);
// sync (64,). Template constants: T, P, J, L, O, D, BLANK, TDT, MAXSYM (-1: none), ACT.
  const int B = lengths_shape[0];
  const int TT = enc_shape[1];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int nwarps = blockDim.x >> 5;
  const int gwarp = blockIdx.x * nwarps + warp;
  const int total_warps = gridDim.x * nwarps;
  const int gthread = blockIdx.x * blockDim.x + tid;
  const int total_threads = gridDim.x * blockDim.x;
  unsigned int generation = 0;

  extern __shared__ float hid[];  // (B, J): the joint's hidden layer, per utterance
  __shared__ int s_t[64], s_last[64], s_rep[64], s_len[64], s_emit[64], s_label[64];
  __shared__ Partial s_part[8][64];
  __shared__ Partial s_best[64];
  __shared__ int s_flag;

  for (int b = tid; b < B; b += blockDim.x) {
    s_t[b] = t0[b];
    s_last[b] = last0[b];
    s_rep[b] = rep0[b];
    s_len[b] = lengths[b];
  }
  for (int i = gthread; i < B * J; i += total_threads) g[i] = static_cast<float>(g0[i]);
  for (int i = gthread; i < L * B * P; i += total_threads) {
    h[i] = static_cast<float>(h0[i]);
    c[i] = static_cast<float>(c0[i]);
  }
  grid_barrier(sync, generation);

  const int most = limit[0];
  int step = 0;
  while (step < most) {
    __syncthreads();
    if (tid == 0) {
      int going = 0;
      for (int b = 0; b < B; ++b) going |= (s_t[b] < s_len[b]);
      s_flag = going;
    }
    __syncthreads();
    if (!s_flag) break;

    // The joint: relu(f[t] + g) for every utterance still going, then rows of the output
    // layer shared out warp by warp over the grid.
    for (int i = tid; i < B * J; i += blockDim.x) {
      const int b = i / J, k = i - b * J;
      if (s_t[b] < s_len[b]) {
        const float f = static_cast<float>(enc[((size_t)b * TT + s_t[b]) * J + k]);
        hid[i] = activate<ACT>(f + __ldcg(g + i));
      }
    }
    if (lane == 0) {
      for (int b = 0; b < B; ++b) s_part[warp][b] = Partial{-INFINITY, 0x7fffffff, 0.0f, -INFINITY, 0x7fffffff};
    }
    __syncthreads();
    for (int r = gwarp; r < O; r += total_warps) {
      const T* w = wo + (size_t)r * J;
      const float bias_r = static_cast<float>(bo[r]);
      for (int b0 = 0; b0 < B; b0 += 4) {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int k = lane; k < J; k += 32) {
          const float wk = static_cast<float>(w[k]);
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            if (b0 + j < B) acc[j] += wk * hid[(b0 + j) * J + k];
          }
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[j] = warp_sum(acc[j]);
        if (lane == 0) {
          for (int j = 0; j < 4 && b0 + j < B; ++j) {
            const int b = b0 + j;
            if (s_t[b] >= s_len[b]) continue;
            const float v = acc[j] + bias_r;
            Partial& p = s_part[warp][b];
            if (r <= BLANK) {  // rows ascend within a warp: a tie keeps the first index
              if (v > p.top) {
                p.sum = (p.top == -INFINITY ? 0.0f : p.sum * expf(p.top - v)) + 1.0f;
                p.top = v;
                p.label = r;
              } else {
                p.sum += expf(v - p.top);
              }
            } else if (v > p.dtop) {
              p.dtop = v;
              p.dlabel = r - BLANK - 1;
            }
          }
        }
      }
    }
    __syncthreads();
    float* slot = part + (size_t)(step & 1) * gridDim.x * B * 5;
    for (int b = tid; b < B; b += blockDim.x) {
      Partial p = s_part[0][b];
      for (int w2 = 1; w2 < nwarps; ++w2) merge(p, s_part[w2][b]);
      float* out = slot + ((size_t)blockIdx.x * B + b) * 5;
      out[0] = p.top;
      out[1] = __int_as_float(p.label);
      out[2] = p.sum;
      out[3] = p.dtop;
      out[4] = __int_as_float(p.dlabel);
    }
    grid_barrier(sync, generation);

    // The decisions: every block reduces the same partials in the same order (a warp per
    // utterance, lanes over blocks, then a butterfly whose merge is symmetric), so every
    // block holds the same state. Block 0 writes the records.
    for (int b = warp; b < B; b += nwarps) {
      Partial p{-INFINITY, 0x7fffffff, 0.0f, -INFINITY, 0x7fffffff};
      if (s_t[b] < s_len[b]) {
        for (int k = lane; k < (int)gridDim.x; k += 32) {
          const float* in = slot + ((size_t)k * B + b) * 5;
          const Partial q{__ldcg(in), __float_as_int(__ldcg(in + 1)), __ldcg(in + 2),
                          __ldcg(in + 3), __float_as_int(__ldcg(in + 4))};
          merge(p, q);
        }
      }
      for (int o = 16; o > 0; o >>= 1) {
        const Partial q{__shfl_xor_sync(0xffffffffu, p.top, o),
                        __shfl_xor_sync(0xffffffffu, p.label, o),
                        __shfl_xor_sync(0xffffffffu, p.sum, o),
                        __shfl_xor_sync(0xffffffffu, p.dtop, o),
                        __shfl_xor_sync(0xffffffffu, p.dlabel, o)};
        merge(p, q);
      }
      if (lane == 0) s_best[b] = p;
    }
    __syncthreads();
    for (int b = tid; b < B; b += blockDim.x) {
      s_emit[b] = 0;
      const int t = s_t[b];
      const int len = s_len[b];
      int* record = rec + ((size_t)step * B + b) * 4;
      if (t >= len) {
        if (blockIdx.x == 0) {
          record[0] = 0;
          record[1] = BLANK;
          record[2] = t;
          record[3] = 0;
          lp[(size_t)step * B + b] = 0.0f;
        }
        continue;
      }
      const Partial p = s_best[b];
      const int label = p.label;
      const bool blank = label == BLANK;
      int duration;
      if (TDT) {
        duration = durations[p.dlabel];
        if (blank && duration == 0) duration = 1;
      } else {
        duration = blank ? 1 : 0;
      }
      const int frame = blank ? t + duration : t;
      const bool emit = !blank;
      int new_t = blank ? frame : frame + duration;
      if (emit) {
        s_rep[b] = (s_last[b] == frame) ? s_rep[b] + 1 : 1;
        s_last[b] = frame;
        if (MAXSYM >= 0 && new_t < len && s_rep[b] >= MAXSYM && s_last[b] == new_t) new_t += 1;
      }
      s_t[b] = new_t;
      s_emit[b] = emit;
      s_label[b] = label;
      if (blockIdx.x == 0) {
        record[0] = emit;
        record[1] = label;
        record[2] = frame;
        record[3] = duration;
        lp[(size_t)step * B + b] = -logf(p.sum);
      }
    }
    __syncthreads();
    if (tid == 0) {
      int any = 0;
      for (int b = 0; b < B; ++b) any |= s_emit[b];
      s_flag = any;
    }
    __syncthreads();
    step += 1;
    if (!s_flag) continue;

    // The prediction network on the emitted labels: LSTM layer by layer, a warp per
    // hidden unit (its four gate rows), then the joint's projection of the output.
    for (int l = 0; l < L; ++l) {
      const T* wxl = wx + (size_t)l * 4 * P * P;
      const T* whl = wh + (size_t)l * 4 * P * P;
      for (int u = gwarp; u < P; u += total_warps) {
        for (int b = 0; b < B; ++b) {
          const size_t at = ((size_t)l * B + b) * P + u;
          if (!s_emit[b]) {
            if (lane == 0) hn[at] = __ldcg(h + at);
            continue;
          }
          const T* xe = emb + (size_t)s_label[b] * P;
          const float* xh = hn + ((size_t)(l - 1) * B + b) * P;
          const float* hp = h + ((size_t)l * B + b) * P;
          float gate[4] = {0.0f, 0.0f, 0.0f, 0.0f};
          for (int k = lane; k < P; k += 32) {
            const float x = l == 0 ? static_cast<float>(xe[k]) : __ldcg(xh + k);
            const float hv = __ldcg(hp + k);
#pragma unroll
            for (int q = 0; q < 4; ++q) {
              const size_t row = (size_t)(q * P + u) * P + k;
              gate[q] += static_cast<float>(wxl[row]) * x + static_cast<float>(whl[row]) * hv;
            }
          }
#pragma unroll
          for (int q = 0; q < 4; ++q) gate[q] = warp_sum(gate[q]);
          if (lane == 0) {
            const T* bl = bias + (size_t)l * 4 * P;
            const float gi = gate[0] + static_cast<float>(bl[u]);
            const float gf = gate[1] + static_cast<float>(bl[P + u]);
            const float gg = gate[2] + static_cast<float>(bl[2 * P + u]);
            const float go = gate[3] + static_cast<float>(bl[3 * P + u]);
            const float cn = sigmoidf_(gf) * __ldcg(c + at) + sigmoidf_(gi) * tanhf(gg);
            c[at] = cn;
            hn[at] = sigmoidf_(go) * tanhf(cn);
          }
        }
      }
      grid_barrier(sync, generation);
    }
    for (int r = gwarp; r < J; r += total_warps) {
      const T* w = wp + (size_t)r * P;
      const float bias_r = static_cast<float>(bp[r]);
      for (int b = 0; b < B; ++b) {
        if (!s_emit[b]) continue;
        const float* x = hn + ((size_t)(L - 1) * B + b) * P;
        float acc = 0.0f;
        for (int k = lane; k < P; k += 32) acc += static_cast<float>(w[k]) * __ldcg(x + k);
        acc = warp_sum(acc);
        if (lane == 0) g[(size_t)b * J + r] = acc + bias_r;
      }
    }
    for (int i = gthread; i < L * B * P; i += total_threads) h[i] = __ldcg(hn + i);
    grid_barrier(sync, generation);
  }
  if (blockIdx.x == 0) {
    for (int b = tid; b < B; b += blockDim.x) {
      tstate[b * 3] = s_t[b];
      tstate[b * 3 + 1] = s_last[b];
      tstate[b * 3 + 2] = s_rep[b];
    }
    if (tid == 0) nsteps[0] = step;
  }
