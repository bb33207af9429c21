-- Qwen3-235B-A22B (DESIGN.md, "Model shapes"): every kernel a forward pass may launch for
-- 1 to 16384 tokens, bf16 and FP8, in both layouts. `experts` is the count
-- on one rank: with expert parallelism copy this file and divide it.
return {
  name = "qwen3-235b-a22b",
  hidden = 4096,
  intermediate = 1536,
  experts = 128,
  topk = 8,
  dtypes = {"bf16", "e4m3"},
  layouts = {"masked", "contiguous"},
  tokens = {1, 16384},
}
