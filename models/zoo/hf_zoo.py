"""Hugging Face transformers from small configs (random init, no download), exported with a dynamic
batch and, for text, a dynamic sequence length.

Each model is wrapped so that forward takes tensors and returns a tuple of tensors, which is what
torch.export and every runtime's signature want. Eager attention: the sdpa path builds its masks with
code that torch.export cannot trace with a symbolic sequence length.
"""

from __future__ import annotations

from pathlib import Path

from models.zoo.registry import ZooModel
from models.zoo.torch_common import import_torchvision, prepare, save_pt2, spec

BUILDER = "models.zoo.hf_zoo:build"
VOCAB, SEQ, MAX_SEQ = 1000, 16, 64
TEXT = dict(hidden=64, layers=2, heads=2, ffn=128)


def _text(arch, mask=True, outputs=1) -> ZooModel:
    inputs = [spec("input_ids", (2, SEQ), "int64", (0, VOCAB), dynamic=(0, 1))]
    if mask:
        inputs.append(spec("attention_mask", (2, SEQ), "int64", (0, 2), dynamic=(0, 1)))
    return ZooModel(name=arch, family="hf", arch=arch, format="pt2", inputs=tuple(inputs), builder=BUILDER,
                    options={"max_seq": MAX_SEQ}, pin_shapes=True, outputs=outputs)


def _vision(arch, name, shape) -> ZooModel:
    return ZooModel(name=arch, family="hf", arch=arch, format="pt2", inputs=(spec(name, shape),),
                    builder=BUILDER)


ENTRIES = [
    _text("bert", outputs=2),  # hidden states and pooler
    _text("distilbert"),
    _text("roberta", outputs=2),
    _text("gpt2", mask=False),
    _text("t5_encoder"),
    _vision("vit", "pixel_values", (2, 3, 32, 32)),
    _vision("whisper_encoder", "input_features", (2, 80, 64)),  # mel length = 2 x max_source_positions
    _vision("mobilevit", "pixel_values", (2, 3, 64, 64)),
]


def _config_and_model(arch: str):
    import_torchvision()  # transformers imports torchvision when it is installed
    import transformers as tr

    h, n, heads, ffn = TEXT["hidden"], TEXT["layers"], TEXT["heads"], TEXT["ffn"]
    common = dict(attn_implementation="eager")
    if arch == "bert":
        config = tr.BertConfig(vocab_size=VOCAB, hidden_size=h, num_hidden_layers=n, num_attention_heads=heads,
                               intermediate_size=ffn, max_position_embeddings=MAX_SEQ, **common)
        return tr.BertModel(config)
    if arch == "distilbert":
        config = tr.DistilBertConfig(vocab_size=VOCAB, dim=h, n_layers=n, n_heads=heads, hidden_dim=ffn,
                                     max_position_embeddings=MAX_SEQ, **common)
        return tr.DistilBertModel(config)
    if arch == "roberta":  # positions start after padding_idx (1), so the table is 2 longer
        config = tr.RobertaConfig(vocab_size=VOCAB, hidden_size=h, num_hidden_layers=n, num_attention_heads=heads,
                                  intermediate_size=ffn, max_position_embeddings=MAX_SEQ + 2, **common)
        return tr.RobertaModel(config)
    if arch == "gpt2":
        config = tr.GPT2Config(vocab_size=VOCAB, n_positions=MAX_SEQ, n_embd=h, n_layer=n, n_head=heads,
                               use_cache=False, bos_token_id=0, eos_token_id=0, **common)
        return tr.GPT2LMHeadModel(config)
    if arch == "t5_encoder":
        config = tr.T5Config(vocab_size=VOCAB, d_model=h, d_kv=h // heads, d_ff=ffn, num_layers=n, num_heads=heads,
                             use_cache=False, **common)
        return tr.T5EncoderModel(config)
    if arch == "vit":
        config = tr.ViTConfig(image_size=32, patch_size=8, hidden_size=h, num_hidden_layers=n,
                              num_attention_heads=heads, intermediate_size=ffn, **common)
        return tr.ViTModel(config)
    if arch == "whisper_encoder":  # the encoder alone: no decoder, no token table
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        config = tr.WhisperConfig(d_model=h, encoder_layers=n, encoder_attention_heads=heads, encoder_ffn_dim=ffn,
                                  num_mel_bins=80, max_source_positions=32, vocab_size=VOCAB, pad_token_id=0,
                                  bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, **common)
        return WhisperEncoder(config)
    if arch == "mobilevit":  # MobileViT-XXS widths
        config = tr.MobileViTConfig(image_size=64, hidden_sizes=[64, 80, 96],
                                    neck_hidden_sizes=[16, 24, 48, 64, 80, 96, 320], expand_ratio=2.0,
                                    num_labels=10, **common)
        return tr.MobileViTForImageClassification(config)
    raise KeyError(arch)


# Outputs kept per architecture: the hidden states (and the pooler where there is one), or the logits.
OUTPUT_KEYS = {"bert": ("last_hidden_state", "pooler_output"), "roberta": ("last_hidden_state", "pooler_output"),
               "gpt2": ("logits",), "mobilevit": ("logits",)}


def _wrappers():
    """One wrapper per input signature: torch.export names the program's inputs after forward's
    parameters, so each takes the tensors by the inputs' names and returns a tuple."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, inner, keys):
            super().__init__()
            self.inner, self.keys = inner, keys

        def outputs(self, result):
            return tuple(result[key] for key in self.keys)

    class TextWithMask(Wrapped):
        def forward(self, input_ids, attention_mask):
            return self.outputs(self.inner(input_ids=input_ids, attention_mask=attention_mask, return_dict=True))

    class Text(Wrapped):
        def forward(self, input_ids):
            return self.outputs(self.inner(input_ids=input_ids, return_dict=True))

    class Pixels(Wrapped):
        def forward(self, pixel_values):
            return self.outputs(self.inner(pixel_values=pixel_values, return_dict=True))

    class Features(Wrapped):
        def forward(self, input_features):
            return self.outputs(self.inner(input_features=input_features, return_dict=True))

    return {("input_ids", "attention_mask"): TextWithMask, ("input_ids",): Text, ("pixel_values",): Pixels,
            ("input_features",): Features}


def make_module(model: ZooModel):
    import torch

    torch.manual_seed(model.seed)
    inner = _config_and_model(model.arch).eval()
    wrapper = _wrappers()[tuple(s.name for s in model.inputs)]
    return wrapper(inner, OUTPUT_KEYS.get(model.arch, ("last_hidden_state",))).eval()


def prepared(model: ZooModel):
    """The module with its seeded weights and BatchNorm statistics, as it is saved."""
    return prepare(make_module(model), model)


def build(model: ZooModel, out: Path) -> None:
    module = prepared(model)
    save_pt2(module, model, out)
