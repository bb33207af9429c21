"""Side by side on the device: one MoE layer computed by a PyTorch eager
composition (sort/scatter, torch._grouped_mm, silu, gather-sum) and by
moeforge's layer (libmoeforge through ctypes, on the very same torch tensors and
stream), checked against each other and timed in one process run.

    LD_LIBRARY_PATH=build:.devlibs python3 examples/compare_torch.py [bf16|e4m3] [PRESET...]

Prints per preset and T: torch ms, moeforge ms (CUDA graph replay of one
forward), the speedup, and the relative difference of the two outputs.
FP8: torch has no 128x128 block-scaled grouped GEMM, so its side runs
torch._grouped_mm on the dequantized (bf16) weights; moeforge runs FP8.
"""
import ctypes
import os
import sys

import torch
import torch.nn.functional as F

from cuda_timing import median_ms

PRESETS = {"deepseek-v3": (7168, 2048, 256, 8), "qwen3-235b": (4096, 1536, 128, 8),
           "qwen3-30b": (2048, 768, 128, 8), "mixtral": (4096, 14336, 8, 2)}
TOKENS = [1, 64, 512, 4096, 16384]
BF16, E4M3, AUTO = 1, 2, 0


class LayerDesc(ctypes.Structure):
    _fields_ = [("hidden", ctypes.c_int), ("intermediate", ctypes.c_int),
                ("experts", ctypes.c_int), ("topk", ctypes.c_int), ("dtype", ctypes.c_int),
                ("layout", ctypes.c_int), ("ue8m0", ctypes.c_int), ("max_tokens", ctypes.c_int),
                ("routed_scaling", ctypes.c_float), ("w13", ctypes.c_void_p),
                ("w13_scale", ctypes.c_void_p), ("w2", ctypes.c_void_p),
                ("w2_scale", ctypes.c_void_p)]


class LayerIO(ctypes.Structure):
    _fields_ = [("hidden", ctypes.c_void_p), ("topk_ids", ctypes.c_void_p),
                ("topk_weights", ctypes.c_void_p), ("out", ctypes.c_void_p),
                ("tokens", ctypes.c_int), ("workspace", ctypes.c_void_p),
                ("workspace_size", ctypes.c_size_t), ("error_flags", ctypes.c_void_p)]


def load_moeforge():
    lib = ctypes.CDLL(os.environ.get("MOEFORGE_LIB", "libmoeforge.so.0"))
    lib.mf_last_error.restype = ctypes.c_char_p
    return lib


def check(lib, status, what):
    if status != 0:
        raise RuntimeError(f"{what}: status {status}: {lib.mf_last_error().decode()}")


