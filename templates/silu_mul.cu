$ -- SiLU-and-mul: silu(gate) * up in fp32, written as bf16 (rounded once) or as
$ -- e4m3 quantized per (row, 128 columns) with fp32 scales, as preprocess does.
$ -- Parameters: entry, block (threads), unroll (16-byte vectors per thread and
$ -- iteration), dtype (output: bf16 | e4m3), layout (masked | contiguous).
$ assert(dtype == "bf16" or dtype == "e4m3", "silu_mul: dtype must be bf16 or e4m3")
$ assert(layout == "masked" or layout == "contiguous",
$        "silu_mul: layout must be masked or contiguous")
$ assert(block % 32 == 0 and block <= 1024, "silu_mul: block must be a multiple of 32, <= 1024")
$ assert(unroll >= 1 and unroll <= 8, "silu_mul: unroll must be in [1, 8]")
$ local fp8 = dtype == "e4m3"
$ local masked = layout == "masked"
$ include("common.cuh")
$ if fp8 then
$ include("fp8.cuh")

// silu(x) = x / (1 + e^-x), the division done as an approximate reciprocal and
// one exact fma-remainder correction (Markstein), without the range check and
// slow path of a general division. For every bf16 x with |x| <= 87 the result
// has the bits of the IEEE division (checked exhaustively on sm_90a); below
// -87, where e^-x nears or passes FLT_MAX, it is -0 where the division gives a
// value under 1e-36: both quantize to 0 whatever the group's scale (>= 2e-13).
__device__ __forceinline__ float mf_silu(float x)
{
    const float d = fminf(1.0f + expf(-x), 3.402823466e38f); // finite: no NaN remainder
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(d));
    const float q0 = __fmul_rn(x, r);
    return __fmaf_rn(-__fmaf_rn(d, q0, -x), r, q0); // negated remainder: silu(-0) = -0
}
$ else

__device__ __forceinline__ float mf_silu(float x)
{
    return x / (1.0f + expf(-x));
}
$ end

// p[j] = silu(gate[j]) * up[j] in fp32 for one 16-byte vector of each.
__device__ __forceinline__ void mf_silu_mul8(const mf_bf16x8 &gate, const mf_bf16x8 &up, float (&p)[8])
{
    float v[8];
    mf_unpack_bf16x8(gate, p);
    mf_unpack_bf16x8(up, v);
#pragma unroll
    for (int j = 0; j < 8; j++)
        p[j] = mf_silu(p[j]) * v[j];
}
$ if masked and not fp8 then

// Grid: x strides over the (row, 8-column vector) pairs of one expert, y = expert.
// input [E, max_m, 2n] (gate | up), output [E, max_m, n]; rows >= masked_m[e]
// are neither read nor written.
extern "C" __global__ void __launch_bounds__($(block))
$(entry)(const mf_bf16x8 *__restrict__ input, mf_bf16x8 *__restrict__ output,
         const int *__restrict__ masked_m, int max_m, int n)
{
    mf_wait_prior_grid();
    mf_start_dependents();
    const int expert = blockIdx.y;
    const long long vecs_per_row = n / 8;
    const long long total = mf_clamp_rows(masked_m[expert], max_m) * vecs_per_row;
    const mf_bf16x8 *in = input + (long long)expert * max_m * 2 * vecs_per_row;
    mf_bf16x8 *out = output + (long long)expert * max_m * vecs_per_row;
    const long long stride = (long long)gridDim.x * $(block);

    for (long long base = (long long)blockIdx.x * $(block) + threadIdx.x; base < total;
         base += stride * $(unroll)) {
        mf_bf16x8 gate[$(unroll)], up[$(unroll)];
$ for u = 0, unroll - 1 do
        const long long i$(u) = base + $(u) * stride;
        if (i$(u) < total) {
            const long long row = i$(u) / vecs_per_row, col = i$(u) - row * vecs_per_row;
            gate[$(u)] = in[row * 2 * vecs_per_row + col];
            up[$(u)] = in[row * 2 * vecs_per_row + vecs_per_row + col];
        }
$ end
$ for u = 0, unroll - 1 do
        if (i$(u) < total) {
            float g[8];
            mf_silu_mul8(gate[$(u)], up[$(u)], g);
            const long long row = i$(u) / vecs_per_row, col = i$(u) - row * vecs_per_row;
            out[row * vecs_per_row + col] = mf_pack_bf16x8(g);
        }
$ end
    }
}
$ else

// Moves a (row, column) position forward by drow rows and dcol columns.
// Unsigned: row stays below 2^32 (rows and drow are below 2^31).
__device__ __forceinline__ void mf_advance(unsigned &row, unsigned &col, unsigned drow,
                                           unsigned dcol, unsigned vecs_per_row)
{
    row += drow;
    col += dcol;
    if (col >= vecs_per_row) {
        col -= vecs_per_row;
        row++;
    }
}

