"""The pruning experiment as one run: the metric against sparsity for each method, straight after
pruning and, with training data, after fine-tuning (the pruned weights held at zero). Every point starts
from the same float IR and is scored in onnxruntime on the evaluation set."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import onnx_ir as ir

from qconvert.prune.iterate import prune_to
from qconvert.prune.method import PruneMethod
from qconvert.quant.evaluate import run_first_output
from qconvert.report.accuracy import evaluate, infer_metric


@dataclass
class SweepPoint:
    method: str
    sparsity: float  # asked for
    achieved: float  # zero prunable weights (channel: parameters removed), as a share
    params: int  # float parameters of the pruned IR
    nonzero: int
    macs: int | None  # channel pruning
    metric: dict[str, float]  # straight after pruning
    finetuned: dict[str, float] | None = None  # after fine-tuning (with training data)
    seconds: float = 0.0  # pruning and fine-tuning


@dataclass
class SweepResult:
    model: str
    metric: str  # top1 | dice | cosine
    params: int  # of the unpruned float IR
    reference: dict[str, float]  # the unpruned float IR's metric
    finetune: dict | None = None  # the fine-tuning settings, where fine-tuned
    points: list[SweepPoint] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def curve(self, method: str, finetuned: bool = False) -> list[tuple[float, float | None]]:
        """(sparsity, metric value) in sparsity order for one method."""
        points = sorted((p for p in self.points if p.method == method), key=lambda p: p.sparsity)
        scores = [p.finetuned if finetuned else p.metric for p in points]
        return [(p.sparsity, s.get(self.metric) if s else None) for p, s in zip(points, scores)]


# (pruned model, masks, the unpruned model) -> the fine-tuned model
FineTune = Callable[[ir.Model, "dict | None", ir.Model], ir.Model]


def sweep(model: ir.Model, name: str, eval_feeds: dict[str, np.ndarray], labels: np.ndarray,
          methods: list[PruneMethod], sparsities: list[float], options, metric: str | None = None,
          finetune: FineTune | None = None, finetune_settings: dict | None = None,
          notify: Callable[[str], None] | None = None) -> SweepResult:
    """`options`: the PruneOptions every point shares (steps, scope, importance); each point sets its
    method and sparsity. `finetune`: fine-tunes a pruned model (between iterative steps too); sparsity 0
    is the unpruned model, not fine-tuned."""
    from qconvert.prune.step import parameter_counts

    reference_output = run_first_output(model, eval_feeds)
    metric = metric or infer_metric(reference_output, labels)
    result = SweepResult(name, metric, parameter_counts(model)[0],
                         evaluate(metric, reference_output, labels, reference_output), finetune_settings)
    for method in methods:
        fixed = method.fixed_sparsity  # an N:M pattern has one sparsity, reached in one step
        shares = sparsities if fixed is None else sorted({s for s in sparsities if s == 0} | {fixed})
        for sparsity in shares:
            if notify is not None:
                notify(f"{method.name} {sparsity:g}")
            began, pruned, run, masks = time.perf_counter(), model, None, None
            if sparsity > 0:
                point_options = replace(options, method=method, sparsity=sparsity,
                                        steps=options.steps if fixed is None else 1)
                between = (lambda m, masks, step, steps: finetune(m, masks, model)) if finetune else None
                pruned, run, masks = prune_to(model, point_options, between)
            score = lambda m: evaluate(metric, run_first_output(m, eval_feeds), labels, reference_output)  # noqa: E731
            params, nonzero = parameter_counts(pruned)
            point = SweepPoint(method.name, sparsity, run.last.sparsity if run else 0.0, params, nonzero,
                               run.last.macs if run else None, score(pruned))
            if finetune is not None:
                point.finetuned = score(finetune(pruned, masks, model)) if sparsity > 0 else point.metric
            point.seconds = time.perf_counter() - began
            result.points.append(point)
    return result
