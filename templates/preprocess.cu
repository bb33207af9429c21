$ -- Preprocess: route the (token, k) slots to experts and build the GEMM input.
$ -- Parameters: entry, stage, block (threads), layout (masked|contiguous, not for rank);
$ -- stage fused|scatter also take dtype (bf16|e4m3) and ue8m0 (0|1).
$ --   fused    T*K <= 1024: every block validates all slots and counts experts
$ --            in shared memory, ranks its own token's slots, then copies
$ --            (one launch in all).
$ --   rank     one block per 1024-slot chunk: in-chunk ranks + chunk histogram.
$ --   scan     one block: per-expert exclusive prefix over chunks, masked_m or
$ --            the contiguous segment starts.
$ --   scatter  one block per 1-4 tokens: final rows, src2dst, copy/quantize, m_indices;
$ --            e4m3 writes each token's scales once, K-major, into the workspace.
$ --            prefix=sum (masked, at most 32 chunks): the scatter sums its
$ --            slots' chunk prefixes from the rank stage's counts and writes
$ --            masked_m, and no scan stage runs.
$ --   scales   e4m3 only: a_scale in its MN-major layout, coalesced per expert,
$ --            from those token scales (4-byte stores scattered over experts
$ --            cost the scatter 30% of its time: examples/NOTES.md).
$ -- Every kernel is a dependent launch (common.cuh); only the scatter reads
$ -- before its wait: hidden and topk_ids, inputs of the op, complete before
$ -- the rank stage passed its wait.
$ -- Ranks are deterministic: slot s = t*K + k gets the number of earlier valid
$ -- slots of its expert, counted per warp with __match_any_sync and summed in
$ -- warp order, never with order-dependent atomics.
$ local stages = {fused = true, rank = true, scan = true, scatter = true, scales = true}
$ assert(stages[stage], "preprocess: bad stage")
$ local contiguous = params.layout == "contiguous"
$ assert(stage == "rank" or params.layout == "masked" or contiguous, "preprocess: bad layout")
$ assert(block % 32 == 0 and block <= 1024, "preprocess: block must be a multiple of 32, <= 1024")
$ local summed = stage == "scatter" and params.prefix == "sum"
$ assert(params.prefix == nil or summed, "preprocess: prefix=sum is a scatter option")
$ assert(not (summed and contiguous), "preprocess: prefix=sum needs layout=masked")
$ local copies = stage == "fused" or stage == "scatter"
$ local fp8 = copies and dtype == "e4m3"
$ if copies then
$   assert(dtype == "bf16" or dtype == "e4m3", "preprocess: dtype must be bf16 or e4m3")
$   assert(not (ue8m0 == 1 and dtype ~= "e4m3"), "preprocess: ue8m0 needs dtype=e4m3")
$ end
$ include("common.cuh")
$ if fp8 then include("fp8.cuh") end

#define MF_CHUNK 1024
#define MF_BLOCK $(block)
#define MF_WARPS ($(block) / 32)
#define MF_MAX_TOPK 32
#define MF_ERR_BAD_EXPERT_ID 1
#define MF_ERR_DUPLICATE_ID 2
#define MF_ERR_CAPACITY 4

// What every stage is told about the routing problem.
struct mf_routing {
    const int *topk_ids; // [T, K]
    int slots;           // T * K
    int topk;
    int experts;
};

// Expert of the slot whose id is ids[i], the token's k-th (ids[i - j] holds
// its (k-j)-th), or -1 when the slot is skipped: id -1, an id outside [-1, E)
// (flagged), or an id already used by an earlier k of the token (flagged).
__device__ __forceinline__ int mf_slot_expert(const int *ids, int i, int k, int experts, int &flags)
{
    const int e = ids[i];
    if (e < -1 || e >= experts) {
        flags |= MF_ERR_BAD_EXPERT_ID;
        return -1;
    }
    if (e < 0)
        return -1;
    for (int j = 1; j <= k; j++)
        if (ids[i - j] == e) {
            flags |= MF_ERR_DUPLICATE_ID;
            return -1;
        }
    return e;
}

__device__ __forceinline__ void mf_raise(int *error_flags, int flags)
{
    if (flags && error_flags)
        atomicOr(error_flags, flags);
}

