$ -- Grouped GEMM, NT, Hopper path (sm_90a): D[g, m, n] = sum_k A[g, m, k] * B[g, n, k],
$ -- fp32 accumulation, bf16 out; the same contract as gemm.cu.
$ -- One CTA per SM walks output tiles (persistent). A producer warpgroup (one
$ -- thread) streams A, B (and e4m3 activation scales) with TMA bulk tensor
$ -- copies into a ring of STAGES shared-memory stages guarded by mbarriers;
$ -- `wg` math warpgroups issue wgmma.mma_async on 64-row slices of the tile;
$ -- an e4m3 tile of 64 rows with wg = 2 splits its columns instead (each
$ -- warpgroup 64 x bn / 2), so one warpgroup's wgmmas run while the other
$ -- promotes.
$ -- e4m3: each 128-k block of each chunk (m64 slice x the tile's columns, or
$ -- half of them) goes into one scratch accumulator that is promoted into the
$ -- fp32 one with scale_a[row] * scale_b[n-block] (two-level accumulation);
$ -- warpgroups of one 64x128 chunk keep two, the next k-block's wgmmas
$ -- issued before this one is promoted.
$ -- Epilogue: bf16 through a 64B-swizzled staging buffer and TMA stores
$ -- (partial masked tiles: plain stores of the valid rows).
$ -- cluster = 2: two CTAs of a cluster take two neighbouring n-tiles of one
$ -- m-tile; each loads half of the shared A tile and multicasts it to both,
$ -- so A crosses L2 once per pair (on the H200 this measured 0.88-1.03x of
$ -- the tile alone: L2 does not bound these tiles; examples/NOTES.md).
$ -- Parameters: entry, dtype (bf16|e4m3), layout (masked|contiguous),
$ -- bm (64 or 128 rows per math warpgroup, or 64 split over two), bn (multiple of 32 in [64, 256]),
$ -- wg (math warpgroups, 1-3),
$ -- stages (ring depth), cluster (1 or 2 CTAs along N sharing A).
$ local fp8 = dtype == "e4m3"
$ assert(fp8 or dtype == "bf16", "gemm_sm90: dtype must be bf16 or e4m3")
$ assert(layout == "masked" or layout == "contiguous", "gemm_sm90: bad layout")
$ assert(wg >= 1 and wg <= 3, "gemm_sm90: wg (math warpgroups) must be 1, 2 or 3")
$ local split_n = bm < 64 * wg    -- the math warpgroups split the tile's columns
$ assert(not split_n or (fp8 and bm == 64 and wg == 2 and bn % 128 == 0),
$        "gemm_sm90: only e4m3 64-row tiles split columns, over 2 math warpgroups, bn a multiple of 128")
$ assert(split_n or (bm % (64 * wg) == 0 and bm // wg <= 128), "gemm_sm90: bm must be 64 or 128 rows per math warpgroup")
$ assert(bn % 32 == 0 and bn >= 64 and bn <= 256, "gemm_sm90: bn must be a multiple of 32 in [64, 256]")
$ assert(stages >= 2 and stages <= 12, "gemm_sm90: stages in [2, 12]")
$ assert(cluster == 1 or cluster == 2, "gemm_sm90: cluster must be 1 or 2")
$ assert(bm % (16 * cluster) == 0, "gemm_sm90: bm / cluster must be a multiple of 8 rows")
$ local wg_rows = split_n and bm or bm // wg -- rows of the tile one math warpgroup owns
$ local wg_cols = split_n and bn // wg or bn -- and its columns
$ local msub = wg_rows // 64        -- wgmma m64 slices per math warpgroup
$ local kstep = fp8 and 32 or 16    -- K of one wgmma
$ local nacc = wg_cols // 2         -- fp32 accumulators per thread per m64 slice
$ -- e4m3 promotes through one scratch accumulator of `width` columns: the
$ -- tile's width, or half of it where one 64-row slice per warpgroup and its
$ -- scratch would reach 192 registers (bn >= 192: ptxas spills there).
$ local nsub = (fp8 and msub == 1 and 2 * nacc >= 192) and 2 or 1
$ local width = wg_cols // nsub     -- columns of one wgmma
$ local nreg = width // 2           -- its fp32 accumulators per thread
$ local ab = fp8 and "e4m3" or "bf16"
$ local one_sb = 128 % width == 0   -- e4m3: each chunk lies inside one 128-column scale block
$ local threads = 128 * (wg + 1)
$ -- The register file (64K) split: producer first, the rest over the math
$ -- warpgroups in multiples of 8, at most 240.
$ local producer_regs = wg == 3 and 24 or 40
$ local math_regs = math.min(240, (65536 - 128 * producer_regs) // (128 * wg) // 8 * 8)
$ -- e4m3 with one chunk per warpgroup and registers for a second scratch
$ -- accumulator: the next k-block's wgmmas run while this one's are promoted.
$ local overlap = fp8 and msub == 1 and nsub == 1 and nacc + 2 * nreg + 40 <= math_regs
$ include("common.cuh")
$ include("gemm_common.cuh")

#define BM $(bm)
#define BN $(bn)
#define STAGES $(stages)
#define THREADS $(threads)
#define MATH_THREADS $(128 * wg)
#define BK $(fp8 and 128 or 64)   // K elements per stage: 128 bytes, one swizzle row
#define A_STAGE (BM * 128)
#define B_STAGE (BN * 128)
#define SA_STAGE $(fp8 and "(BM * 4)" or "0")
#define WG_COLS $(wg_cols)
#define D_WG_BYTES ($(wg_rows) * WG_COLS * 2) // one math warpgroup's staging buffer
// Shared memory, in this order: A stages, B stages, the bf16 staging tile (all
// 1024-aligned, as the 128B swizzle needs), activation-scale stages, mbarriers.
#define B_OFFSET (STAGES * A_STAGE)
#define D_OFFSET (STAGES * (A_STAGE + B_STAGE))
#define SA_OFFSET (D_OFFSET + BM * BN * 2)
#define BAR_OFFSET (SA_OFFSET + STAGES * SA_STAGE)
#define GROUP_M 8                   // m-tiles walked together (L2 reuse of B)
#define CLUSTER $(cluster)          // CTAs along N sharing each A tile
#define A_PART (BM / CLUSTER)       // rows of A one CTA loads (and multicasts)

// A CUtensorMap as the device sees it: 128 opaque bytes, 64-byte aligned.
struct __align__(64) mf_tensor_map {
    unsigned long long opaque[16];
};

struct mf_sm90_params {
    mf_tensor_map tm_a;     // A [rows, K], box {BK, A_PART}, 128B swizzle
    mf_tensor_map tm_b;     // B [E * N, K], box {BK, BN}, 128B swizzle
    mf_tensor_map tm_d;     // D [rows, N] bf16, box {32, wg_rows}, 64B swizzle
    mf_tensor_map tm_sa;    // e4m3: a_scale MN-major, box {BM, 1}
    mf_bf16 *d;             // D, for the plain stores of partial tiles
    const float *b_scale;   // e4m3: [E, N/128, K/128]
    const int *masked_m;    // masked
    const int *m_indices;   // contiguous
    int experts, n, k, max_m, m_capacity;
};

// ---- mbarriers -----------------------------------------------------------------
__device__ __forceinline__ void mf_bar_init(unsigned long long *bar, unsigned count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(mf_smem_addr(bar)), "r"(count));
}

__device__ __forceinline__ void mf_bar_expect_tx(unsigned long long *bar, unsigned bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(mf_smem_addr(bar)),
                 "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void mf_bar_arrive(unsigned long long *bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(mf_smem_addr(bar)) : "memory");
}

// Waits until the phase of the given parity has completed.
__device__ __forceinline__ void mf_bar_wait(unsigned long long *bar, unsigned parity)
{
    unsigned done;
    do {
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(mf_smem_addr(bar)), "r"(parity)
                     : "memory");
    } while (!done);
}

$ if cluster > 1 then
// ---- cluster --------------------------------------------------------------------
__device__ __forceinline__ unsigned mf_cluster_rank()
{
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}

// Every thread of both CTAs: orders barrier inits before any remote use, and
// keeps a CTA alive until its peer is done arriving on its barriers.
__device__ __forceinline__ void mf_cluster_sync()
{
    __syncwarp();
    asm volatile("barrier.cluster.arrive.release.aligned;\n"
                 "barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// Arrives on the barrier at the same shared-memory offset in CTA `rank`. CTA
// scope is enough: what it orders are this warp's finished wgmma reads of
// the stage, and a cluster-scope release would fence every k-block.
__device__ __forceinline__ void mf_bar_arrive_at(unsigned long long *bar, unsigned rank)
{
    asm volatile("{\n.reg .b32 remote;\n"
                 "mapa.shared::cluster.u32 remote, %0, %1;\n"
                 "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}" ::"r"(
                     mf_smem_addr(bar)),
                 "r"(rank)
                 : "memory");
}
$ end

// ---- TMA ------------------------------------------------------------------------
__device__ __forceinline__ void mf_tma_load(void *dst, const mf_tensor_map *map, int c0, int c1,
                                            unsigned long long *bar)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3}], [%4];" ::"r"(mf_smem_addr(dst)),
                 "l"(map), "r"(c0), "r"(c1), "r"(mf_smem_addr(bar))
                 : "memory");
}

