"""Scripts that time zoo against peer libraries in one run and print the ratios.

Run from the repository root as modules: `python -m benchmarks.asr`, `python -m benchmarks.vit`,
`python -m benchmarks.text`.
"""