$ if stage == "rank" then
// Ranks slots [begin, end) in order; ids[MF_MAX_TOPK + s - begin] holds slot
// s's id (from s = begin - MF_MAX_TOPK on, for the duplicate check).
// warp_counts [MF_WARPS][E] must be zero on entry (it is left zero); base [E]
// holds the running count per expert and is advanced. rank[s - begin] =
// in-range rank or -1.
__device__ void mf_rank_range(const mf_routing &r, const int *ids, int begin, int end,
                              int *warp_counts, int *base, int *rank, int &flags)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int round = begin; round < end; round += MF_BLOCK) {
        const int s = round + threadIdx.x;
        const int e = s < end ? mf_slot_expert(ids, MF_MAX_TOPK + s - begin, s % r.topk,
                                               r.experts, flags)
                              : -1;
        const unsigned peers = __match_any_sync(0xffffffffu, e);
        const int lrank = __popc(peers & ((1u << lane) - 1u));
        const bool leader = e >= 0 && lrank == 0;
        if (leader)
            warp_counts[warp * r.experts + e] = __popc(peers);
        __syncthreads();
        int my_rank = -1;
        if (e >= 0) {
            my_rank = base[e] + lrank;
            for (int w = 0; w < warp; w++)
                my_rank += warp_counts[w * r.experts + e];
        }
        __syncthreads();
        if (leader) {
            atomicAdd(&base[e], __popc(peers)); // a sum: the order does not matter
            warp_counts[warp * r.experts + e] = 0;
        }
        if (s < end)
            rank[s - begin] = my_rank;
        __syncthreads();
    }
}

__device__ void mf_zero_shared(int *p, int n)
{
    for (int i = threadIdx.x; i < n; i += MF_BLOCK)
        p[i] = 0;
    __syncthreads();
}
$ end

$ if contiguous and stage ~= "rank" and stage ~= "scales" then
// Exclusive prefix over experts of the aligned segment sizes: each thread sums
// 4 consecutive experts, each warp scans those sums with shuffles, and adds
// the totals of the warps before it (two barriers, not one per doubling step).
// seg[e] = first row of expert e, seg[E] = end; warp_sums: MF_WARPS ints.
static_assert(4 * MF_BLOCK >= 1024, "4 experts per thread cover E <= 1024");
__device__ void mf_segment_starts(const int *totals, int experts, int align, int *seg,
                                  int *warp_sums)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, first = 4 * threadIdx.x;
    int size[4], sum = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        size[i] = first + i < experts ? (totals[first + i] + align - 1) / align * align : 0;
        sum += size[i];
    }
    int inclusive = sum;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
        const int v = __shfl_up_sync(0xffffffffu, inclusive, d);
        if (lane >= d)
            inclusive += v;
    }
    if (lane == 31)
        warp_sums[warp] = inclusive;
    __syncthreads();
    int start = inclusive - sum;
    for (int w = 0; w < warp; w++)
        start += warp_sums[w];
#pragma unroll
    for (int i = 0; i < 4; i++)
        if (first + i < experts) {
            seg[first + i] = start;
            start += size[i];
            if (first + i == experts - 1)
                seg[experts] = start;
        }
    __syncthreads();
}

// m_indices for rows 4 * first + [0, 4), then 4 * stride further on, up to
// m_capacity: expert of the segment the row falls in, -1 for alignment
// padding and rows past the last segment. One search per 4 rows; the next
// rows step over the (possibly empty) segments that end before them.
__device__ void mf_fill_m_indices(int *m_indices, int m_capacity, const int *seg,
                                  const int *totals, int experts, long long first, long long stride)
{
    for (long long row0 = 4 * first; row0 < m_capacity; row0 += 4 * stride) {
        int e = mf_last_at_or_below(seg, experts, (int)row0);
        for (long long row = row0; row < row0 + 4 && row < m_capacity; row++) {
            while (e + 1 < experts && seg[e + 1] <= row)
                e++;
            m_indices[row] = row < (long long)seg[e] + totals[e] ? e : -1;
        }
    }
}
$ end

$ if copies then
// Destination of one slot: row index into a (masked: e * max_m + r), or -1.
struct mf_destination {
    int row;    // -1: skipped
    int expert;
    int rank;
};

$ if fp8 then
// A 4-byte store whose L2 line should outlive the streaming row stores.
// fused: the MN-major scales of 8 consecutive ranks share a 32-byte sector,
// written by 8 tokens far apart, and a sector evicted partly written costs
// far more than its bytes (measured on the large-T path before it had the
// scales stage: 62% of the copy rate with plain stores, 68% with this hint).
// scatter: the staged token scales and row tokens, which the scales stage
// reads back after the scatter's row stores would have evicted them (its
// first version, without the hint, made the T=4096 call slower: NOTES).
__device__ __forceinline__ void mf_store_keep_in_l2(unsigned *p, unsigned v)
{
    unsigned long long policy;
    asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(policy));
    asm volatile("st.global.L2::cache_hint.b32 [%0], %1, %2;" ::"l"(p), "r"(v), "l"(policy)
                 : "memory");
}
$ end

