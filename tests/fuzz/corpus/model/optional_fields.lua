return {
  name = "fuzz-optional",
  hidden = 1024, intermediate = 512,
  experts = 16, topk = 4,
  dtypes = {"e4m3"},
  layouts = {"contiguous"},
  tokens = {7, 300},
  ue8m0 = true,
  sm_count = 78,
}
