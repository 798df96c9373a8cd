"""Deterministic training/evaluation helpers shared by the torch classifiers."""

import contextlib
import time

import numpy as np
import torch


@contextlib.contextmanager
def deterministic(seed, threads=1):
    """Seed torch, force deterministic kernels and pin the thread count; the
    previous global settings are restored afterwards (tests share a process).

    One thread by default: float reductions then give bit-identical weights
    on any machine, and on a busy 2-core box two spinning OpenMP threads were
    measured 5-10x slower than one (tiny VGG: 42 s vs 7 s at load ~6).
    """
    previous = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])


def train_classifier(model, x, y, epochs, lr, batch_size=64, weight_decay=5e-4, optimizer="sgd", seed=0):
    """Cross-entropy training with a one-cycle schedule; returns seconds spent.

    `optimizer` is "sgd" (Nesterov momentum, for the conv nets) or "adamw"
    (for the transformer). `x`, `y` are numpy arrays; the caller seeds the
    weight init (see `deterministic`), this function seeds the shuffling order.
    """
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return time.perf_counter() - start


@torch.no_grad()
def predict(model, x, batch_size=256):
    model.eval()
    x = torch.from_numpy(np.asarray(x))
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def top1(logits, labels):
    return float((np.argmax(logits, axis=1) == labels).mean())


def train_on_digits(make_model, config: dict, seed: int = 0):
    """The digits classifiers' recipe: returns (model in eval mode, eval x, eval y, eval top-1, train seconds)."""
    from models.data import digits_split

    x_train, y_train, x_eval, y_eval = digits_split()
    with deterministic(seed):
        model = make_model()
        seconds = train_classifier(model, x_train, y_train, seed=seed, **config)
    return model, x_eval, y_eval, top1(predict(model, x_eval), y_eval), seconds