$ if fp8 and stage == "fused" then
// Scale index of (destination, 128-column group g) in the MN-major layout.
__device__ __forceinline__ long long mf_scale_index(const mf_destination &d, int g, int groups,
                                                    int max_m, int m_capacity)
{
$   if contiguous then
    return (long long)g * m_capacity + d.row;
$   else
    return ((long long)d.expert * groups + g) * max_m + d.rank;
$   end
}
$ end

// Copies (bf16) or quantizes once and writes K times (e4m3) the 16-byte
// vector v of one token's row, x, loaded by the caller. Every lane of the
// warp calls it (e4m3: the group amax is a shuffle); in_range false only
// takes part. e4m3 scales go to a_scale (fused) or once to token_scale
// [H / 128] (scatter).
__device__ __forceinline__ void mf_copy_vector(int v, bool in_range, const mf_bf16x8 &x,
                                               int hidden_size, const mf_destination *dst,
                                               int topk, void *__restrict__ a,
                                               float *__restrict__ a_scale,
                                               float *__restrict__ token_scale, int max_m,
                                               int m_capacity)
{
    const int nvec = hidden_size / 8;
$ if fp8 then
    float f[8], amax = 0.0f;
    if (in_range) {
        mf_unpack_bf16x8(x, f);
#pragma unroll
        for (int i = 0; i < 8; i++)
            amax = fmaxf(amax, fabsf(f[i]));
    }
    amax = mf_group16_amax(amax); // every lane of the warp takes part
    if (!in_range)
        return;
    const float scale = mf_fp8_scale(amax, $(ue8m0 == 1 and "true" or "false"));
    const uint2 q = mf_quantize8(f, scale);
$   if stage == "scatter" then
    if ((threadIdx.x & 15) == 0)
        mf_store_keep_in_l2((unsigned *)&token_scale[v / 16], __float_as_uint(scale));
$   end
    for (int k = 0; k < topk; k++) {
        if (dst[k].row < 0)
            continue;
        ((uint2 *)a)[(long long)dst[k].row * nvec + v] = q;
$   if stage == "fused" then
        if ((threadIdx.x & 15) == 0)
            mf_store_keep_in_l2((unsigned *)a_scale + mf_scale_index(dst[k], v / 16,
                                                                     hidden_size / 128, max_m,
                                                                     m_capacity),
                                __float_as_uint(scale));
$   end
    }
$ else
    if (!in_range)
        return;
    for (int k = 0; k < topk; k++)
        if (dst[k].row >= 0)
            ((mf_bf16x8 *)a)[(long long)dst[k].row * nvec + v] = x;
$ end
}

// The vectors [first, end) of one token's row, a pass of MF_BLOCK at a time;
// first is a multiple of 16 (a group). `prefetched` (or NULL) holds this
// thread's vector of the first pass, loaded early by the caller.
__device__ __forceinline__ void mf_copy_token(const mf_bf16x8 *__restrict__ row, int hidden_size,
                                              int first, int end, const mf_bf16x8 *prefetched,
                                              const mf_destination *dst, int topk,
                                              void *__restrict__ a, float *__restrict__ a_scale,
                                              float *__restrict__ token_scale, int max_m,
                                              int m_capacity)
{
    for (int base = first; base < end; base += MF_BLOCK) {
        const int v = base + threadIdx.x;
        const bool in_range = v < end;
        mf_bf16x8 x;
        if (in_range)
            x = base == first && prefetched ? *prefetched : row[v];
        mf_copy_vector(v, in_range, x, hidden_size, dst, topk, a, a_scale, token_scale, max_m,
                       m_capacity);
    }
}

// Turns (expert, rank) into the slot's row, flagging rows past the capacity;
// segment is the first row of e's segment (contiguous).
__device__ __forceinline__ mf_destination mf_place(int e, int rank, int segment, int max_m,
                                                   int m_capacity, int &flags)
{
    mf_destination d = {-1, e, rank};
    if (e < 0)
        return d;
$ if contiguous then
    const long long row = (long long)segment + rank;
    if (row >= m_capacity)
        flags |= MF_ERR_CAPACITY;
    else
        d.row = (int)row;
$ else
    if (rank >= max_m)
        flags |= MF_ERR_CAPACITY;
    else
        d.row = e * max_m + rank;
$ end
    return d;
}
$ end

