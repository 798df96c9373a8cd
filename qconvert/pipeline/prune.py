"""The prune stage: the float IR pruned before fine-tuning and quantization, one-shot or iteratively
(qconvert.prune.iterate), fine-tuned between steps (--finetune; the last step's fine-tuning is the
finetune stage's). Unstructured methods leave masks in the state that fine-tuning and QAT hold, so
pruned weights stay zero; channel pruning shrinks the graph and needs none. Label-free fine-tuning
distils the unpruned IR."""

from __future__ import annotations

from qconvert.backends.targets import IRVariant
from qconvert.pipeline.state import ConversionState
from qconvert.pipeline.train import train_float


def prune(state: ConversionState) -> None:
    options = state.options.pruning
    if not options.prunes:
        return
    from qconvert.prune.iterate import prune_to

    def finetune(model, masks, step, steps):
        state.masks = masks
        return train_float(state, model, f"prune step {step}/{steps}")

    state.unpruned = state.variants[IRVariant.FLOAT]
    model, state.pruning, state.masks = prune_to(state.unpruned, options, finetune,
                                                 lambda text: state.notify("prune", text))
    state.variants[IRVariant.FLOAT] = model
