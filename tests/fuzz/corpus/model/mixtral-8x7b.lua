-- Mixtral-8x7B (DESIGN.md, "Model shapes"): every kernel a forward pass may launch for
-- 1 to 16384 tokens, bf16 and FP8, in both layouts. `experts` is the count
-- on one rank: with expert parallelism copy this file and divide it.
return {
  name = "mixtral-8x7b",
  hidden = 4096,
  intermediate = 14336,
  experts = 8,
  topk = 2,
  dtypes = {"bf16", "e4m3"},
  layouts = {"masked", "contiguous"},
  tokens = {1, 16384},
}