// Outputs and sizes shared by the copying stages.
struct mf_outputs {
    const mf_bf16x8 *hidden; // [T, H]
    int hidden_size;
    void *a;
    float *a_scale;
    int *src2dst;
    int *masked_m;
    int max_m;
    int *m_indices;
    int m_capacity;
    int align;
    int *error_flags;
};

// e4m3, T*K > 1024: the scatter's per-token scales [T, H / 128] and the token
// of every placed row, which the scales stage turns into a_scale.
struct mf_scale_staging {
    float *token_scale;
    int *row_token;
};

$ if stage == "fused" then
// Per-expert totals are order-free sums (shared-memory atomics); only this
// token's K ranks need the slot order: each is a block-wide count of the
// earlier valid slots of the same expert. One pass over the earlier slots
// counts for 8 of the K at once (K = 8: a single pass, not eight).
__device__ void mf_rank_own_slots(const int *expert, int own, int topk, int *own_rank)
{
    for (int k0 = 0; k0 < topk; k0 += 8) {
        int e[8], count[8];
#pragma unroll
        for (int i = 0; i < 8; i++) {
            e[i] = k0 + i < topk ? expert[own + k0 + i] : -1; // the same for every thread
            count[i] = 0;
        }
        for (int j = threadIdx.x; j < own + min(k0 + 8, topk); j += MF_BLOCK) {
            const int x = expert[j];
#pragma unroll
            for (int i = 0; i < 8; i++)
                count[i] += x == e[i] && j < own + k0 + i;
        }
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int c = __reduce_add_sync(0xffffffffu, count[i]);
            if ((threadIdx.x & 31) == 0 && c && e[i] >= 0)
                atomicAdd(&own_rank[k0 + i], c);
        }
    }
    __syncthreads();
}

// Grid: x = token, y = slice of the row (so that tiny T still fills the GPU;
// slices past the row only help fill m_indices); T*K <= MF_CHUNK. Every block
// validates all slots from a shared-memory copy of the ids.
// Dynamic shared memory: E ints (+ E + 1 + MF_WARPS contiguous).
extern "C" __global__ void __launch_bounds__(MF_BLOCK) $(entry)(const mf_routing r, const mf_outputs o,
                                                                 int vectors_per_slice)
{
    extern __shared__ int smem[];
    __shared__ int ids[MF_CHUNK], expert[MF_CHUNK], own_rank[MF_MAX_TOPK];
    __shared__ mf_destination dst[MF_MAX_TOPK];
    int *totals = smem;
    int flags = 0;
    mf_wait_prior_grid();
    mf_start_dependents();
    const int token = blockIdx.x;
    const int first = blockIdx.y * vectors_per_slice;
    const int end = min(first + vectors_per_slice, o.hidden_size / 8);
    const mf_bf16x8 *row = o.hidden + (long long)token * (o.hidden_size / 8);
    mf_bf16x8 prefetched; // its latency hides behind the routing work
    if (first + (int)threadIdx.x < end)
        prefetched = row[first + threadIdx.x];
    for (int s = threadIdx.x; s < r.slots; s += MF_BLOCK)
        ids[s] = r.topk_ids[s];
    for (int e = threadIdx.x; e < r.experts; e += MF_BLOCK)
        totals[e] = 0;
    if (threadIdx.x < MF_MAX_TOPK)
        own_rank[threadIdx.x] = 0;
    __syncthreads();
    for (int s = threadIdx.x; s < r.slots; s += MF_BLOCK) {
        const int e = mf_slot_expert(ids, s, s % r.topk, r.experts, flags);
        expert[s] = e;
        if (e >= 0)
            atomicAdd(&totals[e], 1);
    }
    __syncthreads();
    mf_rank_own_slots(expert, token * r.topk, r.topk, own_rank);
    const bool first_slice = blockIdx.y == 0;
    const long long block_id = (long long)blockIdx.y * gridDim.x + blockIdx.x;
$ if contiguous then
    int *seg = totals + r.experts, *warp_sums = seg + r.experts + 1;
    mf_segment_starts(totals, r.experts, o.align, seg, warp_sums);
$ else
    if (block_id == 0)
        for (int e = threadIdx.x; e < r.experts; e += MF_BLOCK)
            o.masked_m[e] = min(totals[e], o.max_m);
$ end
    if (threadIdx.x < r.topk) {
        const int s = token * r.topk + threadIdx.x, e = expert[s];
$ if contiguous then
        const int segment = e >= 0 ? seg[e] : 0;
$ else
        const int segment = 0;
$ end
        dst[threadIdx.x] = mf_place(e, own_rank[threadIdx.x], segment, o.max_m, o.m_capacity,
                                    flags);
        if (first_slice)
            o.src2dst[s] = dst[threadIdx.x].row;
    }
    __syncthreads();
    mf_copy_token(row, o.hidden_size, first, end, &prefetched, dst, r.topk, o.a, o.a_scale,
                  nullptr, o.max_m, o.m_capacity);
$ if contiguous then
    mf_fill_m_indices(o.m_indices, o.m_capacity, seg, totals, r.experts,
                      block_id * MF_BLOCK + threadIdx.x, (long long)gridDim.x * gridDim.y * MF_BLOCK);
$ end
    // Every block saw every id: one block reports them; slice 0 its placements.
    mf_raise(o.error_flags, block_id == 0 ? flags : first_slice ? flags & MF_ERR_CAPACITY : 0);
}
$ end

