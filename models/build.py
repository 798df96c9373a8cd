"""Build, train and save the reference models.

    python -m models.build --out DIR [--tiny] [--only unet,vgg,convnet,resnet,mobilenet,dwnet,bert]

Per model, DIR receives:
    unet:          unet.h5, unet_eval.npz {input [N,128,128,3] f32, labels [N,128,128,1] f32},
                   unet_calib.npz {input} (calibration samples, disjoint from train and eval),
                   unet_train.npz {input, labels} (the first training images and masks, see TRAIN_BYTES)
    vgg, convnet,  NAME.pt (TorchScript), NAME.pt2 (torch.export, dynamic batch),
    resnet,        NAME_weights.pt (state_dict), NAME_eval.npz {x [N,3,32,32] f32, labels [N] i64},
    mobilenet,     NAME_calib.npz {x}, NAME_train.npz {x, labels} (the digits training split, 1438 samples)
    dwnet:         (dwnet is the depthwise-separable net where per-tensor int8 weights lose, dwnet_torch.py)
    bert:          bert.pt, bert.pt2, bert_weights.pt, bert_eval.npz {input_ids [N,128] i64, labels [N] i64},
                   bert_calib.npz {input_ids}, bert_train.npz {input_ids, labels} (its 2048 training sequences)
plus manifest.json (metric, parameter count, training time, builder entry point
per model). The npz input key is the model's input name. NAME_train.npz holds
samples the model was trained on (never eval samples), for fine-tuning (`--train`).
`--tiny` builds the small test variants (`build_tiny()` in each module; bert keeps
seq_len 128). With `--only`, entries of an existing manifest of the same kind are kept.

Imports are lazy: only the UNet needs tensorflow and only the others need torch.
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

MODELS = ("unet", "vgg", "convnet", "resnet", "mobilenet", "dwnet", "bert")
TORCH_INPUT_NAMES = {"vgg": "x", "convnet": "x", "resnet": "x", "mobilenet": "x", "dwnet": "x", "bert": "input_ids"}
MAX_BATCH = 1024
# Calibration samples come from the training distribution but not from the training or eval sets:
# shapes and token sequences from their own seed, digits from the training split.
CALIB_SEED, CALIB_SAMPLES = 777, 256


class BuildError(Exception):
    """A reference model that cannot be built as specified; main prints its one line and exits 1."""


def calibration_inputs(name, input_shape):
    from models.data import digits_split, shapes_with_masks, token_sequences

    if name == "unet":
        return shapes_with_masks(CALIB_SAMPLES // 2, size=input_shape[1], seed=CALIB_SEED)[0]
    if name == "bert":
        return token_sequences(CALIB_SAMPLES, input_shape[1], seed=CALIB_SEED)[0]
    return digits_split()[0][:CALIB_SAMPLES]


# Training sets keep at most this many input bytes: every digits and bert training sample (18 MB and 2 MB),
# the tiny UNet's 256 images (13 MB), the first 170 of the full UNet's 512 (all of them would be 100 MB).
TRAIN_BYTES = 32 * 2**20


def training_set(name, tiny, input_shape):
    """(inputs, labels): the first samples of the set `name` was trained on, drawn again the way its
    module's build_and_train (at its default seed 0) draws them, so disjoint from eval."""
    from models.data import digits_split, shapes_with_masks, token_sequences

    if name == "unet":
        from models import unet_keras

        config = unet_keras.TINY_TRAIN if tiny else unet_keras.FULL_TRAIN
        x, y = shapes_with_masks(config["n_train"], size=input_shape[1], seed=unet_keras.TRAIN_SEED)
    elif name == "bert":
        from models import bert_torch

        config = bert_torch.TINY_TRAIN if tiny else bert_torch.FULL_TRAIN
        x, y = token_sequences(config["n_train"], input_shape[1], bert_torch.VOCAB, seed=0)
    else:
        x, y = digits_split()[:2]
    keep = max(1, TRAIN_BYTES // x[0].nbytes)
    return x[:keep], y[:keep]


def build_unet(out, tiny):
    from models import unet_keras

    model, x_eval, y_eval, score, seconds = unet_keras.build_and_train(tiny)
    # No optimizer/compile config in the file: loading then needs no custom loss.
    # Legacy HDF5 is the format asked for, so its deprecation warning is noise.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file.*")
        model.save(out / "unet.h5", include_optimizer=False)
    np.savez(out / "unet_eval.npz", **{unet_keras.INPUT_NAME: x_eval, "labels": y_eval})
    np.savez(out / "unet_calib.npz", **{unet_keras.INPUT_NAME: calibration_inputs("unet", x_eval.shape)})
    x_train, y_train = training_set("unet", tiny, x_eval.shape)
    np.savez(out / "unet_train.npz", **{unet_keras.INPUT_NAME: x_train, "labels": y_train})
    return {
        "builder": f"models/unet_keras.py:{'build_tiny' if tiny else 'build'}",
        "input_name": unet_keras.INPUT_NAME,
        "metric": "dice",
        "value": score,
        "params": int(model.count_params()),
        "train_seconds": seconds,
        "files": ["unet.h5", "unet_eval.npz", "unet_calib.npz", "unet_train.npz"],
    }


def build_torch(name, out, tiny):
    import importlib

    import torch

    module = importlib.import_module(f"models.{name}_torch")
    # A module may add facts for the manifest (dwnet: the seed its dead-channel check accepted).
    model, x_eval, y_eval, score, seconds, *facts = module.build_and_train(tiny)
    input_name = TORCH_INPUT_NAMES[name]
    example = torch.from_numpy(x_eval[:2])

    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, example), out / f"{name}.pt")
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(model, (example,), dynamic_shapes={input_name: {0: batch}})
    torch.export.save(program, out / f"{name}.pt2")
    torch.save(model.state_dict(), out / f"{name}_weights.pt")
    np.savez(out / f"{name}_eval.npz", **{input_name: x_eval, "labels": y_eval})
    np.savez(out / f"{name}_calib.npz", **{input_name: calibration_inputs(name, x_eval.shape)})
    x_train, y_train = training_set(name, tiny, x_eval.shape)
    np.savez(out / f"{name}_train.npz", **{input_name: x_train, "labels": y_train})
    return {
        "builder": f"models/{name}_torch.py:{'build_tiny' if tiny else 'build'}",
        "input_name": input_name,
        "metric": "top1",
        "value": score,
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": seconds,
        "files": [f"{name}.pt", f"{name}.pt2", f"{name}_weights.pt", f"{name}_eval.npz", f"{name}_calib.npz",
                  f"{name}_train.npz"],
        **(facts[0] if facts else {}),
    }


def build(out, tiny=False, only=MODELS):
    """Builds the selected models into `out`; returns the manifest dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = {"tiny": tiny, "models": {}}
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        if previous.get("tiny") == tiny:
            manifest = previous
    for name in MODELS:  # fixed order, whatever the order of --only
        if name not in only:
            continue
        start = time.perf_counter()
        entry = build_unet(out, tiny) if name == "unet" else build_torch(name, out, tiny)
        entry["total_seconds"] = time.perf_counter() - start
        manifest["models"][name] = entry
        print(
            f"{name:8s} {entry['metric']}={entry['value']:.4f} params={entry['params']:,} "
            f"train={entry['train_seconds']:.1f}s total={entry['total_seconds']:.1f}s",
            flush=True,
        )
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output directory (created)")
    parser.add_argument("--tiny", action="store_true", help="small fast variants, for tests")
    parser.add_argument("--only", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}")
    start = time.perf_counter()
    try:
        build(args.out, tiny=args.tiny, only=only)
    except BuildError as error:
        raise SystemExit(f"models.build: {error}") from None
    print(f"done in {time.perf_counter() - start:.1f}s -> {args.out}")


if __name__ == "__main__":
    main()