$ if masked then
// Grid: x strides over the (row, 8-column vector) pairs of one expert, y = expert.
// input [E, max_m, 2n] (gate | up); rows >= masked_m[e] are neither read nor written.
$ else
// Grid: x strides over the (row, 8-column vector) pairs of all m_capacity rows.
// input [m_capacity, 2n] (gate | up); rows whose m_indices entry is negative
// (padding) are neither read nor written.
$ end
// Thread t handles vectors i = blockIdx.x * block + t + u * stride (+ k * step
// on iteration k), tracked as (row, column): no division per vector. The loads
// of iteration k + 1 are issued before iteration k computes (the m_indices
// lookup and the e4m3 math make each vector cost more than its loads). The loop
// bound is block-uniform: every lane runs every iteration, only work is guarded.
$ if fp8 then
// e4m3: a vector's 8 values go out as 8 bytes; its 128-column group is the 16
// vectors of an aligned half-warp (n/8 % 16 == 0 and i is congruent to t mod
// 32), which reduces the group's amax with shuffles; its lane 0 writes the scale.
$ end
extern "C" __global__ void __launch_bounds__($(block))
$(entry)(const mf_bf16x8 *__restrict__ input,
$ if fp8 then
         uint2 *__restrict__ output, float *__restrict__ out_scale, int ue8m0,
$ else
         mf_bf16x8 *__restrict__ output,
$ end
$ if masked then
         const int *__restrict__ masked_m, int max_m, int n)
$ else
         const int *__restrict__ m_indices, int m_capacity, int n)
$ end
{
    mf_wait_prior_grid();
    mf_start_dependents();
    const unsigned vecs_per_row = n / 8;
$ local out_type = fp8 and "uint2" or "mf_bf16x8"
$ if masked then
    const int expert = blockIdx.y;
    const unsigned rows = mf_clamp_rows(masked_m[expert], max_m);
    const long long first_row = (long long)expert * max_m;
    const mf_bf16x8 *in = input + first_row * 2 * vecs_per_row;
    $(out_type) *out = output + first_row * vecs_per_row;
$ if fp8 then
    float *scale = out_scale + first_row * (n / 128); // [E, n/128, max_m]
    const long long scale_stride = max_m;
$ end
$ else
    const unsigned rows = m_capacity;
    const mf_bf16x8 *in = input;
    $(out_type) *out = output;
$ if fp8 then
    float *scale = out_scale; // [n/128, m_capacity]
    const long long scale_stride = m_capacity;
$ end
$ end
    const long long total = (long long)rows * vecs_per_row;
    const unsigned stride = gridDim.x * $(block), step = stride * $(unroll);
    const unsigned drow = step / vecs_per_row, dcol = step % vecs_per_row;
    const unsigned first = blockIdx.x * $(block) + threadIdx.x;
$ -- The guarded loads of the vectors at (<prefix>row<u>, <prefix>col<u>).
$ local function emit_loads(prefix, indent)
$   for u = 0, unroll - 1 do
$     local row, col = prefix .. "row" .. u, prefix .. "col" .. u
$     if masked then
$(indent)bool $(prefix)valid$(u) = $(row) < rows;
$     else
$(indent)bool $(prefix)valid$(u) = $(row) < rows && m_indices[$(row)] >= 0;
$     end
$(indent)if ($(prefix)valid$(u)) {
$(indent)    const mf_bf16x8 *gate_up = in + (long long)$(row) * 2 * vecs_per_row + $(col);
$(indent)    $(prefix)gate[$(u)] = gate_up[0];
$(indent)    $(prefix)up[$(u)] = gate_up[vecs_per_row];
$(indent)}
$   end
$ end
$ for u = 0, unroll - 1 do
    unsigned row$(u) = (first + $(u) * stride) / vecs_per_row;
    unsigned col$(u) = (first + $(u) * stride) % vecs_per_row;
$ end
    mf_bf16x8 gate[$(unroll)], up[$(unroll)];
$ emit_loads("", "    ")

    for (long long base = (long long)blockIdx.x * $(block); base < total; base += step) {
        mf_bf16x8 next_gate[$(unroll)], next_up[$(unroll)];
$ for u = 0, unroll - 1 do
        unsigned next_row$(u) = row$(u), next_col$(u) = col$(u);
        mf_advance(next_row$(u), next_col$(u), drow, dcol, vecs_per_row);
$ end
$ emit_loads("next_", "        ")
$ if fp8 then
        float p[$(unroll)][8], amax[$(unroll)];
$ for u = 0, unroll - 1 do
        amax[$(u)] = 0.0f;
        if (valid$(u)) {
            mf_silu_mul8(gate[$(u)], up[$(u)], p[$(u)]);
#pragma unroll
            for (int j = 0; j < 8; j++)
                amax[$(u)] = fmaxf(amax[$(u)], fabsf(p[$(u)][j]));
        }
$ end
$ for u = 0, unroll - 1 do
        amax[$(u)] = mf_group16_amax(amax[$(u)]);
$ end
$ for u = 0, unroll - 1 do
        if (valid$(u)) {
            const float s = mf_fp8_scale(amax[$(u)], ue8m0 != 0);
            out[(long long)row$(u) * vecs_per_row + col$(u)] = mf_quantize8(p[$(u)], s);
            if ((threadIdx.x & 15) == 0)
                scale[(long long)(col$(u) / 16) * scale_stride + row$(u)] = s;
        }
$ end
$ else
$ for u = 0, unroll - 1 do
        if (valid$(u)) {
            float g[8];
            mf_silu_mul8(gate[$(u)], up[$(u)], g);
            out[(long long)row$(u) * vecs_per_row + col$(u)] = mf_pack_bf16x8(g);
        }
$ end
$ end
$ for u = 0, unroll - 1 do
        row$(u) = next_row$(u);
        col$(u) = next_col$(u);
        valid$(u) = next_valid$(u);
        gate[$(u)] = next_gate[$(u)];
        up[$(u)] = next_up[$(u)];
$ end
    }
}
$ end
