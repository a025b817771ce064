"""Traffic simulation on real data: the home of the simulator (its own concern, shared by tests,
benchmarks and the demo; it never ships inside the detector)."""
