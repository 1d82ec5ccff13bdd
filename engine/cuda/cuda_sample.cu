/* cuda_sample.cu - token sampling on the device (see cuda_sample.h): one block
 * of 1024 threads finds the maximum, then the top-k, top-p and min-p
 * thresholds exactly by bisection over the order-preserving integer image of
 * the scaled logits, then draws in id order from the kept mass. */
#include <math.h>
#include <stdint.h>

#include "cuda_common.h"

extern "C" {
#include "cuda_sample.h"
}

enum { SAMPLE_THREADS = 1024 };

/* Monotone map of floats to unsigned ints: a < b  <=>  fkey(a) < fkey(b). */
__device__ __forceinline__ uint32_t fkey(float f) {
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Block-wide sum in a fixed order (deterministic); all threads get it. */
__device__ float sample_block_sum(float v, float *red) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int s = SAMPLE_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    float r = red[0];
    __syncthreads();
    return r;
}

/* Count (what = 0) or mass exp(z - M) (what = 1) of the tokens with key >= k
 * in this thread's chunk [i0, i1). */
__device__ float chunk_stat(const float *lg, int i0, int i1, float invT, float M, uint32_t k, int what) {
    float s = 0;
    for (int i = i0; i < i1; i++) {
        float z = lg[i] * invT;
        if (fkey(z) >= k) s += what ? expf(z - M) : 1.0f;
    }
    return s;
}

