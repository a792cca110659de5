// Helpers of the greedy transducer kernel (greedy_body.cu): included before the kernel
// that mx.fast.cuda_kernel generates around the body.

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

template <int ACT>
__device__ __forceinline__ float activate(float x) {
  if (ACT == 0) return fmaxf(x, 0.0f);
  if (ACT == 1) return tanhf(x);
  return sigmoidf_(x);
}

// A barrier across the whole grid. Every block is resident (one per multiprocessor), so
// spinning cannot starve a block that has not started. sync[0] counts arrivals, sync[32]
// (another cache line) is the generation the last arrival releases. `sync` must not be one of
// MLX's small arrays (8 bytes or less), which live in managed memory shared with the host:
// there every atomic costs microseconds (a barrier of 132 blocks took 0.6 ms).
__device__ __forceinline__ void grid_barrier(unsigned int* sync, unsigned int& generation) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned int target = generation + 1;
    __threadfence();
    const unsigned int arrived = atomicAdd(sync, 1u);
    if (arrived == gridDim.x - 1) {
      atomicExch(sync, 0u);
      __threadfence();
      atomicExch(sync + 32, target);
    } else {
      volatile unsigned int* released = sync + 32;
      while (*released != target) {
        __nanosleep(20);
      }
    }
    __threadfence();
  }
  generation += 1;
  __syncthreads();
}

// Partial results of a slice of joint rows for one utterance: the token logits' maximum,
// its first index and the sum of exp(logit - maximum); the durations' maximum and index.
struct Partial {
  float top;
  int label;
  float sum;
  float dtop;
  int dlabel;
};

__device__ __forceinline__ void merge(Partial& a, const Partial& b) {
  if (b.top > a.top || (b.top == a.top && b.label < a.label)) {
    a.sum = b.sum + (a.top == -INFINITY ? 0.0f : a.sum * expf(a.top - b.top));
    a.top = b.top;
    a.label = b.label;
  } else if (b.top != -INFINITY) {
    a.sum += b.sum * expf(b.top - a.top);
  }
  if (b.dtop > a.dtop || (b.dtop == a.dtop && b.dlabel < a.dlabel)) {
    a.dtop = b.dtop;
    a.dlabel = b.dlabel;
  }
}
