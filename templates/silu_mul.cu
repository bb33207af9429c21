$ -- SiLU-and-mul: out = silu(gate) * up, fp32 math, one rounding to bf16.
$ -- Parameters: entry, block (threads), unroll (16-byte vectors in flight per
$ -- thread), dtype (bf16), layout (masked).
$ assert(dtype == "bf16", "silu_mul: only dtype=bf16 output so far")
$ assert(layout == "masked", "silu_mul: only layout=masked so far")
$ assert(block % 32 == 0 and block <= 1024, "silu_mul: block must be a multiple of 32, <= 1024")
$ include("common.cuh")

__device__ __forceinline__ float mf_silu(float x)
{
    return x / (1.0f + expf(-x));
}

// Grid: x strides over (row, 8-column vector) pairs of one expert, y = expert.
// input [E, max_m, 2n] (gate | up), output [E, max_m, n]; rows >= masked_m[e]
// are neither read nor written.
extern "C" __global__ void __launch_bounds__($(block))
$(entry)(const mf_bf16x8 *__restrict__ input, mf_bf16x8 *__restrict__ output,
         const int *__restrict__ masked_m, int max_m, int n)
{
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
            float g[8], v[8];
            mf_unpack_bf16x8(gate[$(u)], g);
            mf_unpack_bf16x8(up[$(u)], v);
#pragma unroll
            for (int j = 0; j < 8; j++)
                g[j] = mf_silu(g[j]) * v[j];
            const long long row = i$(u) / vecs_per_row, col = i$(u) - row * vecs_per_row;
            out[row * vecs_per_row + col] = mf_pack_bf16x8(g);
        }
$ end
    }
}