__global__ void __launch_bounds__(SAMPLE_THREADS) k_sample(const float *lg, int V, float invT, int top_k, float top_p,
                                                          float min_p, float u, int greedy, int32_t *out) {
    __shared__ float red[SAMPLE_THREADS];
    __shared__ int redi[SAMPLE_THREADS];
    __shared__ float loc[SAMPLE_THREADS], pre[SAMPLE_THREADS];
    __shared__ int chosen_thread;
    const int tid = threadIdx.x, C = (V + SAMPLE_THREADS - 1) / SAMPLE_THREADS;
    const int i0 = min(V, tid * C), i1 = min(V, i0 + C);
    /* argmax, lowest id on ties */
    float best = -INFINITY;
    int bi = V;
    for (int i = i0; i < i1; i++)
        if (lg[i] > best || (lg[i] == best && i < bi)) { best = lg[i]; bi = i; }
    red[tid] = best;
    redi[tid] = bi;
    __syncthreads();
    for (int s = SAMPLE_THREADS / 2; s > 0; s >>= 1) {
        if (tid < s) {
            float ob = red[tid + s];
            int oi = redi[tid + s];
            if (ob > red[tid] || (ob == red[tid] && oi < redi[tid])) { red[tid] = ob; redi[tid] = oi; }
        }
        __syncthreads();
    }
    const float mx = red[0];
    const int amax = redi[0] < V ? redi[0] : 0;
    __syncthreads();
    if (greedy || !(mx > -INFINITY)) {
        if (tid == 0) *out = amax;
        return;
    }
    const float M = mx * invT;
    uint32_t kmin = 0;
    if (min_p > 0) kmin = fkey(M + logf(min_p));
    if (top_k > 0 && top_k < V) { /* largest key K with count(key >= K) >= top_k */
        uint32_t lo = kmin, hi = 0xffffffffu;
        if (sample_block_sum(chunk_stat(lg, i0, i1, invT, M, lo, 0), red) >= (float)top_k) {
            while (lo < hi) {
                uint32_t mid = lo + (uint32_t)(((uint64_t)hi - lo + 1) / 2);
                float c = sample_block_sum(chunk_stat(lg, i0, i1, invT, M, mid, 0), red);
                if (c >= (float)top_k) lo = mid;
                else hi = mid - 1;
            }
            kmin = lo;
        }
    }
    if (top_p < 1.0f) { /* largest key K with mass(key >= K) >= top_p * mass(kept) */
        float total = sample_block_sum(chunk_stat(lg, i0, i1, invT, M, kmin, 1), red);
        float want = top_p * total;
        uint32_t lo = kmin, hi = fkey(M);
        while (lo < hi) {
            uint32_t mid = lo + (uint32_t)(((uint64_t)hi - lo + 1) / 2);
            float c = sample_block_sum(chunk_stat(lg, i0, i1, invT, M, mid, 1), red);
            if (c >= want) lo = mid;
            else hi = mid - 1;
        }
        kmin = lo;
    }
    if (kmin > fkey(M)) kmin = fkey(M); /* the maximum is always kept */
    loc[tid] = chunk_stat(lg, i0, i1, invT, M, kmin, 1);
    __syncthreads();
    if (tid == 0) {
        float acc = 0;
        for (int t = 0; t < SAMPLE_THREADS; t++) { pre[t] = acc; acc += loc[t]; }
        float target = u * acc;
        int ct = -1;
        for (int t = 0; t < SAMPLE_THREADS; t++)
            if (loc[t] > 0 && pre[t] <= target) ct = t;
        chosen_thread = ct;
        if (ct < 0) *out = amax;
    }
    __syncthreads();
    if (tid == chosen_thread) {
        float target = u * (pre[SAMPLE_THREADS - 1] + loc[SAMPLE_THREADS - 1]), acc = pre[tid];
        int last = -1, pick = -1;
        for (int i = i0; i < i1; i++) {
            float z = lg[i] * invT;
            if (fkey(z) < kmin) continue;
            acc += expf(z - M);
            last = i;
            if (acc > target) { pick = i; break; }
        }
        *out = pick >= 0 ? pick : (last >= 0 ? last : amax);
    }
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

extern "C" uint64_t cuda_sample_seed(uint64_t seed) {
    uint64_t s = seed ^ 0x5DEECE66Dull;
    return splitmix64(&s);
}

static int sample_on(const float *d_logits, int vocab, cudaStream_t st, const cuda_sample_params *p, uint64_t *rng,
                     int32_t *token, sd_err *err) {
    if (vocab < 1) return sd_seterr(err, SD_EINVAL, "cuda_sample: empty vocabulary");
    int greedy = p->temperature <= 0 || p->top_k == 1;
    float u = (float)((splitmix64(rng) >> 40) * (1.0 / 16777216.0));
    int32_t *d_out = NULL;
    CU_CHECK(cudaMallocAsync((void **)&d_out, sizeof(int32_t), st));
    k_sample<<<1, SAMPLE_THREADS, 0, st>>>(d_logits, vocab, greedy ? 1.0f : 1.0f / p->temperature, p->top_k, p->top_p,
                                           p->min_p, u, greedy, d_out);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpyAsync(token, d_out, sizeof(int32_t), cudaMemcpyDeviceToHost, st);
    cudaFreeAsync(d_out, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    CU_CHECK(e);
    return 0;
}

extern "C" int cuda_sample_last(backend *b, const cuda_sample_params *p, uint64_t *rng, int32_t *token, sd_err *err) {
    const float *d = NULL;
    int vocab = 0;
    cudaStream_t st;
    SD_TRY(sdcu_backend_last_logits(b, &d, &vocab, &st, err));
    return sample_on(d, vocab, st, p, rng, token, err);
}

extern "C" int cuda_sample_host(const float *logits, int vocab, const cuda_sample_params *p, uint64_t *rng,
                                int32_t *token, sd_err *err) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        return sd_seterr(err, SD_EBACKEND, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    if (vocab < 1) return sd_seterr(err, SD_EINVAL, "cuda_sample: empty vocabulary");
    float *d = NULL;
    SD_TRY(sdcu_malloc((void **)&d, (size_t)vocab * sizeof(float), "sampling logits", err));
    e = cudaMemcpy(d, logits, (size_t)vocab * sizeof(float), cudaMemcpyHostToDevice);
    int rc = e == cudaSuccess ? sample_on(d, vocab, 0, p, rng, token, err)
                              : sd_seterr(err, SD_EBACKEND, "cuda_sample: upload failed: %s", cudaGetErrorString(e));
    cudaFree(d);
    return rc;
}
