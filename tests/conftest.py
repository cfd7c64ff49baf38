from pathlib import Path

import pytest
import torch
from corpora import write_corpus

from seq2seq.config import DataConfig, ModelConfig, TrainConfig
from seq2seq.train import RunOptions, RunSpec, train


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny tensors: one intra-op thread is faster than two, and leaves a core for the rest."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` need CUDA: skipped without it."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Captured output that holds a lone surrogate (the server's tests echo one) is kept escaped: pytest-xdist
    sends every report to the main process as UTF-8, and one such character ended the whole worker."""
    outcome = yield
    report = outcome.get_result()
    report.sections = [(name, text.encode("utf-8", "backslashreplace").decode()) for name, text in report.sections]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained once on the toy reversal task of corpora.py (test_translate, test_runtime)."""
    root = tmp_path_factory.mktemp("tiny")
    data = write_corpus(root / "data")
    result = train(
        RunSpec(data, "xx", "yy", root / "run"),
        DataConfig(vocab_size=40),
        ModelConfig(emb_size=32, enc_hidden=32, dec_hidden=32, dropout=0.0),
        TrainConfig(
            max_steps=60, valid_every=30, valid_bleu_sentences=20, max_tokens=600, lr=0.01, log_every=10, threads=1
        ),
        RunOptions(progress=False),
    )
    assert result.steps == 60
    return result.run
