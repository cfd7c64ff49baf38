"""Translation: text in, text out, over the one search (search.py) and an engine per model file format.

| module | what |
|---|---|
| base.py | `Translating`: clean, tokenize, search, detokenize, keep the order; the str/list API |
| torch_engine.py | `TorchEngine` and `Translator`: a `.pt` checkpoint on torch |
| onnx_model.py | the exported ONNX model, its file format: `export_onnx`, `OnnxTranslator` (no torch) |
| onnx_engine.py | `OnnxEngine`: the model file's graphs in ONNX Runtime sessions, over NumPy arrays |
| onnx_graphs.py | the encoder and decoder-step graphs traced from `model.py` (export only; torch) |
| onnx_scan.py | a graph's operators and external-data tensors, read without the `onnx` package |
| ensemble.py | several models searched as one |
| loading.py | `load_translator` and `export_model`: which engine a model file needs |
| hub.py | `model_file`: `hf://ORG/NAME[@REVISION][/FILE]` to a file in huggingface_hub's cache |
| stream.py | line-by-line streaming for `seq2seq translate` |
"""

from .loading import export_model, load_model, load_translator

__all__ = ["export_model", "load_model", "load_translator"]
