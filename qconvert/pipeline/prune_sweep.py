"""`qconvert prune-sweep`: the metric against sparsity for each pruning method (qconvert.prune.sweep), on
the load and data stages of a conversion, written to OUT/prune_sweep.json."""

from __future__ import annotations

from pathlib import Path

from qconvert.errors import UsageError
from qconvert.pipeline.checks import check_writable
from qconvert.pipeline.load import clean, load_model
from qconvert.pipeline.options import EvalOptions, PruneOptions, SourceOptions, TrainingOptions
from qconvert.pipeline.report import write_json
from qconvert.prune.method import PruneMethod
from qconvert.quant.data import check_data_path
from qconvert.report.html import write_html


def prune_sweep(model: str, source: SourceOptions, evaluation: EvalOptions, methods: list[PruneMethod],
                sparsities: list[float], pruning: PruneOptions = PruneOptions(),
                training: TrainingOptions = TrainingOptions(), *, out_dir: str | Path = "qconvert-out",
                threads: int | None = None, seed: int = 0, notify=None):
    """With `training.train_path`, each pruned point is also fine-tuned (`training.epochs` at the
    fine-tuning rate), its pruned weights held at zero, distilling the unpruned IR without labels. The
    fine-tuning keeps its last epoch: choosing the best on the --eval set would score the curve on the
    data it was chosen on."""
    from qconvert.backends.hardware import physical_cores
    from qconvert.ir.inputs import specs_from_ir
    from qconvert.prune.sweep import sweep
    from qconvert.quant.data import load_eval
    from qconvert.train.data import load_train
    from qconvert.train.loop import TrainOptions, finetune

    out = Path(out_dir)
    check_writable(out)
    if evaluation.eval_path is None:
        raise UsageError("qconvert prune-sweep scores every point on an evaluation set: pass --eval with an .npz "
                         "of inputs keyed by input name plus 'labels'")
    check_data_path(evaluation.eval_path, trust_code=False, flag="--eval")
    if training.train_path is not None:
        check_data_path(training.train_path, trust_code=False, flag="--train")
    bad = [s for s in sparsities if not 0 <= s < 1]
    if bad or not sparsities:
        raise UsageError(f"--sparsities {','.join(f'{s:g}' for s in sparsities)}: give shares from 0 up to "
                         f"(not including) 1, comma separated")
    if pruning.steps > 1 and training.train_path is None:
        raise UsageError(f"--prune-steps {pruning.steps} fine-tunes between steps: pass --train")
    for method in methods:  # each method's own checks (N:M's one sparsity), before any work
        PruneOptions(method.fixed_sparsity or max(sparsities), method, pruning.steps if method.fixed_sparsity is None
                     else 1, pruning.depthwise, pruning.keep_first_last, pruning.importance, pruning.multiple_of,
                     pruning.magnitudes)
    graph = clean(load_model(model, source))
    eval_feeds, labels = load_eval(evaluation.eval_path, specs_from_ir(graph))
    tune, settings = None, None
    if training.train_path is not None:
        data = load_train(training.train_path, graph)
        options = TrainOptions(epochs=training.epochs, lr=training.lr, batch=training.train_batch,
                               seed=seed, temperature=training.temperature, threads=threads or physical_cores())
        settings = {"epochs": options.epochs, "lr": options.lr, "batch": options.batch,
                    "data": "labels" if data.labels is not None else "distilled",
                    "batchnorm": "batch statistics" if training.finetune_batch_statistics else "folded"}

        def tune(pruned, masks, unpruned):
            return finetune(pruned, data, options, teacher=unpruned, masks=masks,
                            batch_statistics=training.finetune_batch_statistics)[0]

    result = sweep(graph, model, eval_feeds, labels, methods, sparsities, pruning, evaluation.metric, tune, settings,
                   notify)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "prune_sweep.json", result.to_dict())
    write_html(result, out / "report.html")
    return result
