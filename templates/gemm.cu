$ -- Grouped GEMM, NT, portable tensor-core path (mma.sync, cp.async; sm_80+,
$ -- e4m3 needs sm_89+): D[g, m, n] = sum_k A[g, m, k] * B[g, n, k], fp32
$ -- accumulation, bf16 out. e4m3: per 128-k block, the tensor-core partial sum
$ -- is promoted into fp32 registers scaled by scale_a[m, kb] * scale_b[nb, kb].
$ -- Parameters: entry, dtype (bf16|e4m3), layout (masked|contiguous), bm, bn
$ -- (tile), wm, wn (warp grid), stages (cp.async pipeline depth).
$ -- Shared memory holds 128 bytes of K per row and stage (64 bf16 or 128 e4m3)
$ -- with a 16-byte-chunk XOR swizzle, so ldmatrix reads are conflict-free and
$ -- both dtypes share one fragment layout (m16n8k16 bf16 and m16n8k32 e4m3 map
$ -- the same bytes to the same registers).
$ local fp8 = dtype == "e4m3"
$ assert(fp8 or dtype == "bf16", "gemm: dtype must be bf16 or e4m3")
$ assert(layout == "masked" or layout == "contiguous", "gemm: bad layout")
$ local wtm, wtn = bm // wm, bn // wn
$ assert(bm % wm == 0 and bn % wn == 0 and wtm % 16 == 0 and wtn % 16 == 0, "gemm: warp tile must be a multiple of 16x16")
$ assert(stages >= 2 and stages <= 8, "gemm: stages in [2, 8]")
$ assert(not fp8 or 128 % bn == 0, "gemm: e4m3 needs bn dividing 128 (one weight scale per tile)")
$ local mi, ni = wtm // 16, wtn // 8
$ local threads = wm * wn * 32
$ include("common.cuh")
$ include("gemm_common.cuh")

#define BM $(bm)
#define BN $(bn)
#define STAGES $(stages)
#define THREADS $(threads)
#define ROW_BYTES 128
#define A_STAGE (BM * ROW_BYTES)
#define B_STAGE (BN * ROW_BYTES)
$ if fp8 then
#define SA_STAGE (BM * 4)
#define SB_STAGE 16
$ else
#define SA_STAGE 0
#define SB_STAGE 0
$ end
#define STAGE_BYTES (A_STAGE + B_STAGE + SA_STAGE + SB_STAGE)

struct mf_gemm_params {
    const unsigned char *a;  // masked [E, max_m, K], contiguous [m_capacity, K]
    const float *a_scale;    // e4m3: masked [E, K/128, max_m], contiguous [K/128, m_capacity]
    const unsigned char *b;  // [E, N, K]
    const float *b_scale;    // e4m3: [E, N/128, K/128]
    mf_bf16 *d;              // masked [E, max_m, N], contiguous [m_capacity, N]
    const int *masked_m;     // masked
    const int *m_indices;    // contiguous
    int experts, n, k, max_m, m_capacity;
};

// Byte offset of 16-byte chunk c of row r: chunks XOR-swizzled by the row.
__device__ __forceinline__ int mf_swizzle(int r, int c)
{
    return r * ROW_BYTES + ((c ^ (r & 7)) << 4);
}

// cp.async of 16 bytes; valid == false zero-fills without reading.
__device__ __forceinline__ void mf_cp_async16(void *smem, const void *gmem, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(mf_smem_addr(smem)),
                 "l"(gmem), "r"(valid ? 16 : 0));
}

$ if fp8 then
__device__ __forceinline__ void mf_cp_async4(void *smem, const void *gmem, bool valid)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(mf_smem_addr(smem)),
                 "l"(gmem), "r"(valid ? 4 : 0));
}
$ end

__device__ __forceinline__ void mf_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N> __device__ __forceinline__ void mf_cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void mf_ldmatrix_x4(unsigned r[4], const void *smem)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(mf_smem_addr(smem)));
}

