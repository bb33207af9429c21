"""Peers for bench_gemm, run in the same device session: the dense bf16 GEMM
ceiling (torch.matmul, cuBLAS) and torch._grouped_mm on the issue's shapes.

    python3 examples/peer_gemm.py
Device time of one call, calls run back to back in batches (device_ms, as
bench_gemm times ours), random inputs (never zeros).
"""
import torch

from cuda_timing import device_ms

SHAPES = [(1, 1024, 4096, 7168), (1, 1024, 7168, 2048), (2, 512, 4096, 7168),
          (2, 512, 7168, 2048), (4, 256, 4096, 7168), (4, 256, 7168, 2048),
          (32, 64, 4096, 7168), (32, 64, 7168, 2048), (4, 8192, 4096, 7168),
          (4, 8192, 7168, 2048), (8, 4096, 4096, 7168), (8, 4096, 7168, 2048),
          (128, 256, 1536, 2048), (128, 256, 2048, 768)]


def dense_ceiling():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = device_ms(lambda: a @ b)
    return 2 * 8192 ** 3 / (ms * 1e-3) / 1e12


def grouped(e, m, n, k):
    a = torch.randn(e, m, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(e, n, k, device="cuda", dtype=torch.bfloat16)  # [E, N, K], K-major like ours
    batched = device_ms(lambda: torch._grouped_mm(a, b.transpose(1, 2)))
    offs = torch.arange(m, e * m + 1, m, device="cuda", dtype=torch.int32)
    flat = a.reshape(e * m, k)
    offsets = device_ms(lambda: torch._grouped_mm(flat, b.transpose(1, 2), offs=offs))
    flops = 2 * e * m * n * k
    return flops / (batched * 1e-3) / 1e12, flops / (offsets * 1e-3) / 1e12


def main():
    print(f"dense bf16 8192^3 (cuBLAS via torch): {dense_ceiling():.1f} TFLOP/s")
    print(f"{'E x m, N, K':<22} {'torch 3D (masked)':>18} {'torch offs (contig)':>20}")
    for e, m, n, k in SHAPES:
        masked, contiguous = grouped(e, m, n, k)
        print(f"{f'{e}x{m}, {n}, {k}':<22} {masked:>18.1f} {contiguous:>20.1f}")


if __name__ == "__main__":
    main()
