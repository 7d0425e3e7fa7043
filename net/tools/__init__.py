"""The tools floor: what only the scripts use (command-line helpers, drawing, timing, the cost
demo, the benchmarks and MPI launching). It may import every floor below; nothing below imports
it.
"""
