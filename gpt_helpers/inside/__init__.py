"""Part 3, notebook 10: looking inside a model (attention weights, logit lens, token labels)."""

from .interpret import (
    attention_weights,
    logit_lens,
    token_labels,
)

__all__ = [
    "attention_weights",
    "logit_lens",
    "token_labels",
]