__device__ __forceinline__ void mf_mma(float c[4], const unsigned a[4], unsigned b0, unsigned b1)
{
$ if fp8 then
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
$ else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
$ end
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One output tile: which rows of A/D, which weights, how many rows are real.
struct mf_tile {
    int expert;
    int m0;          // first row, in the expert's rows (masked) or global (contiguous)
    int n0;
    int row_limit;   // rows at or past this are not loaded or stored
    long long a_row; // A/D row of m0 (masked: expert * max_m + m0)
};

// Issues the cp.async loads of k-block kt into a stage.
__device__ __forceinline__ void mf_load_stage(const mf_gemm_params &p, const mf_tile &t, int kt,
                                              unsigned char *stage)
{
    const long long k_bytes = (long long)p.k * $(fp8 and 1 or 2);
    const unsigned char *a = p.a + t.a_row * k_bytes + kt * ROW_BYTES;
    const unsigned char *b = p.b + ((long long)t.expert * p.n + t.n0) * k_bytes + kt * ROW_BYTES;
    for (int i = threadIdx.x; i < BM * 8; i += THREADS) {
        const int r = i >> 3, c = i & 7;
        const bool valid = t.m0 + r < t.row_limit;
        mf_cp_async16(stage + mf_swizzle(r, c), valid ? a + r * k_bytes + c * 16 : p.a, valid);
    }
    for (int i = threadIdx.x; i < BN * 8; i += THREADS) {
        const int r = i >> 3, c = i & 7;
        mf_cp_async16(stage + A_STAGE + mf_swizzle(r, c), b + r * k_bytes + c * 16, true);
    }
$ if fp8 then
    float *sa = (float *)(stage + A_STAGE + B_STAGE);
$   if layout == "masked" then
    const float *scales = p.a_scale + ((long long)t.expert * (p.k / 128) + kt) * p.max_m;
$   else
    const float *scales = p.a_scale + (long long)kt * p.m_capacity;
$   end
    for (int r = threadIdx.x; r < BM; r += THREADS) {
        const bool valid = t.m0 + r < t.row_limit;
        mf_cp_async4(sa + r, valid ? scales + t.m0 + r : p.a_scale, valid);
    }
    if (threadIdx.x == 0) {
        const long long nb = (long long)t.expert * (p.n / 128) + t.n0 / 128;
        mf_cp_async4(sa + BM, p.b_scale + nb * (p.k / 128) + kt, true);
    }
$ end
}

// Tensor-core work on one stage: 4 k-steps of 32 bytes.
__device__ __forceinline__ void mf_compute_stage(const unsigned char *stage, int warp_m, int warp_n,
                                                 float acc[$(mi)][$(ni)][4])
{
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
        unsigned a[$(mi)][4], b[$(ni // 2)][4];
#pragma unroll
        for (int i = 0; i < $(mi); i++) {
            const int r = warp_m * $(wtm) + i * 16 + (lane & 15);
            mf_ldmatrix_x4(a[i], stage + mf_swizzle(r, ks * 2 + (lane >> 4)));
        }
#pragma unroll
        for (int j = 0; j < $(ni // 2); j++) {
            const int r = warp_n * $(wtn) + j * 16 + (lane & 7) + ((lane >> 4) << 3);
            mf_ldmatrix_x4(b[j], stage + A_STAGE + mf_swizzle(r, ks * 2 + ((lane >> 3) & 1)));
        }
#pragma unroll
        for (int i = 0; i < $(mi); i++)
#pragma unroll
            for (int j = 0; j < $(ni); j++)
                mf_mma(acc[i][j], a[i], b[j / 2][(j & 1) * 2], b[j / 2][(j & 1) * 2 + 1]);
    }
}

$ if fp8 then
// acc += partial * scale_a[row] * scale_b, then partial = 0 (every 128 of K).
__device__ __forceinline__ void mf_promote(const unsigned char *stage, int warp_m,
                                           float partial[$(mi)][$(ni)][4], float acc[$(mi)][$(ni)][4])
{
    const float *sa = (const float *)(stage + A_STAGE + B_STAGE);
    const float sb = sa[BM];
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < $(mi); i++) {
        const int r = warp_m * $(wtm) + i * 16 + (lane >> 2);
        const float lo = sa[r] * sb, hi = sa[r + 8] * sb;
#pragma unroll
        for (int j = 0; j < $(ni); j++) {
            acc[i][j][0] += partial[i][j][0] * lo;
            acc[i][j][1] += partial[i][j][1] * lo;
            acc[i][j][2] += partial[i][j][2] * hi;
            acc[i][j][3] += partial[i][j][3] * hi;
            partial[i][j][0] = partial[i][j][1] = partial[i][j][2] = partial[i][j][3] = 0.0f;
        }
    }
}
$ end

// bf16 pairs straight from the accumulators; rows past the limit are skipped.
__device__ __forceinline__ void mf_store_tile(const mf_gemm_params &p, const mf_tile &t, int warp_m,
                                              int warp_n, float acc[$(mi)][$(ni)][4])
{
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < $(mi); i++)
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int r = warp_m * $(wtm) + i * 16 + (lane >> 2) + half * 8;
            if (t.m0 + r >= t.row_limit)
                continue;
            unsigned *row = (unsigned *)(p.d + (t.a_row + r) * p.n + t.n0 + warp_n * $(wtn));
#pragma unroll
            for (int j = 0; j < $(ni); j++)
                row[j * 4 + (lane & 3)] =
                    mf_pack_bf16x2(acc[i][j][half * 2], acc[i][j][half * 2 + 1]);
        }
}

