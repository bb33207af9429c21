"""Median CUDA-event time of a callable, shared by the torch-side scripts."""
import torch


def median_ms(fn, reps=20, warmup=3):
    """Median milliseconds of `reps` event-timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return sorted(times)[reps // 2]