$ if cluster > 1 then
// The same box into the same shared-memory offset of every CTA of the cluster,
// each CTA's barrier at `bar`'s offset counting the bytes it receives.
__device__ __forceinline__ void mf_tma_load_to_cluster(void *dst, const mf_tensor_map *map, int c0,
                                                       int c1, unsigned long long *bar)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 ".multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;" ::"r"(mf_smem_addr(dst)),
                 "l"(map), "r"(c0), "r"(c1), "r"(mf_smem_addr(bar)),
                 "h"((unsigned short)((1u << CLUSTER) - 1))
                 : "memory");
}

$ end
__device__ __forceinline__ void mf_tma_store(const mf_tensor_map *map, int c0, int c1, const void *src)
{
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];" ::"l"(map),
                 "r"(c0), "r"(c1), "r"(mf_smem_addr(src))
                 : "memory");
}

// Fetches a tensor map into the descriptor cache ahead of its first copy.
__device__ __forceinline__ void mf_tma_prefetch(const mf_tensor_map *map)
{
    asm volatile("prefetch.tensormap [%0];" ::"l"(map) : "memory");
}

__device__ __forceinline__ void mf_tma_store_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }

// The staging buffer may be rewritten once earlier stores have read it.
__device__ __forceinline__ void mf_tma_store_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory"); }

