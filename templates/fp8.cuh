$ -- FP8 (e4m3) quantization per 128-column group, shared by preprocess and
$ -- silu_mul. A group is 16 consecutive threads holding 8 values each.

// Two floats -> two e4m3 (round to nearest even, saturating) packed in 16 bits (sm_89+).
__device__ __forceinline__ unsigned short mf_pack_e4m3x2(float lo, float hi)
{
    unsigned short r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
}

// max |x| over the 16 lanes of this thread's half-warp (every lane of the warp
// must call it).
__device__ __forceinline__ float mf_group16_amax(float local)
{
#pragma unroll
    for (int offset = 8; offset > 0; offset >>= 1)
        local = fmaxf(local, __shfl_xor_sync(0xffffffffu, local, offset));
    return local;
}

// DESIGN.md: scale = max(amax, 1e-10) / 448; with ue8m0 rounded up to 2^k.
// The division is a product with 1/448 plus an exact fma correction: the same
// bits as __fdiv_rn for every amax (checked exhaustively on sm_90a), cheaper.
__device__ __forceinline__ float mf_fp8_scale(float amax, bool ue8m0)
{
    const float a = fmaxf(amax, 1e-10f), inv = 1.0f / 448.0f;
    const float q0 = __fmul_rn(a, inv);
    float s = __fmaf_rn(__fmaf_rn(-q0, 448.0f, a), inv, q0);
    if (ue8m0) {
        unsigned int bits = __float_as_uint(s);
        if (bits & 0x7fffffu)
            bits = (bits & 0xff800000u) + 0x800000u;
        s = __uint_as_float(bits);
    }
    return s;
}

// x / scale rounded to nearest like __fdiv_rn, from r = 1 / scale rounded to
// nearest: q0 = x * r is within an ulp of the quotient, the fma remainder is
// exact, and q0 + remainder * r rounds correctly (Markstein). The remainder is
// taken negated, q0 * scale - x, so that x = -0 gives -0 (x - q0 * scale would
// be +0 and turn the result into +0). Three instructions instead of a division;
// no difference from __fdiv_rn in 2^32 random (x, scale) pairs on sm_90a.
__device__ __forceinline__ float mf_div_by_scale(float x, float scale, float r)
{
    const float q0 = __fmul_rn(x, r);
    return __fmaf_rn(-__fmaf_rn(q0, scale, -x), r, q0);
}

// Quantizes 8 values with the group's scale: q = saturate_rne(x / scale).
__device__ __forceinline__ uint2 mf_quantize8(const float v[8], float scale)
{
    const float r = __frcp_rn(scale);
    float q[8];
#pragma unroll
    for (int i = 0; i < 8; i++)
        q[i] = mf_div_by_scale(v[i], scale, r);
    uint2 packed;
    packed.x = mf_pack_e4m3x2(q[0], q[1]) | ((unsigned int)mf_pack_e4m3x2(q[2], q[3]) << 16);
    packed.y = mf_pack_e4m3x2(q[4], q[5]) | ((unsigned int)mf_pack_e4m3x2(q[6], q[7]) << 16);
    return packed;
}
