$ -- Combine: out[t] = bf16(scale * sum_k w[t,k] * d[src2dst[t*K+k]]), fp32 math,
$ -- one rounding. Parameters: entry, block (threads), kchunk (gathered rows whose
$ -- 16-byte loads are issued together before any is accumulated), unroll (16-byte
$ -- columns per thread per pass: kchunk * unroll loads in flight), dtype (bf16).
$ assert(dtype == "bf16", "combine: only dtype=bf16 so far")
$ assert(block % 32 == 0 and block >= 32 and block <= 1024,
$        "combine: block must be a multiple of 32 in [32, 1024]")
$ assert(kchunk >= 1 and kchunk <= 32, "combine: kchunk must be in [1, 32]")
$ assert(unroll >= 1 and unroll <= 8, "combine: unroll must be in [1, 8]")
$ -- 768 resident threads per SM (op_combine.c sizes the grid with the same
$ -- number): a register budget of 80 per thread, which the default set's
$ -- specializations fit without spilling, still several times the bytes in flight needed.
$ local min_blocks = math.max(1, 768 // block)
$ local BAD_DST = 8 -- MF_DEVICE_ERR_BAD_DST (include/moeforge.h)
$ include("common.cuh")

// A slot as read from memory, before validation.
struct mf_combine_slot {
    int row;
    float w;
};

__device__ __forceinline__ mf_combine_slot mf_combine_read_slot(
    const int *__restrict__ src2dst, const float *__restrict__ weights, long long slot,
    long long slots)
{
    mf_combine_slot s = {-1, 0.0f};
    if (slot < slots) {
        s.row = src2dst[slot];
        s.w = weights[slot];
    }
    return s;
}

// Stores a slot into the table. Rows outside [0, d_rows) are skipped (row -1,
// weight 0, so a NaN weight there cannot leak in); those that are not the
// "no row" marker -1 are flagged.
__device__ __forceinline__ void mf_combine_store_slot(mf_combine_slot s, long long d_rows,
                                                      int *__restrict__ error_flags,
                                                      int *slot_row, float *slot_w)
{
    const bool valid = s.row >= 0 && s.row < d_rows;
    if (!valid && s.row != -1 && error_flags)
        atomicOr(error_flags, $(BAD_DST));
    *slot_row = valid ? s.row : -1;
    *slot_w = valid ? s.w : 0.0f;
}

// One token's columns [col, col_end) with stride `lanes` per thread: per pass,
// the loads of kchunk rows x unroll columns are all issued, then accumulated in
// k order with fma. A skipped slot contributes 0 * 0, which leaves the sum as is.
__device__ __forceinline__ void mf_combine_token(
    const mf_bf16x8 *__restrict__ d, int vecs, const int *rows, const float *w, int topk,
    mf_bf16x8 *__restrict__ out_row, int col, int col_end, int lanes, float scale)
{
    for (; col < col_end; col += lanes * $(unroll)) {
        float acc[$(unroll)][8];
#pragma unroll
        for (int u = 0; u < $(unroll); u++)
#pragma unroll
            for (int j = 0; j < 8; j++)
                acc[u][j] = 0.0f;
        for (int k0 = 0; k0 < topk; k0 += $(kchunk)) {
            mf_bf16x8 v[$(kchunk)][$(unroll)];
#pragma unroll
            for (int k = 0; k < $(kchunk); k++) {
                const int row = k0 + k < topk ? rows[k0 + k] : -1;
#pragma unroll
                for (int u = 0; u < $(unroll); u++) {
                    const int c = col + u * lanes;
                    if (row >= 0 && c < col_end)
                        v[k][u] = d[(long long)row * vecs + c];
                    else
                        v[k][u] = mf_bf16x8{{0u, 0u, 0u, 0u}};
                }
            }
#pragma unroll
            for (int k = 0; k < $(kchunk); k++) {
                const float wk = k0 + k < topk ? w[k0 + k] : 0.0f;
#pragma unroll
                for (int u = 0; u < $(unroll); u++) {
                    float x[8];
                    mf_unpack_bf16x8(v[k][u], x);
#pragma unroll
                    for (int j = 0; j < 8; j++)
                        acc[u][j] = fmaf(wk, x[j], acc[u][j]);
                }
            }
        }
#pragma unroll
        for (int u = 0; u < $(unroll); u++) {
            const int c = col + u * lanes;
            if (c < col_end) {
#pragma unroll
                for (int j = 0; j < 8; j++)
                    acc[u][j] *= scale;
                out_row[c] = mf_pack_bf16x8(acc[u]);
            }
        }
    }
}

// Grid: x strides over groups of (block >> lanes_log2) consecutive tokens, y
// over column slices of slice_vecs 16-byte vectors. The first tokens*K threads
// read a group's src2dst and weights once (consecutive slots, coalesced), one
// group ahead so that latency hides behind the current group's gathers, and
// publish them in shared memory; then each token's 2^lanes_log2 threads gather
// its rows. The host keeps 2^lanes_log2 >= K so a group's table fits `block`.
extern "C" __global__ void __launch_bounds__($(block), $(min_blocks))
$(entry)(const mf_bf16x8 *__restrict__ d, long long d_rows, const int *__restrict__ src2dst,
         const float *__restrict__ weights, mf_bf16x8 *__restrict__ out, int tokens, int topk,
         int vecs, float scale, int *__restrict__ error_flags, int lanes_log2, int slice_vecs)
{
    mf_wait_prior_grid();
    mf_start_dependents();
    __shared__ int slot_row[$(block)];
    __shared__ float slot_w[$(block)];
    const int lanes = 1 << lanes_log2;
    const int tokens_per_group = $(block) >> lanes_log2;
    const int sub = threadIdx.x >> lanes_log2;
    const int col_begin = blockIdx.y * slice_vecs;
    const int col_end = min(col_begin + slice_vecs, vecs);
    const bool loads_slot = threadIdx.x < tokens_per_group * topk;
    const long long slots = (long long)tokens * topk;
    const long long group_stride = (long long)gridDim.x * tokens_per_group;

    long long first = (long long)blockIdx.x * tokens_per_group;
    mf_combine_slot next = {-1, 0.0f};
    if (loads_slot)
        next = mf_combine_read_slot(src2dst, weights, first * topk + threadIdx.x, slots);
    for (; first < tokens; first += group_stride) {
        __syncthreads(); // the previous group is done reading the table
        if (loads_slot) {
            mf_combine_store_slot(next, d_rows, error_flags, &slot_row[threadIdx.x],
                                  &slot_w[threadIdx.x]);
            next = mf_combine_read_slot(src2dst, weights,
                                        (first + group_stride) * topk + threadIdx.x, slots);
        }
        __syncthreads();
        const long long token = first + sub;
        if (token < tokens)
            mf_combine_token(d, vecs, &slot_row[sub * topk], &slot_w[sub * topk], topk,
                             out + token * vecs, col_begin + (threadIdx.x & (lanes - 1)),
                             col_end, lanes, scale);
    }
}
