"""Model zoo for the benchmark: random-weight torchvision CNNs and a BERT-base encoder.

Every model is wrapped so that it takes ONE tensor and returns ONE tensor; that keeps
every peer (TorchScript, ONNX, torch.compile backends, torch_tvm) on the same calling
convention and makes the "max abs diff vs eager" check a single number.
"""
from __future__ import annotations

import torch

VISION_MODELS = ("resnet18", "resnet50", "mobilenet_v2")
BERT_MODELS = ("bert",)
ALL_MODELS = VISION_MODELS + BERT_MODELS
BERT_SEQ_LEN = 128


class BertEncoder(torch.nn.Module):
    """BertModel(BertConfig()) (BERT-base, random init) returning last_hidden_state."""

    def __init__(self):
        super().__init__()
        from transformers import BertConfig, BertModel

        cfg = BertConfig()
        self.bert = BertModel(cfg, add_pooling_layer=False)
        self.vocab_size = cfg.vocab_size

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, return_dict=False)[0]


def batches_for(model: str, batches: list[int]) -> list[int]:
    """BERT is measured at batch 1 only (seq len 128); CNNs at every requested batch."""
    if model in BERT_MODELS:
        return [1]
    return list(batches)


def build(model: str, batch: int, seed: int = 0):
    """Return (module in eval mode, example input, short description)."""
    torch.manual_seed(seed)
    if model in VISION_MODELS:
        import torchvision

        m = getattr(torchvision.models, model)(weights=None).eval()
        x = torch.randn(batch, 3, 224, 224)
        desc = f"torchvision.models.{model}(weights=None), input {batch}x3x224x224 fp32"
    elif model == "bert":
        m = BertEncoder().eval()
        g = torch.Generator().manual_seed(seed + 1)
        x = torch.randint(0, m.vocab_size, (batch, BERT_SEQ_LEN), generator=g)
        desc = (f"transformers BertModel(BertConfig()) encoder (no pooler), input_ids "
                f"{batch}x{BERT_SEQ_LEN} int64, attn={m.bert.config._attn_implementation}")
    else:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(ALL_MODELS)}")
    return m, x, desc
