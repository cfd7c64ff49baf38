"""Getting corpora: Hugging Face `datasets` (Hub or local files) to `{split}.{lang}` text files
(download.py); sharing models: `seq2seq push` to a Hugging Face Hub model repository (hub.py)."""
