"""Fine-tuning: the training loss falls, the written-back IR computes in onnxruntime what the trained program
computes, runs are deterministic, --eval keeps the best epoch, distillation pulls a student to its teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qconvert.errors import UsageError
from qconvert.quant.evaluate import run_first_output
from qconvert.report.accuracy import evaluate
from qconvert.report.metrics import sqnr_db
from qconvert.train.data import check_train
from qconvert.train.loop import EvalSet, TrainOptions, finetune, predict, train
from qconvert.train.program import trainable_program
from qconvert.train.writeback import write_back
from tests.train.conftest import digits_at
from tests.train.test_program import assert_bit_identical

ONE_THREAD = dict(threads=1)  # a busy 2-core machine runs one thread 5-10x faster than two (models/torch_train.py)


def vgg_data(tiny_vgg, digits, samples=512):
    x, y = digits[0][:samples], digits[1][:samples]
    return check_train({"x": x}, y, tiny_vgg, "--train test")


def test_finetuning_the_tiny_vgg_lowers_the_loss_and_writes_back_what_was_trained(tiny_vgg, digits):
    program = trainable_program(tiny_vgg)
    steps = []
    history = train(program, tiny_vgg, vgg_data(tiny_vgg, digits), TrainOptions(epochs=2, lr=1e-4, **ONE_THREAD),
                    progress=lambda epoch, step, steps_, loss: steps.append((epoch, step, steps_, loss)))
    losses = [record.loss for record in history.epochs]
    assert history.loss == "cross-entropy" and [r.epoch for r in history.epochs] == [0, 1, 2]
    assert losses[2] < 0.8 * losses[0], losses
    assert [s[:3] for s in steps] == [(e, i, 16) for e in (1, 2) for i in range(1, 17)]  # 512 samples, batch 32
    assert all(np.isfinite(s[3]) for s in steps)
    trained = write_back(tiny_vgg, program)
    x_eval = digits[2][:64]
    ours = predict(program, {"x": x_eval}, 32, torch.device("cpu"))
    assert sqnr_db(ours, run_first_output(trained, {"x": x_eval})) >= 60
    assert sqnr_db(ours, run_first_output(tiny_vgg, {"x": x_eval})) < 40  # the weights did change


def test_the_same_seed_gives_the_same_weights(tiny_net, digits):
    data = check_train({"x": digits_at(digits[0][:256], 16)}, digits[1][:256], tiny_net, "--train test")
    runs = [finetune(tiny_net, data, TrainOptions(epochs=1, lr=1e-3, seed=seed, **ONE_THREAD))[0]
            for seed in (3, 3, 4)]
    assert_bit_identical(runs[0], runs[1])
    with pytest.raises(AssertionError):  # another seed, another data order
        assert_bit_identical(runs[0], runs[2])


def test_eval_keeps_the_best_epoch(tiny_vgg, digits):
    """A learning rate that wrecks the model: the model as given (epoch 0) is the best and comes back
    unchanged; its metric is the float IR's top-1 in onnxruntime."""
    eval_set = EvalSet({"x": digits[2][:128]}, digits[3][:128])
    options = TrainOptions(epochs=2, lr=0.05, **ONE_THREAD)
    trained, history = finetune(tiny_vgg, vgg_data(tiny_vgg, digits, 256), options, eval=eval_set)
    top1 = [record.metric["top1"] for record in history.epochs]
    reference = run_first_output(tiny_vgg, eval_set.feeds)
    assert top1[0] == pytest.approx(evaluate("top1", reference, eval_set.labels, reference)["top1"])
    assert max(top1[1:]) < top1[0] - 20, top1
    assert history.best_epoch == 0
    assert_bit_identical(tiny_vgg, trained)


def test_distillation_pulls_a_perturbed_student_to_its_teacher(tiny_net, digits):
    x = digits_at(digits[0][:256], 16)
    student = write_back(tiny_net, _perturbed(trainable_program(tiny_net), 0.3))
    data = check_train({"x": x}, None, student, "--train test")
    trained, history = finetune(student, data, TrainOptions(epochs=2, lr=3e-3, **ONE_THREAD), teacher=tiny_net)
    teacher_out = run_first_output(tiny_net, {"x": x})
    before, after = (sqnr_db(teacher_out, run_first_output(m, {"x": x})) for m in (student, trained))
    assert history.loss == "distillation kl (T=4)"
    assert history.epochs[-1].loss < 0.5 * history.epochs[0].loss, [r.loss for r in history.epochs]
    assert after > before + 3, (before, after)


def _perturbed(program, scale: float):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in program.trainable():
            p.add_(torch.randn(p.shape, generator=generator) * scale * p.abs().mean())
    return program


@pytest.mark.parametrize("options, message", [
    (dict(epochs=0), "--epochs 0: must be positive"),
    (dict(lr=-1.0), "--lr -1.0: must be positive"),
    (dict(batch=0), "--train-batch 0: must be positive"),
    (dict(device="tpu"), "--device tpu: train on cpu or cuda"),
])
def test_bad_options(options, message):
    with pytest.raises(UsageError) as error:
        TrainOptions(**options)
    assert str(error.value) == message


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_device_is_a_usage_error(tiny_net, digits):
    data = check_train({"x": digits_at(digits[0][:8], 16)}, digits[1][:8], tiny_net, "--train test")
    with pytest.raises(UsageError, match="--device cuda: torch sees no CUDA device here; train with --device cpu"):
        finetune(tiny_net, data, TrainOptions(device="cuda"))