$ if stage == "rank" then
// Grid: one block per MF_CHUNK slots. local_rank [T*K] gets the in-chunk rank
// (-1: skipped); hist [chunks, E] the chunk's count per expert.
// Dynamic shared memory: (MF_WARPS + 1) * E ints.
extern "C" __global__ void __launch_bounds__(MF_BLOCK) $(entry)(const mf_routing r, int *local_rank,
                                                                 int *hist, int *error_flags)
{
    extern __shared__ int smem[];
    __shared__ int ids[MF_MAX_TOPK + MF_CHUNK];
    int *warp_counts = smem, *base = smem + MF_WARPS * r.experts;
    int flags = 0;
    mf_wait_prior_grid();
    mf_start_dependents();
    const int begin = blockIdx.x * MF_CHUNK, end = min(begin + MF_CHUNK, r.slots);
    // Every id of the chunk in one round trip, not one per round of ranking.
    for (int i = threadIdx.x; i < MF_MAX_TOPK + end - begin; i += MF_BLOCK)
        if (begin - MF_MAX_TOPK + i >= 0)
            ids[i] = r.topk_ids[begin - MF_MAX_TOPK + i];
    mf_zero_shared(smem, (MF_WARPS + 1) * r.experts); // its barrier also covers ids
    mf_rank_range(r, ids, begin, end, warp_counts, base, local_rank + begin, flags);
    for (int e = threadIdx.x; e < r.experts; e += MF_BLOCK)
        hist[(long long)blockIdx.x * r.experts + e] = base[e];
    mf_raise(error_flags, flags);
}
$ end

$ if stage == "scan" then
#define MF_SCAN_BATCH (MF_BLOCK >= 1024 ? 16 : 32) // loads in flight per thread (64 registers at 1024)

// Loads hist[c, e] for the chunks [c0, min(c0 + MF_SCAN_BATCH, last)), 0 past
// last. One pointer stepped along the column keeps the registers for counts.
__device__ __forceinline__ void mf_load_counts(const int *hist, int experts, int e, int c0,
                                               int last, int (&count)[MF_SCAN_BATCH])
{
    const int *p = hist + (long long)c0 * experts + e;
#pragma unroll
    for (int i = 0; i < MF_SCAN_BATCH; i++, p += experts)
        count[i] = c0 + i < last ? *p : 0;
}

// Writes the exclusive prefix of one batch of counts from base; returns the new base.
__device__ __forceinline__ int mf_store_prefix(int *hist, int experts, int e, int c0, int last,
                                               int base, const int (&count)[MF_SCAN_BATCH])
{
    int *p = hist + (long long)c0 * experts + e;
#pragma unroll
    for (int i = 0; i < MF_SCAN_BATCH; i++, p += experts)
        if (c0 + i < last) {
            *p = base;
            base += count[i];
        }
    return base;
}

__device__ __forceinline__ void mf_expert_total(const mf_outputs &o, int *totals, int e, int total)
{
    totals[e] = total;
$ if not contiguous then
    o.masked_m[e] = min(total, o.max_m);
$ end
}

