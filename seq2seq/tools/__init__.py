"""What users run beside training and translating: `seq2seq demo` (demo.py, on the synthetic
English->German task of synthetic.py), `seq2seq plot` and `seq2seq attention` (plots.py),
`seq2seq evaluate` (evaluation.py: sacreBLEU's scores, intervals and paired tests), and the
figure helpers every picture shares (figures.py). They use the core through its public names only."""
