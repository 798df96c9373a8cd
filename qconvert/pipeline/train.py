"""Training stages: fine-tuning the float IR before anything else, and after PTQ the label-free refinements
(AdaRound, bias correction) and quantization-aware training of the QDQ IR. Each records a TrainingRun with
the IR scored in onnxruntime before and after it; the trained IR replaces the variant, so every target
emitted from it lowers the trained weights and scales."""

from __future__ import annotations

import time

import numpy as np
import onnx_ir as ir

from qconvert.backends.measure import Measurement
from qconvert.backends.targets import IRVariant
from qconvert.pipeline.measure import compare
from qconvert.pipeline.state import ConversionState
from qconvert.report.result import Row, TrainingRun

PRUNED, FINETUNED = "pruned", "finetuned"  # the report row of the changed float IR: pruned, finetuned or both


def _train_options(state: ConversionState, lr: float):
    from qconvert.train.loop import TrainOptions

    training = state.options.training
    return TrainOptions(epochs=training.epochs, lr=lr, batch=training.train_batch, seed=state.options.seed,
                        device=state.options.measure.device, temperature=training.temperature,
                        threads=state.settings.threads)


def _eval_set(state: ConversionState):
    from qconvert.train.loop import EvalSet

    data = state.data
    if data.eval_feeds is None or data.labels is None:
        return None
    metric = state.result.metric if state.result is not None else None
    return EvalSet(data.eval_feeds, data.labels, metric or state.options.evaluation.metric)


def _progress(state: ConversionState, stage: str):
    epochs = state.options.training.epochs
    return lambda epoch, step, steps, loss: state.notify(
        "train", f"{stage} · epoch {epoch}/{epochs} · batch {step}/{steps} · loss {loss:.4f}")


def _run(stage: str, data: str, began: float, history=None, lr: float | None = None, **scores) -> TrainingRun:
    run = TrainingRun(stage, data, time.perf_counter() - began, lr=lr, **scores)
    if history is not None:
        run.loss, run.best_epoch = history.loss, history.best_epoch
        run.batchnorm = f"batch statistics, {history.batchnorm_layers} layers" if history.batchnorm_layers \
            else "folded"
        run.epochs = [{"epoch": e.epoch, "loss": e.loss, "metric": e.metric, "seconds": e.seconds}
                      for e in history.epochs]
    return run


def _scores(state: ConversionState, model: ir.Model, reference: list[np.ndarray],
            eval_reference: np.ndarray | None) -> dict[str, float]:
    """The IR in onnxruntime (QDQ as the onnx-qdq artifact runs it): SQNR of its first output against
    `reference` on the parity samples, and the --eval metric."""
    from qconvert.quant.evaluate import run_first_output
    from qconvert.report.accuracy import evaluate, infer_metric
    from qconvert.report.metrics import sqnr_db

    data = state.data
    scores = {"sqnr_db": float(sqnr_db(reference[0], run_first_output(model, data.feeds)))}
    if data.eval_feeds is not None and data.labels is not None:
        output = run_first_output(model, data.eval_feeds)
        metric = (state.result.metric if state.result is not None else None) or state.options.evaluation.metric \
            or infer_metric(output, data.labels)
        scores.update(evaluate(metric, output, data.labels, eval_reference if eval_reference is not None else output))
    return scores


def _described(data, what: str) -> str:
    return f"{what}, {'labels' if data.labels is not None else 'distilled'}"


def finetune(state: ConversionState) -> None:
    """`--finetune`: the float IR trained on --train before anything is written; a failure is the run's.
    After pruning, the pruned weights stay zero and a label-free run distils the unpruned IR."""
    if not state.options.training.finetune:
        return
    state.variants[IRVariant.FLOAT] = train_float(state, state.variants[IRVariant.FLOAT], "finetune")


def train_float(state: ConversionState, model: ir.Model, stage: str) -> ir.Model:
    """`model` (a float IR) fine-tuned on --train, recorded as the TrainingRun `stage`; the state's pruning
    masks held, and its unpruned IR the teacher and the reference of the scores."""
    from qconvert.quant.evaluate import run_outputs
    from qconvert.train.loop import finetune as finetune_ir

    state.notify("train", stage)
    data, began = state.data, time.perf_counter()
    teacher = state.unpruned if state.unpruned is not None else model
    reference = run_outputs(teacher, data.feeds)
    eval_reference = run_outputs(teacher, data.eval_feeds, first_only=True)[0] if data.eval_feeds is not None else None
    before = _scores(state, model, reference, eval_reference)
    options = _train_options(state, state.options.training.lr)
    trained, history = finetune_ir(model, data.train, options, _eval_set(state), _progress(state, stage),
                                   teacher=teacher, masks=state.masks,
                                   batch_statistics=state.options.training.finetune_batch_statistics)
    after = _scores(state, trained, reference, eval_reference)
    state.training.append(_run(stage, _described(data.train, "--train"), began, history, options.lr,
                               before=before, after=after))
    return trained


