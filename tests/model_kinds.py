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


def output_layer_op(step_graph: bytes) -> str:
    """The operator that makes the decoder step's scores: walked back from `log_probs` to the first product
    (a substring test of the graph finds any fused matmul, the LSTM cell's too)."""
    import onnx

    graph = onnx.load_from_string(step_graph).graph
    made_by = {out: node for node in graph.node for out in node.output}
    node = made_by["log_probs"]
    while node.op_type not in ("MatMul", "Gemm", "MatMulInteger", "MatMulIntegerToFloat"):
        node = made_by[node.input[0]]
    return node.op_type
