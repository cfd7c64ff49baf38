"""The model kinds the ONNX tests export: every cell, attention kind, depth, input feeding and untied embeddings
(test_onnx.py: the graphs against the torch model; test_quantize.py: the int8 graphs)."""

from seq2seq.config import ModelConfig

VARIANTS = {
    "lstm general": ModelConfig(emb_size=16, enc_hidden=8, dec_hidden=24),
    "lstm bahdanau 2x2, input feeding": ModelConfig(
        emb_size=16, enc_hidden=8, dec_hidden=24, attention="bahdanau", enc_layers=2, dec_layers=2, input_feeding=True
    ),
    "gru general, input feeding, untied": ModelConfig(
        cell="gru", emb_size=16, enc_hidden=8, dec_hidden=24, input_feeding=True, tie_embeddings=False
    ),
    "gru bahdanau 2x2": ModelConfig(
        cell="gru", emb_size=16, enc_hidden=8, dec_hidden=24, attention="bahdanau", enc_layers=2, dec_layers=2
    ),
    "rnn dot": ModelConfig(cell="rnn", emb_size=16, enc_hidden=8, dec_hidden=16, attention="dot"),
    "rnn general 2x2, input feeding": ModelConfig(
        cell="rnn", emb_size=16, enc_hidden=8, dec_hidden=24, enc_layers=2, dec_layers=2, input_feeding=True
    ),
    "lstm dot": ModelConfig(emb_size=16, enc_hidden=8, dec_hidden=16, attention="dot", dec_layers=2),
}
