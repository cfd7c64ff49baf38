"""Developer tools, not user commands: the speed benchmark (`seq2seq benchmark`, benchmark.py), the
training profile (`python -m seq2seq.devtools.train_profile`), the load test of a running server
(`python -m seq2seq.devtools.serve_load`) and the mutation check of the test suite
(`scripts/mutation_check.sh`, mutation_check.py)."""