// The pipelined K loop of one tile.
__device__ void mf_gemm_tile(const mf_gemm_params &p, const mf_tile &t, unsigned char *smem)
{
    const int warp = threadIdx.x >> 5, warp_m = warp / $(wn), warp_n = warp % $(wn);
    const int k_tiles = p.k * $(fp8 and 1 or 2) / ROW_BYTES;
    float acc[$(mi)][$(ni)][4];
$ if fp8 then
    float partial[$(mi)][$(ni)][4];
$ end
#pragma unroll
    for (int i = 0; i < $(mi); i++)
#pragma unroll
        for (int j = 0; j < $(ni); j++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                acc[i][j][c] = 0.0f;
$ if fp8 then
                partial[i][j][c] = 0.0f;
$ end
            }
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < k_tiles)
            mf_load_stage(p, t, s, smem + s * STAGE_BYTES);
        mf_cp_async_commit();
    }
    for (int kt = 0; kt < k_tiles; kt++) {
        mf_cp_async_wait<STAGES - 2>();
        __syncthreads(); // stage kt landed for all; stage kt-1 is free to refill
        const int next = kt + STAGES - 1;
        if (next < k_tiles)
            mf_load_stage(p, t, next, smem + (next % STAGES) * STAGE_BYTES);
        mf_cp_async_commit();
        const unsigned char *stage = smem + (kt % STAGES) * STAGE_BYTES;
$ if fp8 then
        mf_compute_stage(stage, warp_m, warp_n, partial);
        mf_promote(stage, warp_m, partial, acc);
$ else
        mf_compute_stage(stage, warp_m, warp_n, acc);
$ end
    }
    mf_cp_async_wait<0>();
    __syncthreads(); // the next tile reuses the stages
    mf_store_tile(p, t, warp_m, warp_n, acc);
}

$ if layout == "masked" then
// Persistent grid: each block walks tiles (expert, m-tile, n-tile) in order,
// n fastest so neighbouring blocks share A rows; experts with no rows own no
// tile. Dynamic shared memory: STAGES * STAGE_BYTES + (E + 1) * 4.
extern "C" __global__ void __launch_bounds__(THREADS) $(entry)(const mf_gemm_params p)
{
    mf_wait_prior_grid();
    mf_start_dependents();
    extern __shared__ __align__(128) unsigned char smem[];
    int *first_tile = (int *)(smem + STAGES * STAGE_BYTES); // [E + 1] m-tile prefix
    mf_masked_tile_prefix(p.masked_m, p.experts, p.max_m, BM, THREADS, first_tile);
    const int n_tiles = p.n / BN;
    const long long tiles = (long long)first_tile[p.experts] * n_tiles;
    for (long long tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const int m_tile = (int)(tile / n_tiles);
        mf_tile t;
        t.expert = mf_expert_of_tile(first_tile, p.experts, m_tile);
        t.m0 = (m_tile - first_tile[t.expert]) * BM;
        t.n0 = (int)(tile % n_tiles) * BN;
        t.row_limit = mf_clamp_rows(p.masked_m[t.expert], p.max_m);
        t.a_row = (long long)t.expert * p.max_m + t.m0;
        mf_gemm_tile(p, t, smem);
    }
}
$ else
// One block per (n-tile, m-tile); tiles whose first row is padding (-1) exit.
// Segments start at multiples of BM, so a tile never mixes experts.
// Dynamic shared memory: STAGES * STAGE_BYTES.
extern "C" __global__ void __launch_bounds__(THREADS) $(entry)(const mf_gemm_params p)
{
    mf_wait_prior_grid();
    mf_start_dependents();
    extern __shared__ __align__(128) unsigned char smem[];
    mf_tile t;
    t.m0 = blockIdx.y * BM;
    t.n0 = blockIdx.x * BN;
    t.expert = p.m_indices[t.m0];
    if (t.expert < 0 || t.expert >= p.experts)
        return;
    t.row_limit = p.m_capacity;
    t.a_row = t.m0;
    mf_gemm_tile(p, t, smem);
}
$ end