// One block: hist [chunks, E] becomes the exclusive prefix over chunks (in
// place); totals [E]; masked_m, or the segment starts seg [E + 1].
// parts < 2: one thread per expert walks the chunks a batch at a time.
// parts >= 2 (parts * E <= MF_BLOCK, each part's range of chunks one batch):
// the parts of an expert sum their ranges, the sums meet in shared memory,
// and each part writes its range from the counts it holds: two round trips.
// Dynamic shared memory: MF_BLOCK ints, then (contiguous) E + 1 + MF_WARPS.
extern "C" __global__ void __launch_bounds__(MF_BLOCK) $(entry)(const mf_routing r, int chunks,
                                                                 int parts, int *hist, int *totals,
                                                                 int *seg, const mf_outputs o)
{
    extern __shared__ int smem[];
    mf_wait_prior_grid();
    mf_start_dependents();
    const int per = (chunks + parts - 1) / parts;
    int count[MF_SCAN_BATCH];
    if (parts < 2 || per > MF_SCAN_BATCH || parts * r.experts > MF_BLOCK) {
        for (int e = threadIdx.x; e < r.experts; e += MF_BLOCK) {
            int base = 0;
#pragma unroll 1
            for (int c0 = 0; c0 < chunks; c0 += MF_SCAN_BATCH) {
                mf_load_counts(hist, r.experts, e, c0, chunks, count);
                base = mf_store_prefix(hist, r.experts, e, c0, chunks, base, count);
            }
            mf_expert_total(o, totals, e, base);
        }
    } else {
        const int part = threadIdx.x / r.experts, e = threadIdx.x % r.experts;
        const int first = min(part * per, chunks);
        const int last = part < parts ? min(first + per, chunks) : first;
        mf_load_counts(hist, r.experts, e, first, last, count);
        int sum = 0, base = 0;
#pragma unroll
        for (int i = 0; i < MF_SCAN_BATCH; i++)
            sum += count[i];
        if (part < parts)
            smem[part * r.experts + e] = sum;
        __syncthreads();
        for (int q = 0; q < part && part < parts; q++)
            base += smem[q * r.experts + e];
        base = mf_store_prefix(hist, r.experts, e, first, last, base, count);
        if (part == parts - 1)
            mf_expert_total(o, totals, e, base);
    }
$ if contiguous then
    __syncthreads();
    int *s_seg = smem + MF_BLOCK, *warp_sums = s_seg + r.experts + 1;
    mf_segment_starts(totals, r.experts, o.align, s_seg, warp_sums);
    for (int e = threadIdx.x; e <= r.experts; e += MF_BLOCK)
        seg[e] = s_seg[e];
$ end
}
$ end

$ if stage == "scatter" then
#define MF_SCATTER_TOKENS 4 // most tokens per block
#define MF_PREFETCH 4       // vectors per thread loaded before the wait
static_assert(MF_SCATTER_TOKENS * MF_MAX_TOPK <= MF_BLOCK, "one thread per slot of the block");

// Prefetched vector j of a block whose rows take `passes` passes of MF_BLOCK
// vectors: pass j % passes of the block's token j / passes.
struct mf_pass {
    int token, v;
};

__device__ __forceinline__ mf_pass mf_pass_of(int j, int passes)
{
    return {j / passes, j % passes * MF_BLOCK + (int)threadIdx.x};
}

$ if summed then
// base[i] = the count of earlier slots of slot first_slot + i's expert in the
// chunks before its own: warp w takes the block's slots w, w + MF_WARPS, ...,
// 4 at a time, each lane one chunk's count, all in flight at once (the host
// picks prefix=sum for at most 32 chunks).
__device__ void mf_sum_chunk_prefixes(const mf_routing &r, const int *counts, const int *slot_id,
                                      int first_slot, int placed, int *base)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int i0 = warp; i0 < placed; i0 += 4 * MF_WARPS) {
        int count[4];
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int i = i0 + q * MF_WARPS;
            const int id = i < placed ? slot_id[i] : -1;
            const bool before = lane < (first_slot + i) / MF_CHUNK;
            count[q] = id >= 0 && id < r.experts && before ? counts[lane * r.experts + id] : 0;
        }
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int sum = __reduce_add_sync(0xffffffffu, count[q]);
            if (lane == 0 && i0 + q * MF_WARPS < placed)
                base[i0 + q * MF_WARPS] = sum;
        }
    }
}

