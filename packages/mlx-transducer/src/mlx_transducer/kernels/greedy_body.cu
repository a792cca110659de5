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

  // Dynamic shared memory (SHF floats): the joint's hidden layer (B, J) per utterance while
  // the joint runs, then the staged inputs of the prediction network's matrix products.
  extern __shared__ float hid[];
  __shared__ int s_t[64], s_last[64], s_rep[64], s_len[64], s_emit[64], s_label[64];
  __shared__ int s_act[64], s_list[64];  // utterances still going; those that emitted
  __shared__ Partial s_part[8][64];
  __shared__ Partial s_best[64];
  __shared__ int s_nact, s_nemit;
  const int G = SHF / (2 * P);  // utterances whose LSTM input and state fit at once
  const int G2 = SHF / P;       // utterances whose LSTM output fits at once
  constexpr int UNROLL = 8;     // loads in flight per thread where a loop copies from L2

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
      int n = 0;
      for (int b = 0; b < B; ++b) {
        if (s_t[b] < s_len[b]) s_act[n++] = b;
      }
      s_nact = n;
    }
    __syncthreads();
    if (!s_nact) break;

    // The joint: relu(f[t] + g) for every utterance still going, then rows of the output
    // layer shared out warp by warp over the grid.
    // (UNROLL elements per thread in flight: their loads are issued before any is used.)
    for (int i0 = tid; i0 < s_nact * J; i0 += UNROLL * blockDim.x) {
      float f[UNROLL], gv[UNROLL];
      int at[UNROLL];
#pragma unroll
      for (int m = 0; m < UNROLL; ++m) {
        const int i = i0 + m * blockDim.x;
        at[m] = -1;
        if (i < s_nact * J) {
          const int a = i / J, k = i - a * J, b = s_act[a];
          at[m] = b * J + k;
          f[m] = static_cast<float>(enc[((size_t)b * TT + s_t[b]) * J + k]);
          gv[m] = __ldcg(g + at[m]);
        }
      }
#pragma unroll
      for (int m = 0; m < UNROLL; ++m) {
        if (at[m] >= 0) hid[at[m]] = activate<ACT>(f[m] + gv[m]);
      }
    }
    if (lane == 0) {
      for (int b = 0; b < B; ++b) s_part[warp][b] = Partial{-INFINITY, 0x7fffffff, 0.0f, -INFINITY, 0x7fffffff};
    }
    __syncthreads();
    // Each warp holds its row of the output layer in registers and applies it to every
    // utterance still going, four at a time (the sums in the same order as one at a time).
    for (int r = gwarp; r < O; r += total_warps) {
      const T* w = wo + (size_t)r * J;
      const float bias_r = static_cast<float>(bo[r]);
      float wr[(J + 31) / 32];
#pragma unroll
      for (int kk = 0; kk < (J + 31) / 32; ++kk) {
        const int k = lane + 32 * kk;
        wr[kk] = k < J ? static_cast<float>(w[k]) : 0.0f;
      }
      for (int a0 = 0; a0 < s_nact; a0 += 4) {
        int bs[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) bs[j] = a0 + j < s_nact ? s_act[a0 + j] : -1;
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int kk = 0; kk < (J + 31) / 32; ++kk) {
          const int k = lane + 32 * kk;
          if (k < J) {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              if (bs[j] >= 0) acc[j] += wr[kk] * hid[bs[j] * J + k];
            }
          }
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[j] = warp_sum(acc[j]);
        if (lane == 0) {
          for (int j = 0; j < 4 && bs[j] >= 0; ++j) {
            const float v = acc[j] + bias_r;
            Partial& p = s_part[warp][bs[j]];
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
        for (int k0 = lane; k0 < (int)gridDim.x; k0 += 32 * UNROLL) {
          float v[UNROLL][5];  // every load first, then the merges in the same order
#pragma unroll
          for (int m = 0; m < UNROLL; ++m) {
            const int k = k0 + 32 * m;
            if (k < (int)gridDim.x) {
              const float* in = slot + ((size_t)k * B + b) * 5;
#pragma unroll
              for (int e = 0; e < 5; ++e) v[m][e] = __ldcg(in + e);
            }
          }
#pragma unroll
          for (int m = 0; m < UNROLL; ++m) {
            if (k0 + 32 * m < (int)gridDim.x) {
              merge(p, Partial{v[m][0], __float_as_int(v[m][1]), v[m][2], v[m][3],
                               __float_as_int(v[m][4])});
            }
          }
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
      int n = 0;
      for (int b = 0; b < B; ++b) {
        if (s_emit[b]) s_list[n++] = b;
      }
      s_nemit = n;
    }
    __syncthreads();
    step += 1;
    if (!s_nemit) continue;

    // The prediction network on the emitted labels, layer by layer. Each block stages the
    // input and state of up to G emitting utterances in shared memory, then a warp per
    // hidden unit reads its four gate rows once per eight utterances (in the order of one
    // at a time: the sums are the same).
    for (int l = 0; l < L; ++l) {
      const T* wxl = wx + (size_t)l * 4 * P * P;
      const T* whl = wh + (size_t)l * 4 * P * P;
      for (int g0 = 0; g0 < s_nemit; g0 += G) {
        const int gn = min(G, s_nemit - g0);
        float* xs = hid;
        float* hs = hid + (size_t)G * P;
        __syncthreads();
        for (int i0 = tid; i0 < gn * P; i0 += UNROLL * blockDim.x) {
          float xv[UNROLL], hv[UNROLL];
#pragma unroll
          for (int m = 0; m < UNROLL; ++m) {
            const int i = i0 + m * blockDim.x;
            if (i < gn * P) {
              const int j = i / P, k = i - j * P;
              const int b = s_list[g0 + j];
              xv[m] = l == 0 ? static_cast<float>(emb[(size_t)s_label[b] * P + k])
                             : __ldcg(hn + ((size_t)(l - 1) * B + b) * P + k);
              hv[m] = __ldcg(h + ((size_t)l * B + b) * P + k);
            }
          }
#pragma unroll
          for (int m = 0; m < UNROLL; ++m) {
            const int i = i0 + m * blockDim.x;
            if (i < gn * P) {
              xs[i] = xv[m];
              hs[i] = hv[m];
            }
          }
        }
        __syncthreads();
        for (int u = gwarp; u < P; u += total_warps) {
          for (int j0 = 0; j0 < gn; j0 += 8) {
            float gate[8][4];
#pragma unroll
            for (int j = 0; j < 8; ++j) {
#pragma unroll
              for (int q = 0; q < 4; ++q) gate[j][q] = 0.0f;
            }
            for (int k = lane; k < P; k += 32) {
              float a[4], bw[4];
#pragma unroll
              for (int q = 0; q < 4; ++q) {
                const size_t row = (size_t)(q * P + u) * P + k;
                a[q] = static_cast<float>(wxl[row]);
                bw[q] = static_cast<float>(whl[row]);
              }
#pragma unroll
              for (int j = 0; j < 8; ++j) {
                if (j0 + j < gn) {
                  const float x = xs[(j0 + j) * P + k];
                  const float hv = hs[(j0 + j) * P + k];
#pragma unroll
                  for (int q = 0; q < 4; ++q) gate[j][q] += a[q] * x + bw[q] * hv;
                }
              }
            }
#pragma unroll
            for (int j = 0; j < 8; ++j) {
              if (j0 + j < gn) {
#pragma unroll
                for (int q = 0; q < 4; ++q) gate[j][q] = warp_sum(gate[j][q]);
              }
            }
            if (lane == 0) {
              const T* bl = bias + (size_t)l * 4 * P;
              for (int j = 0; j < 8 && j0 + j < gn; ++j) {
                const size_t at = ((size_t)l * B + s_list[g0 + j0 + j]) * P + u;
                const float gi = gate[j][0] + static_cast<float>(bl[u]);
                const float gf = gate[j][1] + static_cast<float>(bl[P + u]);
                const float gg = gate[j][2] + static_cast<float>(bl[2 * P + u]);
                const float go = gate[j][3] + static_cast<float>(bl[3 * P + u]);
                const float cn = sigmoidf_(gf) * __ldcg(c + at) + sigmoidf_(gi) * tanhf(gg);
                c[at] = cn;
                hn[at] = sigmoidf_(go) * tanhf(cn);
              }
            }
          }
        }
      }
      grid_barrier(sync, generation);
    }
    // The joint's projection of the last layer's output: the outputs staged as above, each
    // warp's row of the projection in registers.
    for (int g0 = 0; g0 < s_nemit; g0 += G2) {
      const int gn = min(G2, s_nemit - g0);
      __syncthreads();
      for (int i0 = tid; i0 < gn * P; i0 += UNROLL * blockDim.x) {
        float xv[UNROLL];
#pragma unroll
        for (int m = 0; m < UNROLL; ++m) {
          const int i = i0 + m * blockDim.x;
          if (i < gn * P) {
            const int j = i / P, k = i - j * P;
            xv[m] = __ldcg(hn + ((size_t)(L - 1) * B + s_list[g0 + j]) * P + k);
          }
        }
#pragma unroll
        for (int m = 0; m < UNROLL; ++m) {
          if (i0 + m * blockDim.x < gn * P) hid[i0 + m * blockDim.x] = xv[m];
        }
      }
      __syncthreads();
      for (int r = gwarp; r < J; r += total_warps) {
        const T* w = wp + (size_t)r * P;
        const float bias_r = static_cast<float>(bp[r]);
        float wr[(P + 31) / 32];
#pragma unroll
        for (int kk = 0; kk < (P + 31) / 32; ++kk) {
          const int k = lane + 32 * kk;
          wr[kk] = k < P ? static_cast<float>(w[k]) : 0.0f;
        }
        for (int j = 0; j < gn; ++j) {
          float acc = 0.0f;
#pragma unroll
          for (int kk = 0; kk < (P + 31) / 32; ++kk) {
            const int k = lane + 32 * kk;
            if (k < P) acc += wr[kk] * hid[j * P + k];
          }
          acc = warp_sum(acc);
          if (lane == 0) g[(size_t)s_list[g0 + j] * J + r] = acc + bias_r;
        }
      }
    }
    for (int i = gthread; i < L * B * P; i += total_threads) {
      if (s_emit[(i / P) % B]) h[i] = __ldcg(hn + i);
    }
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
