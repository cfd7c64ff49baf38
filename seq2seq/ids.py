"""The special piece ids that every SentencePiece model of a run (tokenizer.py), the network (model.py)
and the search (search.py) share. Here, apart, so that importing the network or the search does not
load SentencePiece."""

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
