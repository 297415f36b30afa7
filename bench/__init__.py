"""Speed and memory benchmarks, run on the GPU machine; numbers go to docs/benchmarks.md."""
