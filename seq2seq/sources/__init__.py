"""Getting corpora: Hugging Face `datasets` (Hub or local files) to `{split}.{lang}` text files."""
