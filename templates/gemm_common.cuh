$ -- Pieces both grouped-GEMM families share: shared-memory addresses and the
$ -- masked layout's tile prefix (which m-tiles belong to which expert).

__device__ __forceinline__ unsigned mf_smem_addr(const void *p)
{
    return (unsigned)__cvta_generic_to_shared(p);
}

// first_tile[e] = m-tiles of the experts before e (first_tile[E] = all of them):
// an exclusive prefix of ceil(rows / bm) over masked_m, clamped to max_m.
// Every thread of the block calls it; it ends with a block barrier.
__device__ void mf_masked_tile_prefix(const int *masked_m, int experts, int max_m, int bm,
                                      int threads, int *first_tile)
{
    for (int e = threadIdx.x; e < experts; e += threads) // all loads in flight at once
        first_tile[e + 1] = (mf_clamp_rows(masked_m[e], max_m) + bm - 1) / bm;
    __syncthreads();
    if (threadIdx.x < 32) { // warp 0 turns counts into an exclusive prefix, 32 at a time
        const int lane = threadIdx.x;
        int carry = 0;
        for (int base = 0; base < experts; base += 32) {
            const int e = base + lane;
            const int count = e < experts ? first_tile[e + 1] : 0;
            int sum = count;
#pragma unroll
            for (int d = 1; d < 32; d <<= 1) {
                const int up = __shfl_up_sync(0xffffffffu, sum, d);
                sum += lane >= d ? up : 0;
            }
            if (e < experts)
                first_tile[e + 1] = carry + sum;
            carry += __shfl_sync(0xffffffffu, sum, 31);
        }
        if (lane == 0)
            first_tile[0] = 0;
    }
    __syncthreads();
}

// The expert owning global m-tile m_tile: the last e with first_tile[e] <= m_tile.
__device__ __forceinline__ int mf_expert_of_tile(const int *first_tile, int experts, int m_tile)
{
    return mf_last_at_or_below(first_tile, experts, m_tile);
}