__device__ __forceinline__ void mf_tma_store_wait_all() { asm volatile("cp.async.bulk.wait_group 0;" ::: "memory"); }

// Ordinary shared-memory stores become visible to the copy engine.
__device__ __forceinline__ void mf_fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// Barrier among the 128 threads of one math warpgroup (ids 1..wg; 0 is __syncthreads).
__device__ __forceinline__ void mf_warpgroup_sync(int wg_index)
{
    asm volatile("bar.sync %0, 128;" ::"r"(wg_index + 1) : "memory");
}

// ---- wgmma ----------------------------------------------------------------------
// Descriptor of a K-major tile in shared memory with the 128-byte swizzle TMA
// wrote: rows of 128 bytes, 8-row atoms 1024 bytes apart (stride byte offset,
// high word), start address / 16 in the low 14 bits. Shared addresses stay
// below 256 KB, so the descriptor of tile + off (off a multiple of 16) is the
// low word plus off / 16: the mainloop adds constants to a base computed once
// instead of rebuilding each descriptor (which cost ~12 instructions per wgmma).
#define MF_DESC_HI ((1024u >> 4) | (1u << 30)) // stride byte offset; swizzle mode 128B

__device__ __forceinline__ unsigned mf_desc_lo(const void *tile)
{
    return ((mf_smem_addr(tile) & 0x3FFFF) >> 4) | (1u << 16);
}

// Descriptor low words of this math warpgroup's first A slice and of B, stage 0.
struct mf_descs {
    unsigned a, b;
};

__device__ __forceinline__ void mf_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void mf_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }

template <int N> __device__ __forceinline__ void mf_wgmma_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

// Keeps the compiler from moving accumulator reads or writes across a wait.
template <int N> __device__ __forceinline__ void mf_fence_regs(float (&acc)[N])
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(acc[i])::"memory");
}

