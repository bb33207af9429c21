$ -- Device helpers shared by every family. No #include: NVRTC needs no toolkit
$ -- headers at JIT time, so a deployment with libnvrtc alone can compile.

// bf16 values travel as raw 16-bit patterns; pairs as one 32-bit word.
typedef unsigned short mf_bf16;

// Eight bf16 values moved as one 16-byte access (low half of each word first).
struct __align__(16) mf_bf16x8 {
    unsigned int w[4];
};

__device__ __forceinline__ float mf_bf16_lo(unsigned int w) { return __int_as_float(w << 16); }
__device__ __forceinline__ float mf_bf16_hi(unsigned int w) { return __int_as_float(w & 0xffff0000u); }

// Two floats -> two bf16 (round to nearest even) in one instruction (sm_80+).
__device__ __forceinline__ unsigned int mf_pack_bf16x2(float lo, float hi)
{
    unsigned int r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ void mf_unpack_bf16x8(const mf_bf16x8 &v, float out[8])
{
#pragma unroll
    for (int i = 0; i < 4; i++) {
        out[2 * i] = mf_bf16_lo(v.w[i]);
        out[2 * i + 1] = mf_bf16_hi(v.w[i]);
    }
}

__device__ __forceinline__ mf_bf16x8 mf_pack_bf16x8(const float in[8])
{
    mf_bf16x8 v;
#pragma unroll
    for (int i = 0; i < 4; i++)
        v.w[i] = mf_pack_bf16x2(in[2 * i], in[2 * i + 1]);
    return v;
}

// The last i in [0, n) with sorted[i] <= x (0 when there is none): the segment
// x falls in, given the segments' ascending first elements.
__device__ __forceinline__ int mf_last_at_or_below(const int *sorted, int n, int x)
{
    int lo = 0, hi = n;
    while (hi - lo > 1) {
        const int mid = (lo + hi) >> 1;
        if (sorted[mid] <= x)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

// Clamps a per-expert row count read from device memory into [0, max_m]:
// a bad count must never send a kernel out of its tensor.
__device__ __forceinline__ int mf_clamp_rows(int rows, int max_m)
{
    return rows < 0 ? 0 : (rows > max_m ? max_m : rows);
}

// Programmatic dependent launch (sm_90+; no-ops before). The runtime launches
// every kernel as a dependent (runtime/kernels.h): it may start while the
// previous kernel of its stream still runs. Before mf_wait_prior_grid() a
// kernel writes nothing and reads only what was complete before the previous
// kernel passed its own wait: the inputs of the op it belongs to.
__device__ __forceinline__ void mf_wait_prior_grid()
{
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel of the stream start (it waits for this one before it
// reads our output). Called only after mf_wait_prior_grid().
__device__ __forceinline__ void mf_start_dependents()
{
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}
