"""The error types the command line turns into one clear line and exit status 2 (with ConfigError in
config.py and HardwareError in hardware.py). Torch-free, like everything the NumPy runtime imports."""


class CorpusError(ValueError):
    """A corpus file that cannot be used as it is; the message names the file and line."""


class RunFolderError(ValueError):
    """A run folder's file (metrics.jsonl) that cannot be read; the message names the file and line."""


class CheckpointError(ValueError):
    """A file that is not a loadable seq2seq checkpoint; the message says why in one line."""
