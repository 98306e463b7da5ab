"""Performance benchmarks of largebatch, each measured side by side with its baseline in
one process run (``python -m benchmarks``, or ``make bench``).

Every benchmark returns rows of (measured value, baseline, ratio, goal, pass/fail).
Single-threaded comparisons (``torch.set_num_threads(1)``) are timed in CPU time of this
process (``time.process_time``), which is robust to other processes competing for the
cores of a shared machine; orchestration and the threads benchmark are about wall time
and are timed with ``time.perf_counter``; on CUDA, CUDA events time the GPU work.
Each measurement is a warm-up followed by the median of a few repeats, the compared
variants interleaved (A B A B ...) so that drifting machine load hits both alike.
"""