def measure_changed_float(state: ConversionState) -> None:
    """After the source row: the pruned or fine-tuned IR's row (in onnxruntime, against the source), then
    the reference every target is compared with becomes that IR, which the float targets are emitted
    from; the source row keeps the source's metric."""
    changes = [name for name, done in ((PRUNED, state.pruning is not None),
                                       (FINETUNED, state.options.training.finetune)) if done]
    if not changes or state.reference.status != "ok":
        return
    from qconvert.quant.evaluate import run_outputs
    from qconvert.report.accuracy import evaluate

    model, data, result = state.variants[IRVariant.FLOAT], state.data, state.result
    outputs = run_outputs(model, data.feeds)
    eval_outputs = run_outputs(model, data.eval_feeds, first_only=True) if data.eval_feeds is not None else []
    row = Row("+".join(changes), "onnxruntime", "ok", error=None)
    compare(state.reference.outputs, outputs, row)
    if result.metric and eval_outputs:
        row.metrics = evaluate(result.metric, eval_outputs[0], data.labels, state.reference.eval_outputs[0])
    result.rows.append(row)
    state.reference = Measurement("ok", outputs=outputs, eval_outputs=eval_outputs)


def refine_rounding(state: ConversionState) -> None:
    """`--search-weight-scales`, `--adaround`, `--bias-correction`: on the calibration set."""
    rounding = state.options.rounding
    if IRVariant.QDQ not in state.variants or not rounding.any:
        return
    from qconvert.passes import prepare_for_int8

    float_model = prepare_for_int8(state.variants[IRVariant.FLOAT])
    steps = []
    if rounding.weight_scales:
        steps.append(("weight-scales", lambda model, prepared, _: _searched_weight_scales(state, model, prepared)))
    if rounding.adaround:
        from qconvert.train.adaround import adaround

        steps.append(("adaround", adaround))
    if rounding.bias_correction:
        from qconvert.train.bias_correction import correct_biases

        steps.append(("bias-correction", correct_biases))
    for stage, refine in steps:
        state.notify("train", stage)
        began, model = time.perf_counter(), state.variants[IRVariant.QDQ]
        before = _scores(state, model, state.reference.outputs, _eval_reference(state))
        try:
            refined, layers = refine(model, float_model, state.data.calib_feeds)
        except Exception as error:  # the static int8 rows fail; the other targets still run
            state.failed_variants[IRVariant.QDQ] = f"{stage} failed: {type(error).__name__}: {error}".splitlines()[0]
            return
        after = _scores(state, refined, state.reference.outputs, _eval_reference(state))
        state.training.append(_run(stage, "--calib", began, before=before, after=after, layers=layers))
        state.variants[IRVariant.QDQ] = refined


def quantization_aware(state: ConversionState) -> None:
    """`--qat`: the QDQ IR trained on --train, or distilled from the float IR on the calibration set."""
    if not state.options.training.qat or IRVariant.QDQ not in state.variants:
        return
    from qconvert.passes import prepare_for_int8
    from qconvert.quant.evaluate import run_outputs
    from qconvert.train.data import TrainData
    from qconvert.train.loop import quantization_aware as train_qat
    from qconvert.train.masks import layer_zero_masks

    state.notify("train", "qat")
    data, began = state.data, time.perf_counter()
    train, what = (data.train, "--train") if data.train is not None else (TrainData(data.calib_feeds, None, None),
                                                                          "--calib")
    float_model, model = state.variants[IRVariant.FLOAT], state.variants[IRVariant.QDQ]
    before = _scores(state, model, state.reference.outputs, _eval_reference(state))
    try:
        options = _train_options(state, state.options.training.lr)
        prepared = prepare_for_int8(float_model)  # what the QDQ IR was quantized from, its weight names
        masks = layer_zero_masks(prepared) if state.masks else None
        # the weight scales start where each layer's output error is least, not at max|W| (weight_scales.py)
        model, searched = _searched_weight_scales(state, model, prepared, options.device)
        trained, history = train_qat(model, train, options, _eval_set(state), _progress(state, "qat"),
                                     teacher=float_model, float_model=prepared, masks=masks)
    except Exception as error:  # the static int8 rows fail; the other targets still run
        state.failed_variants[IRVariant.QDQ] = f"qat failed: {type(error).__name__}: {error}".splitlines()[0]
        return
    after = _scores(state, trained, state.reference.outputs, _eval_reference(state))
    state.training.append(_run("qat", _described(train, what), began, history, options.lr, before=before,
                               after=after, layers=searched))
    state.variants[IRVariant.QDQ] = trained
    state.trained_outputs[IRVariant.QDQ] = run_outputs(trained, data.feeds)


def _searched_weight_scales(state: ConversionState, model: ir.Model, prepared: ir.Model,
                            device: str = "cpu") -> tuple[ir.Model, dict]:
    """The QDQ IR with its weight scales searched (qconvert/train/weight_scales.py), kept only where the
    IR's output SQNR against the reference on the parity samples does not fall: each layer's own error
    never rises, but a network's layers, each searched on its own, can add up worse (measured on a
    random-weight ResNet-50)."""
    from qconvert.quant.evaluate import run_first_output
    from qconvert.report.metrics import sqnr_db
    from qconvert.train.weight_scales import WeightScaleOptions, search_weight_scales

    searched, facts = search_weight_scales(model, prepared, state.data.calib_feeds, WeightScaleOptions(device=device))
    reference, feeds = state.reference.outputs[0], state.data.feeds
    before, after = (float(sqnr_db(reference, run_first_output(m, feeds))) for m in (model, searched))
    facts["ir_sqnr_db"] = {"calibration": before, "searched": after}
    facts["kept"] = "searched" if after >= before else "calibration"
    return (searched if after >= before else model), facts


def _eval_reference(state: ConversionState) -> np.ndarray | None:
    outputs = state.reference.eval_outputs if state.reference is not None else []
    return outputs[0] if outputs else None