// masked_m of experts blockIdx.x * MF_WARPS + warp, grid-strided: their
// counts over all chunks, one per lane, summed and clamped to max_m.
__device__ void mf_sum_masked_m(const mf_routing &r, const mf_outputs &o, const int *counts)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int chunks = (r.slots + MF_CHUNK - 1) / MF_CHUNK;
    for (int e = blockIdx.x * MF_WARPS + warp; e < r.experts; e += gridDim.x * MF_WARPS) {
        const int c = lane < chunks ? counts[lane * r.experts + e] : 0;
        const int total = __reduce_add_sync(0xffffffffu, c);
        if (lane == 0)
            o.masked_m[e] = min(total, o.max_m);
    }
}

$ end
// Grid: one block per tokens_per_block (1 to MF_SCATTER_TOKENS) consecutive
// tokens, so that short rows share one chain of lookups; the m_indices rows
// grid-strided. prefix: the scan's per-chunk exclusive prefixes, or (summed)
// the rank stage's per-chunk counts. hidden and topk_ids, inputs of the op,
// were complete before the rank stage passed its wait, so they are read
// before the scatter's: the block's whole rows, up to MF_PREFETCH passes
// (H <= 8192 at one token per block), load while rank and scan still run.
extern "C" __global__ void __launch_bounds__(MF_BLOCK) $(entry)(const mf_routing r, const int *local_rank,
                                                                 const int *prefix, const int *totals,
                                                                 const int *seg, const mf_outputs o,
                                                                 const mf_scale_staging staging,
                                                                 int tokens_per_block)
{
    __shared__ mf_destination dst[MF_SCATTER_TOKENS * MF_MAX_TOPK];
    const int nvec = o.hidden_size / 8, first_token = blockIdx.x * tokens_per_block;
    const int count = min(tokens_per_block, r.slots / r.topk - first_token);
    const int passes = (nvec + MF_BLOCK - 1) / MF_BLOCK, groups = o.hidden_size / 128;
    mf_bf16x8 prefetched[MF_PREFETCH];
#pragma unroll
    for (int j = 0; j < MF_PREFETCH; j++) {
        const mf_pass q = mf_pass_of(j, passes);
        if (q.token < count && q.v < nvec)
            prefetched[j] = o.hidden[(long long)(first_token + q.token) * nvec + q.v];
    }
    const int s = first_token * r.topk + threadIdx.x; // the slot this thread places
    const bool places = (int)threadIdx.x < count * r.topk;
    const int id = places ? r.topk_ids[s] : -1;
$ if summed then
    __shared__ int slot_id[MF_SCATTER_TOKENS * MF_MAX_TOPK];
    __shared__ int slot_base[MF_SCATTER_TOKENS * MF_MAX_TOPK];
    if (places)
        slot_id[threadIdx.x] = id;
$ end
    mf_wait_prior_grid();
    mf_start_dependents();
    int flags = 0;
    // One round trip: an id in range has its chunk prefix (and segment)
    // loaded with its in-chunk rank, used only if the rank kept the slot.
    const int lr = places ? local_rank[s] : -1;
$ if summed then
    __syncthreads();
    mf_sum_chunk_prefixes(r, prefix, slot_id, first_token * r.topk, count * r.topk, slot_base);
    mf_sum_masked_m(r, o, prefix);
    __syncthreads();
$ end
    if (places) {
$ if summed then
        const int base = slot_base[threadIdx.x];
$ else
        const bool in_range = id >= 0 && id < r.experts;
        const int base = in_range ? prefix[(long long)(s / MF_CHUNK) * r.experts + id] : 0;
$ end
$ if contiguous then
        const int segment = in_range ? seg[id] : 0;
$ else
        const int segment = 0;
$ end
        const int e = lr >= 0 ? id : -1;
        dst[threadIdx.x] = mf_place(e, base + lr, segment, o.max_m, o.m_capacity, flags);
        o.src2dst[s] = dst[threadIdx.x].row;
$ if fp8 then
        if (dst[threadIdx.x].row >= 0)
            mf_store_keep_in_l2((unsigned *)&staging.row_token[dst[threadIdx.x].row], s / r.topk);
$ end
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < MF_PREFETCH; j++) { // unrolled: prefetched stays in registers
        const mf_pass q = mf_pass_of(j, passes);
        if (q.token < count) // block-uniform: every lane reaches the group shuffles
            mf_copy_vector(q.v, q.v < nvec, prefetched[j], o.hidden_size, dst + q.token * r.topk,
                           r.topk, o.a, o.a_scale,
                           staging.token_scale + (long long)(first_token + q.token) * groups,
                           o.max_m, o.m_capacity);
    }
    for (int i = 0; i < count; i++) { // passes past the prefetched ones (H > 8192)
        const int covered = min(max(MF_PREFETCH - i * passes, 0), passes);
        const long long token = first_token + i;
        if (covered < passes)
            mf_copy_token(o.hidden + token * nvec, o.hidden_size, covered * MF_BLOCK, nvec,
                          nullptr, dst + i * r.topk, r.topk, o.a, o.a_scale,
                          staging.token_scale + token * groups, o.max_m, o.m_capacity);
    }
$ if contiguous then
    mf_fill_m_indices(o.m_indices, o.m_capacity, seg, totals, r.experts,
                      (long long)blockIdx.x * MF_BLOCK + threadIdx.x, (long long)gridDim.x * MF_BLOCK);
$ end
    mf_raise(o.error_flags, flags);
}
$ end