def torch_moe(hidden, ids, weights, w13, w2):
    """Eager PyTorch: sort slots by expert, grouped GEMMs, silu, weighted gather-sum."""
    T, K = ids.shape
    E, two_n, H = w13.shape
    flat = ids.flatten()
    keys = torch.where(flat >= 0, flat, E)
    order = torch.argsort(keys, stable=True)
    counts = torch.bincount(keys, minlength=E + 1)[:E]
    offs = torch.cumsum(counts, 0).to(torch.int32)
    rows = int(offs[-1])
    slots = order[:rows]
    x = hidden[slots // K]
    h = torch._grouped_mm(x, w13.transpose(1, 2), offs=offs)
    gate, up = h.split(two_n // 2, dim=1)
    act = (F.silu(gate.float()) * up.float()).to(torch.bfloat16)
    y = torch._grouped_mm(act, w2.transpose(1, 2), offs=offs)
    out = torch.zeros(T, H, device=hidden.device, dtype=torch.float32)
    out.index_add_(0, slots // K, y.float() * weights.flatten()[slots].unsqueeze(1))
    return out.to(torch.bfloat16)


def block_quantize(w):
    """[E, R, C] -> e4m3 with one scale per 128x128 block, and its bf16 dequantization."""
    E, R, C = w.shape
    blocks = w.view(E, R // 128, 128, C // 128, 128)
    scale = blocks.abs().amax(dim=(2, 4)).clamp(min=1e-10) / 448.0
    q = (blocks / scale[:, :, None, :, None]).to(torch.float8_e4m3fn)
    deq = (q.float() * scale[:, :, None, :, None]).view(E, R, C).to(torch.bfloat16)
    return q.view(E, R, C), scale.float().contiguous(), deq


class MoeforgeLayer:
    def __init__(self, lib, ctx, preset, fp8, w13, s13, w2, s2, max_tokens):
        H, N, E, K = preset
        self.lib, self.ctx = lib, ctx
        desc = LayerDesc(H, N, E, K, E4M3 if fp8 else BF16, AUTO, 0, max_tokens, 0.0,
                         w13.data_ptr(), s13.data_ptr() if fp8 else None, w2.data_ptr(),
                         s2.data_ptr() if fp8 else None)
        self.layer = ctypes.c_void_p()
        check(lib, lib.mf_layer_create(ctx, ctypes.byref(desc), ctypes.byref(self.layer)), "layer")
        check(lib, lib.mf_layer_prepare(self.layer), "prepare")
        size = ctypes.c_size_t()
        check(lib, lib.mf_layer_workspace_size(self.layer, ctypes.byref(size)), "workspace")
        self.workspace = torch.empty(size.value, dtype=torch.uint8, device="cuda")
        self.flags = torch.zeros(1, dtype=torch.int32, device="cuda")

    def forward(self, hidden, ids, weights, out):
        io = LayerIO(hidden.data_ptr(), ids.data_ptr(), weights.data_ptr(), out.data_ptr(),
                     ids.shape[0], self.workspace.data_ptr(), self.workspace.numel(),
                     self.flags.data_ptr())
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        check(self.lib, self.lib.mf_layer_forward(self.layer, ctypes.byref(io), stream), "forward")

    def close(self):
        self.lib.mf_layer_destroy(self.layer)


def routing(T, E, K):
    ids = torch.rand(T, E, device="cuda").topk(K, dim=1).indices.to(torch.int32)
    return ids.contiguous(), torch.rand(T, K, device="cuda", dtype=torch.float32)


def compare(lib, ctx, name, preset, fp8):
    H, N, E, K = preset
    w13 = torch.randn(E, 2 * N, H, device="cuda", dtype=torch.bfloat16) / H ** 0.5
    w2 = torch.randn(E, H, N, device="cuda", dtype=torch.bfloat16) / N ** 0.5
    s13 = s2 = None
    if fp8:
        q13, s13, w13 = block_quantize(w13)
        q2, s2, w2 = block_quantize(w2)
    for T in TOKENS:
        hidden = torch.randn(T, H, device="cuda", dtype=torch.bfloat16)
        ids, weights = routing(T, E, K)
        layer = MoeforgeLayer(lib, ctx, preset, fp8, q13 if fp8 else w13, s13, q2 if fp8 else w2,
                              s2, T)
        out = torch.empty(T, H, device="cuda", dtype=torch.bfloat16)
        layer.forward(hidden, ids, weights, out)
        want = torch_moe(hidden, ids, weights, w13, w2)
        diff = ((out.float() - want.float()).norm() / want.float().norm()).item()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            layer.forward(hidden, ids, weights, out)
        ours = median_ms(graph.replay, reps=10, warmup=2)
        theirs = median_ms(lambda: torch_moe(hidden, ids, weights, w13, w2), reps=10, warmup=2)
        print(f"{name:<12} {'e4m3' if fp8 else 'bf16':<5} {T:>6} {theirs * 1e3:>11.1f} us "
              f"{ours * 1e3:>11.1f} us {theirs / ours:>7.2f}x {diff:>10.2e}", flush=True)
        layer.close()
        del graph


def main():
    fp8s = [False, True]
    names = list(PRESETS)
    args = sys.argv[1:]
    if args and args[0] in ("bf16", "e4m3"):
        fp8s = [args.pop(0) == "e4m3"]
    if args:
        names = args
    lib = load_moeforge()
    torch.cuda.init()
    torch.empty(1, device="cuda")  # primary context, shared with moeforge's
    ctx = ctypes.c_void_p()
    check(lib, lib.mf_context_create(0, ctypes.byref(ctx)), "context")
    print(f"{'preset':<12} {'dtype':<5} {'T':>6} {'torch eager':>14} {'moeforge':>14} "
          f"{'speedup':>8} {'rel diff':>10}")
    for fp8 in fp8s:
        for name in names:
            compare(lib, ctx, name, PRESETS[name], fp8)
            torch.cuda.empty_cache()
    lib.mf_context_destroy(ctx)


if __name__ == "__main__":
    main()
