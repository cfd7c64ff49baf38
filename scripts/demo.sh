#!/usr/bin/env bash
# The whole pipeline offline on the built-in synthetic English->German task (~3 minutes on 2 cores):
# corpus -> SentencePiece -> training -> beam search -> BLEU. Extra flags go to `seq2seq demo`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
seq2seq demo --out "${RUN:-checkpoints/demo}" "$@"