$ if stage == "scales" then
// Grid: x = blocks of MF_WARPS / warps_per_tile tiles of 32 rows, grid-strided;
// y = expert (masked) or 1. Lane l of a tile's warps takes row 32 * tile + l,
// the tile's warp p its groups [p * span, p * span + span): each store writes
// 32 consecutive rows of one group, a whole 128-byte line, and each warp's
// chain is one row token load, one batch of scale loads, stores. Consecutive
// groups make a lane's loads one 16-byte vector per 4 groups where H / 128 is
// a multiple of 4 (the host then makes span one too): the loads of a warp
// touch 32 token rows, and with one group per load (groups p, p + 8, ...) the
// stage was L1-bound (81% of L1 throughput at T = 16384, DeepSeek-V3).
// a_scale of (row, g) = token_scale[row_token[row], g] for the rows the
// scatter placed: r < masked_m[e] (masked), m_indices >= 0 (contiguous). Few
// registers: 2048 threads per SM keep more chains in flight than there are tiles.
__device__ __forceinline__ float mf_component(const float4 &v, int c)
{
    return c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w;
}

extern "C" __global__ void __launch_bounds__(MF_BLOCK, 2048 / MF_BLOCK)
$(entry)(const mf_scale_staging staging, const mf_outputs o, int warps_per_tile, int span)
{
    mf_wait_prior_grid();
    mf_start_dependents();
    const int groups = o.hidden_size / 128, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int part = warp % warps_per_tile, tiles_per_block = MF_WARPS / warps_per_tile;
    const int first_group = part * span, end_group = min(first_group + span, groups);
    const bool vectors = (groups & 3) == 0;
$ if contiguous then
    const int limit = o.m_capacity, first_row = 0;
    const long long pitch = o.m_capacity;
    float *__restrict__ out = o.a_scale;
$ else
    const int e = blockIdx.y, limit = o.max_m, first_row = e * o.max_m;
    const long long pitch = o.max_m;
    float *__restrict__ out = o.a_scale + (long long)e * groups * o.max_m;
    const int rows = mf_clamp_rows(o.masked_m[e], o.max_m); // in flight with the first row token
$ end
    const long long stride = (long long)gridDim.x * tiles_per_block * 32;
    for (long long r = ((long long)blockIdx.x * tiles_per_block + warp / warps_per_tile) * 32 + lane;
         r - lane < limit; r += stride) {
        // Any row below limit is inside row_token; an unplaced one goes unused.
        const int token = r < limit ? staging.row_token[first_row + r] : 0;
$ if contiguous then
        if (r >= limit || o.m_indices[r] < 0)
            continue;
$ else
        if (r - lane >= rows)
            break;
        if (r >= rows)
            continue;
$ end
        const float *__restrict__ src = staging.token_scale + (long long)token * groups;
        float *__restrict__ dst = out + r;
        for (int g = first_group; g < end_group; g += 8) {
            float4 v[2];
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int n = end_group - (g + 4 * h); // groups left from this quarter on
                if (vectors)
                    v[h] = n > 0 ? *(const float4 *)&src[g + 4 * h] : float4{};
                else
                    v[h] = float4{n > 0 ? src[g + 4 * h] : 0.0f, n > 1 ? src[g + 4 * h + 1] : 0.0f,
                                  n > 2 ? src[g + 4 * h + 2] : 0.0f, n > 3 ? src[g + 4 * h + 3] : 0.0f};
            }
#pragma unroll
            for (int i = 0; i < 8; i++)
                if (g + i < end_group)
                    dst[(g + i) * pitch] = mf_component(v[i / 4], i % 4);
        }
    }
}
$ end
