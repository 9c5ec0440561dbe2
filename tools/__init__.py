"""facecue tooling: training, export, evaluation, benchmarks, model delivery."""
