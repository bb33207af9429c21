"""CUDA-event timing of a callable, shared by the torch-side scripts."""
import torch


def median_ms(fn, reps=20, warmup=3):
    """Median milliseconds of `reps` event-timed calls after `warmup` untimed ones
    (each call timed alone: its host launch work counts too)."""
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


def device_ms(fn, batch=10, batches=21):
    """Device milliseconds of one call: `batch` calls queued behind a 2 ms GPU
    spin run back to back, so the host's launch work overlaps the GPU's; the
    median of `batches` batches (bench_device_us on the C side)."""
    fn()
    times = []
    for _ in range(batches):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(2_000_000)  # ~1 ms of clock cycles: the calls queue up meanwhile
        start.record()
        for _ in range(batch):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / batch)
    return sorted(times)[batches // 2]
