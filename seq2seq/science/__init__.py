"""The science around the network: `seq2seq memory-span` (how long each cell type remembers:
memory_span.py, its tasks span_tasks.py, its settings span_settings.py, its pictures span_plots.py)
and `seq2seq gradient-flow` (gradflow.py). Imports tools/figures.py for its pictures, never the reverse."""