$ local regs, outs = {}, {}
$ for i = 0, nreg - 1 do regs[#regs + 1] = "%" .. i; outs[#outs + 1] = '"+f"(d[' .. i .. '])' end
// d (64 x width, fp32) = (scale_d ? d : 0) + A (64 x kstep) . B (width x kstep)^T
__device__ __forceinline__ void mf_wgmma(float (&d)[$(nreg)], unsigned a_lo, unsigned b_lo,
                                         int scale_d)
{
    const unsigned long long desc_a = (unsigned long long)MF_DESC_HI << 32 | a_lo;
    const unsigned long long desc_b = (unsigned long long)MF_DESC_HI << 32 | b_lo;
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %$(nreg + 2), 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n$(width)k$(kstep).f32.$(ab).$(ab) "
                 "{$(table.concat(regs, ", "))}, %$(nreg), %$(nreg + 1), p, 1, 1$(fp8 and "" or ", 0, 0");\n}\n"
                 : $(table.concat(outs, ", "))
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// ---- tiles ----------------------------------------------------------------------
struct mf_tile {
    int expert;
    int m0;        // first row, within the expert (masked) or global (contiguous)
    int n0;
    int row_limit; // rows at or past this are not stored
    int a_row;     // row of m0 in A and D
};

struct mf_schedule {
    int m_tiles, n_units;  // n_units: n-tiles / CLUSTER (a cluster's n-tiles are one unit)
    int rank;              // this CTA's n-tile within its unit
    long long tiles;
    const int *first_tile; // masked: m-tile prefix over experts
};

// Work item idx -> (m-tile, n-unit): GROUP_M m-tiles at a time, m fastest, so
// the CTAs running at once share B tiles through L2. Every CTA of a cluster
// gets the same item and takes n-tile n_unit * CLUSTER + rank of it. false: a
// padding tile to skip.
__device__ __forceinline__ bool mf_tile_at(const mf_sm90_params &p, const mf_schedule &s,
                                           long long idx, mf_tile &t)
{
    const long long group_size = (long long)GROUP_M * s.n_units;
    const int group = (int)(idx / group_size), first_m = group * GROUP_M;
    const int rows_here = min(GROUP_M, s.m_tiles - first_m);
    const int local = (int)(idx % group_size);
    const int m_tile = first_m + local % rows_here;
    t.n0 = (local / rows_here * CLUSTER + s.rank) * BN;
$ if layout == "masked" then
    t.expert = mf_expert_of_tile(s.first_tile, p.experts, m_tile);
    t.m0 = (m_tile - s.first_tile[t.expert]) * BM;
    t.row_limit = mf_clamp_rows(p.masked_m[t.expert], p.max_m);
    t.a_row = t.expert * p.max_m + t.m0;
    return true;
$ else
    t.m0 = m_tile * BM;
    t.expert = p.m_indices[t.m0];
    t.row_limit = p.m_capacity;
    t.a_row = t.m0;
    return t.expert >= 0 && t.expert < p.experts;
$ end
}

// This cluster's work item of round k: round k covers items [k * G, (k + 1) * G)
// of the G clusters (the window that runs at once, GROUP_M m-tiles sharing
// B), and the cluster takes offset (cluster + k) mod G of it. The rotation
// keeps a CTA from drawing only padding tiles where they recur with a period
// that divides G: contiguous segments of 64 rows padded to 128, in 64-row
// tiles, make every other m-tile padding, and G = 132 is even.
__device__ __forceinline__ long long mf_item_of_round(long long k)
{
    const int clusters = gridDim.x / CLUSTER, cluster = blockIdx.x / CLUSTER;
    return k * clusters + (cluster + k) % clusters;
}

struct mf_ring {
    int stage;
    unsigned phase;
    __device__ __forceinline__ void advance()
    {
        if (++stage == STAGES) {
            stage = 0;
            phase ^= 1;
        }
    }
};

// ---- producer: one thread issues every copy ------------------------------------
$ if fp8 then
// Brings tile t's weight scales (its n-blocks' rows over all of K) into L1,
// where the math warpgroups' loads of them will hit: the producer runs a ring
// ahead of them, so the lines land before the tile's first promotion. Without
// it each tile's first scale load went to DRAM (in decode no other tile reads
// those rows) while its stages were already full.
__device__ __forceinline__ void mf_prefetch_b_scales(const mf_sm90_params &p, const mf_tile &t)
{
    const int k_blocks = p.k / BK, n_blocks = p.n / 128;
    const int first = t.n0 / 128, end = min((t.n0 + BN + 127) / 128, n_blocks);
    const float *rows = p.b_scale + ((long long)t.expert * n_blocks + first) * k_blocks;
    const unsigned long long stop = (unsigned long long)(rows + (long long)(end - first) * k_blocks);
    for (unsigned long long line = (unsigned long long)rows & ~127ull; line < stop; line += 128)
        asm volatile("prefetch.global.L1 [%0];" ::"l"(line));
}

$ end
__device__ void mf_produce(const mf_sm90_params &p, const mf_schedule &s, unsigned char *smem,
                           unsigned long long *full, unsigned long long *empty)
{
    const int k_blocks = p.k / BK;
    mf_ring ring = {0, 0};
    for (long long k = 0; k * (gridDim.x / CLUSTER) < s.tiles; k++) {
        const long long idx = mf_item_of_round(k);
        mf_tile t;
        if (idx >= s.tiles || !mf_tile_at(p, s, idx, t))
            continue;
$ if fp8 then
        mf_prefetch_b_scales(p, t);
$ end
        for (int kb = 0; kb < k_blocks; kb++, ring.advance()) {
            mf_bar_wait(&empty[ring.stage], ring.phase ^ 1);
            unsigned long long *bar = &full[ring.stage];
            mf_bar_expect_tx(bar, A_STAGE + B_STAGE + SA_STAGE);
$ if cluster > 1 then
            // Both CTAs' consumers have freed this stage (the empty barrier
            // counts the peer's warps too), so the halves may land in either.
            mf_tma_load_to_cluster(smem + ring.stage * A_STAGE + s.rank * A_PART * 128, &p.tm_a,
                                   kb * BK, t.a_row + s.rank * A_PART, bar);
$ else
            mf_tma_load(smem + ring.stage * A_STAGE, &p.tm_a, kb * BK, t.a_row, bar);
$ end
            mf_tma_load(smem + B_OFFSET + ring.stage * B_STAGE, &p.tm_b, kb * BK,
                        t.expert * p.n + t.n0, bar);
$ if fp8 then
$   if layout == "masked" then
            mf_tma_load(smem + SA_OFFSET + ring.stage * SA_STAGE, &p.tm_sa, t.m0,
                        t.expert * k_blocks + kb, bar);
$   else
            mf_tma_load(smem + SA_OFFSET + ring.stage * SA_STAGE, &p.tm_sa, t.m0,
                        kb, bar);
$   end
$ end
        }
    }
}

// ---- math warpgroups ------------------------------------------------------------
struct mf_math {
    int wg;       // math warpgroup index
    int tid;      // thread within the warpgroup
    int row;      // this thread's first accumulator row within an m64 slice
    int row0;     // the warpgroup's first row within the tile
    int col0;     // and its first column
};

$ if fp8 then
// acc[first, first + $(nreg)) += part * scale_a[row] * scale_b[n-block of the
// column]; the chunk's columns start `col` columns into the block of sb0.
__device__ __forceinline__ void mf_promote(float (&acc)[$(nacc)], int first,
                                           const float (&part)[$(nreg)], float sa_lo, float sa_hi,
                                           float sb0, float sb1, int col)
{
$   if one_sb then
    const float lo = sa_lo * sb0, hi = sa_hi * sb0;
#pragma unroll
    for (int j = 0; j < $(width // 8); j++) {
$   else
    const float lo0 = sa_lo * sb0, hi0 = sa_hi * sb0, lo1 = sa_lo * sb1, hi1 = sa_hi * sb1;
#pragma unroll
    for (int j = 0; j < $(width // 8); j++) {
        const bool in_first = col + j * 8 < 128;
        const float lo = in_first ? lo0 : lo1, hi = in_first ? hi0 : hi1;
$   end
        acc[first + j * 4 + 0] += part[j * 4 + 0] * lo;
        acc[first + j * 4 + 1] += part[j * 4 + 1] * lo;
        acc[first + j * 4 + 2] += part[j * 4 + 2] * hi;
        acc[first + j * 4 + 3] += part[j * 4 + 3] * hi;
    }
}

// Weight scales of one column chunk for one tile: the chunk's first
// 128-column block (and the next, clamped to the last; one_sb: the same).
struct mf_chunk_scales {
    const float *first, *next;
    int col; // the chunk's first column within its first block
};

// The chunk's weight scales of k-block kb (loaded ahead of the stage wait).
__device__ __forceinline__ void mf_load_b_scales(const mf_chunk_scales &cs, int kb, float (&sb)[2])
{
    sb[0] = __ldg(cs.first + kb);
    sb[1] = $(one_sb and "sb[0]" or "__ldg(cs.next + kb)");
}
$ end

$ if fp8 then
// Issues the wgmmas of one m64 slice x one column chunk over a stage into d
// (one commit group), starting d afresh: each 128-k block is promoted on its own.
__device__ __forceinline__ void mf_issue_chunk(unsigned a_slice, unsigned b_chunk,
                                               float (&d)[$(nreg)])
{
    mf_wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < BK / $(kstep); ks++) // 32 bytes of K each: + 2 in a descriptor
        mf_wgmma(d, a_slice + ks * 2, b_chunk + ks * 2, ks > 0);
    mf_wgmma_commit();
}
$ else
// Waits for a stage and issues its wgmmas into the accumulators of every
// slice (one commit group).
__device__ __forceinline__ void mf_issue(const mf_descs &descs, unsigned long long *full,
                                         const mf_ring &ring, float (&d)[$(msub)][$(nacc)])
{
    mf_bar_wait(&full[ring.stage], ring.phase);
    const unsigned a_stage = descs.a + ring.stage * (A_STAGE / 16);
    const unsigned b_stage = descs.b + ring.stage * (B_STAGE / 16);
    mf_wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < BK / $(kstep); ks++)
#pragma unroll
        for (int i = 0; i < $(msub); i++)
            mf_wgmma(d[i], a_stage + i * (64 * 128 / 16) + ks * 2, b_stage + ks * 2, 1);
    mf_wgmma_commit();
}
$ end

// Every math warp is done with the stage: one arrive per warp frees it, in
// every CTA of the cluster (each one's producer writes A into both).
__device__ __forceinline__ void mf_release(unsigned long long *empty, int stage, int tid)
{
    __syncwarp();
    if ((tid & 31) == 0) {
$ if cluster > 1 then
#pragma unroll
        for (unsigned r = 0; r < CLUSTER; r++)
            mf_bar_arrive_at(&empty[stage], r);
$ else
        mf_bar_arrive(&empty[stage]);
$ end
    }
}

$ if fp8 and not overlap then
// One stage, chunk by chunk (m64 slice x column chunk) into the one scratch
// accumulator: issue, wait, promote (the stage is freed before the last
// chunk's promotion). The other math warpgroups' wgmmas keep the tensor
// cores busy meanwhile; a scratch per chunk would not fit the registers.
__device__ __forceinline__ void mf_stage_fp8(const mf_descs &descs, const unsigned char *sa_base,
                                             unsigned long long *full, unsigned long long *empty,
                                             const mf_ring &ring, const mf_math &m,
                                             const mf_chunk_scales (&cs)[$(nsub)],
                                             const float (&sb)[$(nsub)][2], float (&part)[$(nreg)],
                                             float (&acc)[$(msub)][$(nacc)])
{
    mf_bar_wait(&full[ring.stage], ring.phase);
    const unsigned a_stage = descs.a + ring.stage * (A_STAGE / 16);
    const unsigned b_stage = descs.b + ring.stage * (B_STAGE / 16);
    const float *sa = (const float *)(sa_base + ring.stage * SA_STAGE) + m.row0;
#pragma unroll
    for (int i = 0; i < $(msub); i++) {
        const float sa_lo = sa[i * 64 + m.row], sa_hi = sa[i * 64 + m.row + 8];
#pragma unroll
        for (int c = 0; c < $(nsub); c++) {
            mf_issue_chunk(a_stage + i * (64 * 128 / 16), b_stage + c * ($(width) * 128 / 16), part);
            mf_wgmma_wait<0>();
            mf_fence_regs(part);
            if (i == $(msub) - 1 && c == $(nsub) - 1)
                mf_release(empty, ring.stage, m.tid);
            mf_promote(acc[i], c * $(nreg), part, sa_lo, sa_hi, sb[c][0], sb[c][1], cs[c].col);
        }
    }
}
$ end

$ if overlap then
// What one k-block's promotion multiplies by: this thread's two rows' A scales
// (from the stage's shared memory) and the chunk's weight scales.
struct mf_kblock_scales {
    float sa_lo, sa_hi, sb[2];
};

__device__ __forceinline__ mf_kblock_scales mf_kblock_scales_at(const unsigned char *sa_base, int stage,
                                                                const mf_math &m,
                                                                const mf_chunk_scales &cs, int kb)
{
    mf_kblock_scales k;
    mf_load_b_scales(cs, kb, k.sb);
    const float *sa = (const float *)(sa_base + stage * SA_STAGE) + m.row0;
    k.sa_lo = sa[m.row];
    k.sa_hi = sa[m.row + 8];
    return k;
}

// Issues the wgmmas of the stage after `ring` into next, then promotes the
// stage at `ring` from cur once its group is done (the tensor cores work
// through the promotion); advances the ring.
__device__ __forceinline__ void mf_step_overlapped(const mf_descs &descs, const unsigned char *sa_base,
                                                   unsigned long long *full,
                                                   unsigned long long *empty, mf_ring &ring,
                                                   const mf_math &m, const mf_chunk_scales &cs, int kb,
                                                   float (&cur)[$(nreg)], float (&next)[$(nreg)],
                                                   float (&acc)[$(nacc)])
{
    const mf_kblock_scales k = mf_kblock_scales_at(sa_base, ring.stage, m, cs, kb);
    const int stage = ring.stage;
    ring.advance();
    mf_bar_wait(&full[ring.stage], ring.phase);
    mf_issue_chunk(descs.a + ring.stage * (A_STAGE / 16), descs.b + ring.stage * (B_STAGE / 16), next);
    mf_wgmma_wait<1>();
    mf_fence_regs(cur);
    mf_release(empty, stage, m.tid);
    mf_promote(acc, 0, cur, k.sa_lo, k.sa_hi, k.sb[0], k.sb[1], cs.col);
}

// The last k-block's promotion: nothing left to issue.
__device__ __forceinline__ void mf_step_last(const unsigned char *sa_base, unsigned long long *empty,
                                             mf_ring &ring, const mf_math &m,
                                             const mf_chunk_scales &cs, int kb,
                                             float (&cur)[$(nreg)], float (&acc)[$(nacc)])
{
    const mf_kblock_scales k = mf_kblock_scales_at(sa_base, ring.stage, m, cs, kb);
    mf_wgmma_wait<0>();
    mf_fence_regs(cur);
    mf_release(empty, ring.stage, m.tid);
    ring.advance();
    mf_promote(acc, 0, cur, k.sa_lo, k.sa_hi, k.sb[0], k.sb[1], cs.col);
}

$ end
// The K loop of one tile: accumulators of this warpgroup's m64 slices.
__device__ __forceinline__ void mf_mainloop(const mf_sm90_params &p, const mf_tile &t,
                                            const mf_math &m, unsigned char *smem,
                                            unsigned long long *full, unsigned long long *empty,
                                            mf_ring &ring, float (&acc)[$(msub)][$(nacc)])
{
    const int k_blocks = p.k / BK;
    // Warp-uniform to the compiler: the descriptors live in uniform registers.
$ if split_n then
    const mf_descs descs = {__shfl_sync(0xffffffffu, mf_desc_lo(smem), 0),
                            __shfl_sync(0xffffffffu, mf_desc_lo(smem + B_OFFSET + m.col0 * 128), 0)};
$ else
    const mf_descs descs = {__shfl_sync(0xffffffffu, mf_desc_lo(smem + m.row0 * 128), 0),
                            mf_desc_lo(smem + B_OFFSET)};
$ end
#pragma unroll
    for (int i = 0; i < $(msub); i++)
#pragma unroll
        for (int j = 0; j < $(nacc); j++)
            acc[i][j] = 0.0f;
$ if fp8 then
    const int n_blocks = p.n / 128;
    const float *b_scale = p.b_scale + (long long)t.expert * n_blocks * k_blocks;
    mf_chunk_scales cs[$(nsub)];
#pragma unroll
    for (int c = 0; c < $(nsub); c++) {
        const int col = t.n0 + m.col0 + c * $(width), nb = col / 128;
        cs[c].first = b_scale + (long long)nb * k_blocks;
        cs[c].next = $(one_sb and "cs[c].first" or "nb + 1 < n_blocks ? cs[c].first + k_blocks : cs[c].first");
        cs[c].col = col % 128;
    }
    const unsigned char *sa_base = smem + SA_OFFSET;
$   if overlap then
    // k-blocks in pairs, the two scratch accumulators trading roles.
    float part0[$(nreg)], part1[$(nreg)];
    mf_bar_wait(&full[ring.stage], ring.phase);
    mf_issue_chunk(descs.a + ring.stage * (A_STAGE / 16), descs.b + ring.stage * (B_STAGE / 16), part0);
    int kb = 0;
    for (; kb + 2 < k_blocks; kb += 2) {
        mf_step_overlapped(descs, sa_base, full, empty, ring, m, cs[0], kb, part0, part1, acc[0]);
        mf_step_overlapped(descs, sa_base, full, empty, ring, m, cs[0], kb + 1, part1, part0, acc[0]);
    }
    if (kb + 1 < k_blocks) {
        mf_step_overlapped(descs, sa_base, full, empty, ring, m, cs[0], kb, part0, part1, acc[0]);
        mf_step_last(sa_base, empty, ring, m, cs[0], kb + 1, part1, acc[0]);
    } else {
        mf_step_last(sa_base, empty, ring, m, cs[0], kb, part0, acc[0]);
    }
$   else
    float part[$(nreg)];
    for (int kb = 0; kb < k_blocks; kb++, ring.advance()) {
        float sb[$(nsub)][2];
#pragma unroll
        for (int c = 0; c < $(nsub); c++)
            mf_load_b_scales(cs[c], kb, sb[c]);
        mf_stage_fp8(descs, sa_base, full, empty, ring, m, cs, sb, part, acc);
    }
$   end
$ else
    int previous = -1; // stage of the wgmma group still in flight
    for (int kb = 0; kb < k_blocks; kb++, ring.advance()) {
        mf_issue(descs, full, ring, acc);
        mf_wgmma_wait<1>(); // the previous k-block's group is done: release its stage
        if (previous >= 0)
            mf_release(empty, previous, m.tid);
        previous = ring.stage;
    }
    mf_wgmma_wait<0>();
    if (previous >= 0)
        mf_release(empty, previous, m.tid);
$ end
#pragma unroll
    for (int i = 0; i < $(msub); i++)
        mf_fence_regs(acc[i]);
}

// Byte offset of column col (even) of row r in a staging buffer made of
// 32-column chunks of 64-byte rows with TMA's 64B swizzle (16-byte unit XOR
// bits 1-2 of the row): the 8 rows x 4 words a warp writes hit 32 banks.
__device__ __forceinline__ int mf_staging_offset(int r, int col)
{
    const int chunk = col >> 5, unit = (col & 31) >> 3;
    return chunk * $(wg_rows) * 64 + r * 64 + ((unit ^ ((r >> 1) & 3)) << 4) + (col & 7) * 2;
}

// This warpgroup's rows of the tile to D: bf16 into staging, then TMA stores
// (all rows valid) or plain 16-byte stores of the valid rows.
__device__ void mf_epilogue(const mf_sm90_params &p, const mf_tile &t, const mf_math &m,
                            unsigned char *staging, float (&acc)[$(msub)][$(nacc)])
{
    const int lane = m.tid & 31;
    if (m.tid == 0)
        mf_tma_store_wait_read();
    mf_warpgroup_sync(m.wg);
#pragma unroll
    for (int i = 0; i < $(msub); i++)
#pragma unroll
        for (int j = 0; j < WG_COLS / 8; j++)
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int r = i * 64 + m.row + half * 8, col = j * 8 + (lane & 3) * 2;
                *(unsigned *)(staging + mf_staging_offset(r, col)) =
                    mf_pack_bf16x2(acc[i][j * 4 + half * 2], acc[i][j * 4 + half * 2 + 1]);
            }
    const int first_row = t.m0 + m.row0;
    const int valid = min(t.row_limit - first_row, $(wg_rows));
    mf_fence_async_shared();
    mf_warpgroup_sync(m.wg);
    if (valid == $(wg_rows)) {
        if (m.tid == 0) {
#pragma unroll
            for (int c = 0; c < WG_COLS / 32; c++)
                mf_tma_store(&p.tm_d, t.n0 + m.col0 + c * 32, t.a_row + m.row0,
                             staging + c * $(wg_rows) * 64);
            mf_tma_store_commit();
        }
        return;
    }
    for (int u = m.tid; u < valid * (WG_COLS / 8); u += 128) {
        const int r = u / (WG_COLS / 8), col = u % (WG_COLS / 8) * 8;
        const mf_bf16x8 v = *(const mf_bf16x8 *)(staging + mf_staging_offset(r, col));
        *(mf_bf16x8 *)(p.d + (long long)(t.a_row + m.row0 + r) * p.n + t.n0 + m.col0 + col) = v;
    }
}

__device__ void mf_consume(const mf_sm90_params &p, const mf_schedule &s, unsigned char *smem,
                           unsigned long long *full, unsigned long long *empty)
{
    mf_math m;
    m.wg = threadIdx.x / 128;
    m.tid = threadIdx.x % 128;
    m.row = (m.tid / 32) * 16 + (m.tid & 31) / 4;
    m.row0 = m.wg * $(split_n and 0 or wg_rows);
    m.col0 = m.wg * $(split_n and wg_cols or 0);
    unsigned char *staging = smem + D_OFFSET + m.wg * D_WG_BYTES;
    mf_ring ring = {0, 0};
    float acc[$(msub)][$(nacc)];
    for (long long k = 0; k * (gridDim.x / CLUSTER) < s.tiles; k++) {
        const long long idx = mf_item_of_round(k);
        mf_tile t;
$ if layout == "masked" then
        if (idx >= s.tiles || !mf_tile_at(p, s, idx, t))
            continue;
$ else
        // A padding tile's test reads m_indices per thread; voted, the skip is
        // warp-uniform to ptxas, which otherwise moved the overlapped
        // mainloop's descriptors and barrier addresses to vector registers.
        if (idx >= s.tiles || !__all_sync(0xffffffffu, mf_tile_at(p, s, idx, t)))
            continue;
$ end
        mf_mainloop(p, t, m, smem, full, empty, ring, acc);
        if (t.m0 + m.row0 < t.row_limit)
            mf_epilogue(p, t, m, staging, acc);
    }
    if (m.tid == 0)
        mf_tma_store_wait_all();
}

// Dynamic shared memory: 1024 bytes of alignment slack, then the layout above,
// then masked: (E + 1) ints of tile prefix.
$ if cluster > 1 then
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MF_CLUSTER_DIMS __cluster_dims__(CLUSTER, 1, 1) // launched only as clusters
#else
#define MF_CLUSTER_DIMS
#endif
$ else
#define MF_CLUSTER_DIMS
$ end
extern "C" __global__ void __launch_bounds__(THREADS, 1) MF_CLUSTER_DIMS
$(entry)(const __grid_constant__ mf_sm90_params p)
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ unsigned char smem_raw[];
    // The pad is the same for every thread; shuffled, ptxas knows it too and
    // keeps the ring's addresses in uniform registers (computed per thread, it
    // rebuilt the shared window base with S2UR and R2UR every k-block in
    // several configs).
    const unsigned pad = (1024 - (mf_smem_addr(smem_raw) & 1023)) & 1023;
    unsigned char *smem = smem_raw + __shfl_sync(0xffffffffu, pad, 0);
    unsigned long long *full = (unsigned long long *)(smem + BAR_OFFSET);
    unsigned long long *empty = full + STAGES;
    if (threadIdx.x == MATH_THREADS) { // the descriptors load while the schedule is built
        mf_tma_prefetch(&p.tm_a);
        mf_tma_prefetch(&p.tm_b);
        mf_tma_prefetch(&p.tm_d);
$ if fp8 then
        mf_tma_prefetch(&p.tm_sa);
$ end
    }
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; s++) {
            mf_bar_init(&full[s], 1);
            mf_bar_init(&empty[s], CLUSTER * MATH_THREADS / 32);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
$ if cluster > 1 then
    mf_cluster_sync();
$ end
    mf_wait_prior_grid();
    mf_start_dependents();
    mf_schedule s;
    s.n_units = p.n / (BN * CLUSTER);
    s.rank = $(cluster > 1 and "mf_cluster_rank()" or "0");
$ if layout == "masked" then
    int *first_tile = (int *)(empty + STAGES);
    mf_masked_tile_prefix(p.masked_m, p.experts, p.max_m, BM, THREADS, first_tile);
    s.first_tile = first_tile;
    // Warp-uniform to the compiler (a per-thread load would make the tile
    // loop's bound, and so the ring's state, vector registers: the masked
    // mainloop then ran 7% behind the contiguous one on the same tiles).
    s.m_tiles = __shfl_sync(0xffffffffu, first_tile[p.experts], 0);
$ else
    __syncthreads();
    s.first_tile = 0;
    s.m_tiles = p.m_capacity / BM;
$ end
    s.tiles = (long long)s.m_tiles * s.n_units;
    if (threadIdx.x >= MATH_THREADS) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 $(producer_regs);");
        if (threadIdx.x == MATH_THREADS)
            mf_produce(p, s, smem, full, empty);
    } else {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 $(math_regs);");
        mf_consume(p, s, smem, full, empty);
    }
$ if cluster > 1 then
    mf_cluster_sync();
$ end
#else
    __trap(); // wgmma, setmaxnreg: sm_90a only; the runtime launches this family nowhere else
#endif
}
