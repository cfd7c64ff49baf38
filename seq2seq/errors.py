"""How the toolkit reports: the error types the command line turns into one clear line and exit
status 2 (with ConfigError in config.py and HardwareError in hardware.py), and the format of its
log lines (terminal and RUN/train.log). Torch-free, like everything the NumPy runtime imports."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class CorpusError(ValueError):
    """A corpus file that cannot be used as it is; the message names the file and line."""


class RunFolderError(ValueError):
    """A run folder's file (metrics.jsonl) that cannot be read; the message names the file and line."""


class CheckpointError(ValueError):
    """A file that is not a loadable seq2seq checkpoint; the message says why in one line."""


EXIT_DIVERGED = 3  # the exit status of a `train` that stopped on a diverged loss


class DivergedError(RuntimeError):
    """Training stopped because its loss diverged (non-finite losses in a row, or a loss grown past
    TrainConfig.loss_growth times its first value); the message says whether a checkpoint was kept,
    and from which update. `result` holds where the run ended. The command line prints it in one line
    and exits with status 3 (EXIT_DIVERGED), so that `train && translate` stops."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result
