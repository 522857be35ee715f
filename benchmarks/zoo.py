#!/usr/bin/env python3
"""Model-zoo benchmark: torch_tvm vs TorchScript and inductor on ~100 random-weight models.

For every model of the ZOO table below (torchvision, timm, transformers, torch.nn), at
one batch size and thread count, ONE child process per model:

- builds the model with random weights (nothing is downloaded) and its input;
- eager PyTorch output = the reference;
- TorchScript default: `torch.jit.trace` with torch_tvm disabled, warmed up (5 calls)
  BEFORE torch_tvm is enabled; its optimised graph is checked for tvm::CompilationGroup;
- inductor: `torch.compile(backend="inductor")` with `torch._inductor.config.freezing=True`
  (a failure is recorded, the model goes on);
- torch_tvm: `torch_tvm.enable()`, trace a separate copy, call until nothing new compiles,
  `torch_tvm.disable()` (the optimised plan keeps its TVM groups);
- warm-up, then timed calls round-robin (order shuffled each round) within a per-model
  budget; median, p10/p90, IQR; first-call (compile) time; max relative error vs eager
  (max|y - ref| / max|ref|); torch_tvm coverage (groups, ops left to PyTorch and their
  kinds, fallbacks); the CPU (torch_tvm._C.host_cpu(), /proc/cpuinfo model name).

The parent keeps every result in benchmarks/zoo_results.json, keyed by model + batch +
threads, written after each model: a rerun skips the models already measured (resumable;
--force re-measures all, --only NAMES re-measures those). A crash or hang of one model
(per-model timeout) becomes an error row. benchmarks/zoo.md is rendered from the cache.

    python benchmarks/zoo.py                          # the whole zoo (resumable)
    python benchmarks/zoo.py --models resnet18,bert   # a subset (cached rows skipped)
    python benchmarks/zoo.py --only resnet18          # re-measure these
    python benchmarks/zoo.py --report-only            # re-render zoo.md from the cache
    python benchmarks/zoo.py --list                   # the model table
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import random
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import types
import warnings
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Never pick up the source tree's torch_tvm/ (it has no built _C): use the installed one.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != ROOT]
if HERE not in sys.path:
    sys.path.insert(0, HERE)

DEFAULT_JSON = os.path.join(HERE, "zoo_results.json")
DEFAULT_MD = os.path.join(HERE, "zoo.md")
DEFAULT_LOGS = os.path.join(HERE, "logs", "zoo")
TIMED_PEERS = ("ts_default", "inductor", "torch_tvm")
REL_ERR_LIMIT = 1e-4


# --------------------------------------------------------------------------------------
# The model table. Every builder returns an eval-mode nn.Module taking ONE tensor and
# returning ONE tensor (wrappers pick the main output), so every peer shares one calling
# convention and the error check is one number. Imports happen inside the builders.
# --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Entry:
    name: str                 # unique key (also the --models / --only name)
    family: str
    source: str               # torchvision / timm / transformers / torch.nn
    build: Callable           # () -> nn.Module (random weights)
    shape: tuple              # input shape at batch 1 (dim 0 is the batch)
    dtype: str = "float32"    # or "int64" (token ids in [0, vocab))
    vocab: int = 0
    note: str = ""


def _wrap(model, pick):
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return pick(self.m, x)

    return Wrapped(model)


def tv(name, **kw):
    def build():
        import torchvision

        return getattr(torchvision.models, name)(weights=None, **kw)
    return build


def tv_det(name):
    """torchvision detection: list of images in, list of dicts out. The wrapper returns
    [boxes | score | label] of image 0 as one (N, 6) tensor."""
    def build():
        import torch
        import torchvision

        m = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None)
        # With random init the backbone's activations vanish (BatchNorm running stats
        # 0/1), every class score is exactly 1/91 and top-k/NMS pick among ties in an
        # arbitrary order (TorchScript's output already differed from eager's). Set the
        # BatchNorm statistics from three seeded random batches so scores are distinct.
        for mod in m.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.reset_running_stats()
                mod.momentum = None  # cumulative average
        m.train()
        g = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            for _ in range(3):
                imgs = m.transform(list(torch.randn(2, 3, 320, 320, generator=g)))[0]
                m.head(list(m.backbone(imgs.tensors).values()))
        m.eval()

        def pick(m, x):
            d = m(list(x.unbind(0)))[0]
            return torch.cat([d["boxes"], d["scores"][:, None],
                              d["labels"][:, None].to(d["boxes"].dtype)], 1)
        return _wrap(m.eval(), pick)
    return build


def tv_seg(name):
    def build():
        import torchvision

        m = getattr(torchvision.models.segmentation, name)(weights=None,
                                                           weights_backbone=None)
        return _wrap(m.eval(), lambda m, x: m(x)["out"])
    return build


def tv_video(name):
    def build():
        import torchvision

        return getattr(torchvision.models.video, name)(weights=None)
    return build


def tm(name, **kw):
    def build():
        import timm

        return timm.create_model(name, pretrained=False, **kw)
    return build


def hf_bert():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=1024)
    m = BertModel(cfg, add_pooling_layer=False)
    return _wrap(m.eval(), lambda m, x: m(input_ids=x, return_dict=False)[0])


def hf_gpt2():
    from transformers import GPT2Config, GPT2Model

    cfg = GPT2Config(n_layer=4, n_embd=256, n_head=4, use_cache=False)
    m = GPT2Model(cfg)
    return _wrap(m.eval(), lambda m, x: m(input_ids=x, use_cache=False, return_dict=False)[0])


def hf_t5_encoder():
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(d_model=256, d_kv=32, d_ff=1024, num_layers=4, num_heads=4,
                   use_cache=False)
    m = T5EncoderModel(cfg)
    return _wrap(m.eval(), lambda m, x: m(input_ids=x, return_dict=False)[0])


def nn_transformer_encoder():
    import torch

    layer = torch.nn.TransformerEncoderLayer(d_model=256, nhead=4, dim_feedforward=1024,
                                             batch_first=True)
    return torch.nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False)


def nn_transformer_encoder_nofastpath():
    """The same with the fused fast path off (process-wide, this model's child only), so
    the trace holds the decomposed ops (linear, softmax, layer_norm, ...)."""
    import torch

    torch.backends.mha.set_fastpath_enabled(False)
    return nn_transformer_encoder()


IMG = (1, 3, 224, 224)


def img(s):
    return (1, 3, s, s)


E = Entry
ZOO: list[Entry] = [
    # ---- torchvision classification: every family at its smallest size ----
    E("tv_alexnet", "AlexNet", "torchvision", tv("alexnet"), IMG),
    E("tv_vgg11", "VGG", "torchvision", tv("vgg11"), IMG),
    E("tv_resnet18", "ResNet", "torchvision", tv("resnet18"), IMG),
    E("tv_resnext50_32x4d", "ResNeXt", "torchvision", tv("resnext50_32x4d"), IMG),
    E("tv_wide_resnet50_2", "Wide ResNet", "torchvision", tv("wide_resnet50_2"), IMG),
    E("tv_squeezenet1_0", "SqueezeNet", "torchvision", tv("squeezenet1_0"), IMG),
    E("tv_densenet121", "DenseNet", "torchvision", tv("densenet121"), IMG),
    E("tv_googlenet", "GoogLeNet", "torchvision", tv("googlenet"), IMG),
    E("tv_inception_v3", "Inception v3", "torchvision", tv("inception_v3"), img(299)),
    E("tv_mobilenet_v2", "MobileNetV2", "torchvision", tv("mobilenet_v2"), IMG),
    E("tv_mobilenet_v3_small", "MobileNetV3", "torchvision", tv("mobilenet_v3_small"), IMG),
    E("tv_shufflenet_v2_x0_5", "ShuffleNetV2", "torchvision", tv("shufflenet_v2_x0_5"), IMG),
    E("tv_mnasnet0_5", "MNASNet", "torchvision", tv("mnasnet0_5"), IMG),
    E("tv_efficientnet_b0", "EfficientNet", "torchvision", tv("efficientnet_b0"), IMG),
    E("tv_efficientnet_v2_s", "EfficientNetV2", "torchvision", tv("efficientnet_v2_s"), IMG),
    E("tv_regnet_x_400mf", "RegNetX", "torchvision", tv("regnet_x_400mf"), IMG),
    E("tv_regnet_y_400mf", "RegNetY", "torchvision", tv("regnet_y_400mf"), IMG),
    E("tv_convnext_tiny", "ConvNeXt", "torchvision", tv("convnext_tiny"), IMG),
    E("tv_vit_b_16", "ViT", "torchvision", tv("vit_b_16"), IMG),
    E("tv_swin_t", "Swin", "torchvision", tv("swin_t"), IMG),
    E("tv_maxvit_t", "MaxViT", "torchvision", tv("maxvit_t"), IMG),
    # ---- torchvision detection / segmentation / video ----
    E("tv_ssdlite320_mobilenet_v3", "SSDlite detection", "torchvision",
      tv_det("ssdlite320_mobilenet_v3_large"), (1, 3, 320, 320),
      note="full model incl. transform, post-processing and NMS; output = image 0's "
      "detections (boxes, score, label); BatchNorm statistics set from random batches"),
    E("tv_lraspp_mobilenet_v3", "LR-ASPP segmentation", "torchvision",
      tv_seg("lraspp_mobilenet_v3_large"), IMG, note="output = 'out' (21 classes)"),
    E("tv_r3d_18", "R3D video", "torchvision", tv_video("r3d_18"), (1, 3, 8, 112, 112)),
    # ---- timm: different families ----
    E("resnet18", "ResNet", "timm", tm("resnet18"), IMG),
    E("resnet50d", "ResNet-D", "timm", tm("resnet50d"), IMG),
    E("resnetv2_50x1_bit", "BiT (GroupNorm + StdConv)", "timm", tm("resnetv2_50x1_bit"), IMG),
    E("res2net50_26w_4s", "Res2Net", "timm", tm("res2net50_26w_4s"), IMG),
    E("resnest14d", "ResNeSt (split attention)", "timm", tm("resnest14d"), IMG),
    E("seresnext26d_32x4d", "SE-ResNeXt", "timm", tm("seresnext26d_32x4d"), IMG),
    E("skresnet18", "SKNet", "timm", tm("skresnet18"), IMG),
    E("eca_resnet33ts", "ECA ResNet (SiLU)", "timm", tm("eca_resnet33ts"), img(256)),
    E("efficientnet_b0", "EfficientNet", "timm", tm("efficientnet_b0"), IMG),
    E("tf_efficientnet_lite0", "EfficientNet-Lite (TF pad)", "timm",
      tm("tf_efficientnet_lite0"), IMG),
    E("tinynet_a", "TinyNet", "timm", tm("tinynet_a"), img(192)),
    E("mobilenetv3_small_100", "MobileNetV3", "timm", tm("mobilenetv3_small_100"), IMG),
    E("mobilenetv4_conv_small", "MobileNetV4", "timm", tm("mobilenetv4_conv_small"), IMG),
    E("lcnet_050", "LCNet", "timm", tm("lcnet_050"), IMG),
    E("mixnet_s", "MixNet (mixed kernels)", "timm", tm("mixnet_s"), IMG),
    E("fbnetc_100", "FBNet", "timm", tm("fbnetc_100"), IMG),
    E("hardcorenas_a", "HardCoRe-NAS", "timm", tm("hardcorenas_a"), IMG),
    E("ghostnet_100", "GhostNet", "timm", tm("ghostnet_100"), IMG),
    E("ghostnetv2_100", "GhostNetV2", "timm", tm("ghostnetv2_100"), IMG),
    E("rexnet_100", "ReXNet", "timm", tm("rexnet_100"), IMG),
    E("regnety_002", "RegNetY", "timm", tm("regnety_002"), IMG),
    E("gernet_s", "GENet", "timm", tm("gernet_s"), IMG),
    E("repvgg_a0", "RepVGG", "timm", tm("repvgg_a0"), IMG),
    E("mobileone_s0", "MobileOne", "timm", tm("mobileone_s0"), IMG),
    E("hgnetv2_b0", "HGNetV2", "timm", tm("hgnetv2_b0"), IMG),
    E("dla34", "DLA", "timm", tm("dla34"), IMG),
    E("dpn68", "DPN", "timm", tm("dpn68"), IMG),
    E("cspdarknet53", "CSPDarkNet (Mish)", "timm", tm("cspdarknet53"), img(256)),
    E("ese_vovnet19b_dw", "VoVNet", "timm", tm("ese_vovnet19b_dw"), IMG),
    E("selecsls42b", "SelecSLS", "timm", tm("selecsls42b"), IMG),
    E("hrnet_w18_small", "HRNet", "timm", tm("hrnet_w18_small"), IMG),
    E("xception41", "Xception", "timm", tm("xception41"), img(299)),
    E("dm_nfnet_f0", "NFNet (norm-free)", "timm", tm("dm_nfnet_f0"), IMG),
    E("sebotnet33ts_256", "BoTNet (self-attention)", "timm", tm("sebotnet33ts_256"),
      img(256)),
    E("halonet26t", "HaloNet (local attention)", "timm", tm("halonet26t"), img(256)),
    E("convnext_atto", "ConvNeXt", "timm", tm("convnext_atto"), IMG),
    E("convnextv2_atto", "ConvNeXt V2 (GRN)", "timm", tm("convnextv2_atto"), IMG),
    E("inception_next_atto", "InceptionNeXt", "timm", tm("inception_next_atto"), IMG),
    E("starnet_s1", "StarNet", "timm", tm("starnet_s1"), IMG),
    E("mambaout_femto", "MambaOut", "timm", tm("mambaout_femto"), IMG),
    E("poolformer_s12", "PoolFormer (MetaFormer, GroupNorm)", "timm", tm("poolformer_s12"),
      IMG),
    E("edgenext_xx_small", "EdgeNeXt", "timm", tm("edgenext_xx_small"), img(256)),
    E("vit_tiny_patch16_224", "ViT", "timm", tm("vit_tiny_patch16_224"), IMG),
    E("deit_tiny_patch16_224", "DeiT", "timm", tm("deit_tiny_patch16_224"), IMG),
    E("eva02_tiny_patch14_224", "EVA-02 (RoPE, SwiGLU)", "timm",
      tm("eva02_tiny_patch14_224", num_classes=1000), IMG),
    E("cait_xxs24_224", "CaiT", "timm", tm("cait_xxs24_224"), IMG),
    E("xcit_nano_12_p16_224", "XCiT", "timm", tm("xcit_nano_12_p16_224"), IMG),
    E("pit_ti_224", "PiT", "timm", tm("pit_ti_224"), IMG),
    E("crossvit_tiny_240", "CrossViT", "timm", tm("crossvit_tiny_240"), img(240)),
    E("coat_lite_tiny", "CoaT", "timm", tm("coat_lite_tiny"), IMG),
    E("swin_tiny_patch4_window7_224", "Swin", "timm", tm("swin_tiny_patch4_window7_224"),
      IMG),
    E("twins_svt_small", "Twins", "timm", tm("twins_svt_small"), IMG),
    E("pvt_v2_b0", "PVTv2", "timm", tm("pvt_v2_b0"), IMG),
    E("davit_tiny", "DaViT", "timm", tm("davit_tiny"), IMG),
    E("focalnet_tiny_srf", "FocalNet", "timm", tm("focalnet_tiny_srf"), IMG),
    E("gcvit_xxtiny", "GCViT", "timm", tm("gcvit_xxtiny"), IMG),
    E("maxvit_nano_rw_256", "MaxViT", "timm", tm("maxvit_nano_rw_256"), img(256)),
    E("hiera_tiny_224", "Hiera", "timm", tm("hiera_tiny_224"), IMG),
    E("tiny_vit_5m_224", "TinyViT", "timm", tm("tiny_vit_5m_224", num_classes=1000), IMG),
    E("levit_128s", "LeViT", "timm", tm("levit_128s"), IMG),
    E("efficientformer_l1", "EfficientFormer", "timm", tm("efficientformer_l1"), IMG),
    E("efficientvit_b0", "EfficientViT (MIT, linear attention)", "timm",
      tm("efficientvit_b0"), IMG),
    E("efficientvit_m0", "EfficientViT (MSRA)", "timm", tm("efficientvit_m0"), IMG),
    E("mobilevit_xxs", "MobileViT", "timm", tm("mobilevit_xxs"), img(256)),
    E("mobilevitv2_050", "MobileViTv2", "timm", tm("mobilevitv2_050"), img(256)),
    E("fastvit_t8", "FastViT", "timm", tm("fastvit_t8"), img(256)),
    E("mixer_s16_224", "MLP-Mixer", "timm", tm("mixer_s16_224"), IMG),
    E("resmlp_12_224", "ResMLP", "timm", tm("resmlp_12_224"), IMG),
    E("sequencer2d_s", "Sequencer (BiLSTM)", "timm", tm("sequencer2d_s"), IMG),
    # ---- transformers (small configs, random init) and torch.nn ----
    E("bert_small", "BERT encoder (4 layers, hidden 256)", "transformers", hf_bert,
      (1, 128), "int64", 30522, note="BertModel, no pooler; seq 128"),
    E("gpt2_small", "GPT-2 (4 layers, n_embd 256)", "transformers", hf_gpt2, (1, 64),
      "int64", 50257, note="GPT2Model, use_cache=False; seq 64"),
    E("t5_encoder_small", "T5 encoder (4 layers, d_model 256)", "transformers",
      hf_t5_encoder, (1, 128), "int64", 32128, note="T5EncoderModel; seq 128"),
    E("nn_transformer_encoder", "nn.TransformerEncoder (4 layers, d_model 256)",
      "torch.nn", nn_transformer_encoder, (1, 128, 256),
      note="batch_first, nhead 4, ffn 1024; eval + no_grad: the trace holds the fused "
      "aten::_transformer_encoder_layer_fwd fast path"),
    E("nn_transformer_encoder_nofastpath", "nn.TransformerEncoder, MHA fast path off",
      "torch.nn", nn_transformer_encoder_nofastpath, (1, 128, 256),
      note="torch.backends.mha.set_fastpath_enabled(False): decomposed layers"),
]
ZOO_BY_NAME = {e.name: e for e in ZOO}
assert len(ZOO_BY_NAME) == len(ZOO), "duplicate model names in ZOO"


def input_shape(e: Entry, batch: int) -> tuple:
    return (batch,) + tuple(e.shape[1:])


def input_desc(e: Entry, batch: int) -> str:
    s = "x".join(str(d) for d in input_shape(e, batch))
    return f"{s} {e.dtype}" + (f" ids < {e.vocab}" if e.vocab else "")


def make_input(e: Entry, batch: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    shape = input_shape(e, batch)
    if e.dtype == "int64":
        return torch.randint(0, e.vocab, shape, generator=g)
    return torch.randn(shape, generator=g)


def config_key(name: str, batch: int, threads: int) -> str:
    return f"{name}|b{batch}|t{threads}"


# --------------------------------------------------------------------------------------
# Child: one model, all peers, in this process.
# --------------------------------------------------------------------------------------

def _pct(s: list[float], q: float) -> float:
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(ts: list[float]) -> dict:
    if not ts:
        return {}
    s = sorted(ts)
    ms = {f"{n}_ms": _pct(s, q) * 1e3 for n, q in
          (("p10", 0.10), ("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p90", 0.90))}
    return dict(n=len(s), min_ms=s[0] * 1e3, mean_ms=sum(s) / len(s) * 1e3, **ms)


def _first_tensor(y):
    import torch

    while isinstance(y, (list, tuple)) and y:
        y = y[0]
    if isinstance(y, dict):
        y = next(iter(y.values()))
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"output is {type(y).__name__}, not a tensor")
    return y


def rel_err(y, ref) -> tuple[float | None, str | None]:
    """(max|y - ref| / max|ref|, None) or (None, why it cannot be compared)."""
    try:
        y = _first_tensor(y)
    except TypeError as e:
        return None, str(e)
    if tuple(y.shape) != tuple(ref.shape):
        return None, f"shape {tuple(y.shape)} vs eager {tuple(ref.shape)}"
    diff = float((y.detach().double() - ref.double()).abs().max()) if y.numel() else 0.0
    scale = float(ref.double().abs().max()) if ref.numel() else 0.0
    if math.isnan(diff):
        return None, "NaN in output"
    return (diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))), None


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for p in ("torch", "torchvision", "apache-tvm", "torch_tvm", "timm", "transformers"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def _import_torch_tvm(log):
    """The installed torch_tvm may be reinstalled under us: retry a failed import."""
    import importlib

    for attempt in range(4):
        try:
            return importlib.import_module("torch_tvm")
        except Exception as e:  # noqa: BLE001
            if attempt == 3:
                raise
            log(f"import torch_tvm failed ({type(e).__name__}: {e}); retrying in 60 s")
            for k in [k for k in sys.modules if k == "torch_tvm" or k.startswith("torch_tvm.")]:
                del sys.modules[k]
            time.sleep(60)


def _count_groups(graph) -> int:
    return str(graph).count("tvm::CompilationGroup") if graph is not None else 0


def run_child(name: str, batch: int, threads: int, a, out_path: str) -> None:
    """Measure one model; write the (partial, then final) result to out_path."""
    warnings.filterwarnings("ignore")
    import torch

    import peers as P

    e = ZOO_BY_NAME[name]
    res = dict(model=name, family=e.family, source=e.source, batch=batch, threads=threads,
               input=input_desc(e, batch), note=e.note, phase="start", peers={})

    def save():
        tmp = out_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f, indent=1)
        os.replace(tmp, out_path)

    def phase(p):
        res["phase"] = p
        log(f"[{name}] {p}")
        save()

    t_start = time.perf_counter()
    torch.set_num_threads(threads)
    torch_tvm = _import_torch_tvm(log)
    torch_tvm.disable()
    res["cpu"] = dict(host_cpu=str(torch_tvm._C.host_cpu()), model_name=cpu_model_name())
    res["versions"] = _versions()
    res["torch_threads"] = torch.get_num_threads()

    phase("build")
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    model = e.build().eval()
    x = make_input(e, batch, a.seed)
    res["build_s"] = time.perf_counter() - t0
    res["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6

    phase("eager")
    with torch.no_grad():
        t0 = time.perf_counter()
        ref = _first_tensor(model(x)).detach().clone()
        res["eager_first_s"] = time.perf_counter() - t0
    res["output"] = "x".join(map(str, ref.shape)) + " " + str(ref.dtype).replace("torch.", "")
    res["ref_max_abs"] = float(ref.double().abs().max()) if ref.numel() else 0.0

    # What the peers of peers.py read: ctx.model, .x, .ref, .threads, .args.
    ctx = types.SimpleNamespace(model=model, x=x, ref=ref, threads=threads,
                                args=types.SimpleNamespace(inductor_cache=a.inductor_cache))

    class TorchTVM(P.TorchTVM):
        """peers.TorchTVM, keeping the optimised graph for the op-kind report."""

        def _describe(self, tt, before, graph):
            self.graph = graph
            super()._describe(tt, before, graph)

    active = []

    def prepare(key, peer, extra=None):
        r = res["peers"].setdefault(key, {"status": "ok"})
        phase(f"prepare {key}")
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                y = peer.prepare()
                r["first_call_s"] = time.perf_counter() - t0
                if extra:
                    y = extra(peer, r, y)
            r["rel_err"], why = rel_err(y, ref)
            if why:
                r["rel_err_note"] = why
            active.append(peer)
        except Exception as ex:  # noqa: BLE001 - the row records the reason
            r["status"] = "error"
            r["error"] = P.short_error(ex, 400)
            r["prep_s"] = time.perf_counter() - t0
            log(f"  {key} failed: {r['error']}")
            peer.close()
        r["notes"] = peer.notes
        if "first_call_s" in r:
            log(f"  {key}: first call {r['first_call_s']:.2f} s, rel err {r.get('rel_err')}")
        save()

    # TorchScript default: traced and warmed up with torch_tvm disabled, before enable().
    def ts_extra(peer, r, y):
        for _ in range(2):  # 3 calls in prepare + 2: the plan is optimised and cached
            y = peer.fn(x)
        n = _count_groups(torch.jit.last_executed_optimized_graph())
        r["tvm_groups_in_graph"] = n
        if n:
            raise P.PeerError(f"baseline contaminated: {n} tvm::CompilationGroup in the "
                              "TorchScript default graph")
        return y

    torch_tvm.disable()
    ts = P.TSDefault(ctx)
    prepare("ts_default", ts, ts_extra)
    if not a.no_inductor:
        prepare("inductor", P.Inductor(ctx))
    else:
        res["peers"]["inductor"] = {"status": "skipped", "error": "--no-inductor"}

    def tvm_extra(peer, r, y):
        info = dict(peer.tvm_info)
        ex = torch_tvm._C.explain_graph(peer.graph) if peer.graph is not None else None
        if ex is not None:
            info["groups_in_graph"] = len(ex["groups"])
            info["group_sizes"] = [len(g["ops"]) for g in ex["groups"]]
            reasons = {}
            for o in ex["outside"]:
                reasons.setdefault(o["op"], str(o.get("reason", ""))[:160])
            info["outside_reasons"] = reasons
        r["torch_tvm"] = info
        return y

    prepare("torch_tvm", TorchTVM(ctx), tvm_extra)
    if torch_tvm.is_enabled():
        torch_tvm.disable()
    res["setup_s"] = time.perf_counter() - t_start

    # Warm-up (round-robin): up to a.warmup calls per peer, at most a.warmup_budget s each.
    def drop(peer, pool, ex):
        r = res["peers"][peer.key]
        r["status"] = "error"
        r["error"] = "during timing: " + P.short_error(ex, 300)
        log(f"  {peer.key} failed while timing: {r['error']}")
        pool.remove(peer)
        if peer in active:
            active.remove(peer)

    phase("warmup")
    gap = a.gap_ms / 1e3
    with torch.no_grad():
        for _ in range(a.warmup):
            for peer in list(active):
                if peer.last_prep_call_s >= a.warmup_budget:
                    continue  # slow peers already ended their prep with steady calls
                try:
                    peer.call()
                except Exception as ex:  # noqa: BLE001
                    drop(peer, active, ex)
                time.sleep(gap)

    # Timed, round-robin, order shuffled every round. Stop when every peer has
    # >= min_iters samples and the round-robin has used `budget` seconds, or at
    # max_iters, or (whatever the counts) at `cap` seconds.
    phase("timing")
    s0 = torch_tvm.stats()
    times = {p.key: [] for p in active}
    rng = random.Random(a.seed)
    t_t = time.perf_counter()
    import gc

    gc.collect()
    gc.disable()
    try:
        with torch.no_grad():
            running = list(active)
            while running:
                el = time.perf_counter() - t_t
                if el >= a.cap or (el >= a.budget and
                                   all(len(times[p.key]) >= a.min_iters for p in running)):
                    break
                order = list(running)
                rng.shuffle(order)
                for peer in order:
                    if len(times[peer.key]) >= a.max_iters:
                        running.remove(peer)
                        continue
                    try:
                        times[peer.key].append(peer.call())
                    except Exception as ex:  # noqa: BLE001
                        drop(peer, running, ex)
                    time.sleep(gap)
    finally:
        gc.enable()
    res["timing_s"] = time.perf_counter() - t_t
    s1 = torch_tvm.stats()
    for peer in active:
        res["peers"][peer.key].update(summarize(times[peer.key]))
    if "torch_tvm" in res["peers"] and "torch_tvm" in res["peers"]["torch_tvm"]:
        info = res["peers"]["torch_tvm"]["torch_tvm"]
        info["timing_fallback_calls"] = s1["fallback_calls"] - s0["fallback_calls"]
        info["timing_compiles"] = s1["compiles"] - s0["compiles"]
    # The baseline again, after everything: still no TVM group in its plan?
    if ts in active:
        with torch.no_grad():
            ts.fn(x)
        n = _count_groups(torch.jit.last_executed_optimized_graph())
        res["peers"]["ts_default"]["tvm_groups_after_timing"] = n
    res["phase"] = "done"
    res["wall_s"] = time.perf_counter() - t_start
    save()
    for peer in active:
        peer.close()


def check_build(names: list[str], batch: int, seed: int) -> None:
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    failed = []
    for n in names:
        e = ZOO_BY_NAME[n]
        t0 = time.perf_counter()
        try:
            torch.manual_seed(seed)
            m = e.build().eval()
            params = sum(p.numel() for p in m.parameters()) / 1e6
            t1 = time.perf_counter()
            with torch.no_grad():
                y = _first_tensor(m(make_input(e, batch, seed)))
            print(f"ok   {n:32s} {params:7.1f} M params  build {t1 - t0:5.1f} s  eager "
                  f"{time.perf_counter() - t1:5.2f} s  out {tuple(y.shape)}", flush=True)
        except Exception as ex:  # noqa: BLE001
            failed.append(n)
            print(f"FAIL {n:32s} {type(ex).__name__}: {str(ex)[:300]}", flush=True)
    print(f"{len(names) - len(failed)} ok, {len(failed)} failed: {', '.join(failed)}")


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------
# Parent: cache, subprocesses, report.
# --------------------------------------------------------------------------------------

def load_cache(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
        data.setdefault("results", {})
        return data
    return {"results": {}}


def save_cache(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
    os.replace(tmp, path)


def run_model(e: Entry, a) -> dict:
    """One model in a fresh child process with a timeout; always returns a row."""
    from run import children_cpu_s, cpu_busy_s

    tmp = tempfile.mkdtemp(prefix="tvmzoo_")
    out_path = os.path.join(tmp, "out.json")
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")  # random weights only: never reach a hub
    env["PYTHONWARNINGS"] = "ignore"
    if a.inductor_cache == "cold":
        env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor_cache")
    if a.omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = a.omp_wait_policy.upper()
    os.makedirs(a.log_dir, exist_ok=True)
    log_path = os.path.join(a.log_dir, f"{e.name}_b{a.batch}_t{a.threads}.log")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", e.name, "--out", out_path,
           "--batch", str(a.batch), "--threads", str(a.threads)]
    for k in ("budget", "cap", "min_iters", "max_iters", "warmup", "warmup_budget",
              "gap_ms", "seed", "inductor_cache"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
    if a.no_inductor:
        cmd.append("--no-inductor")
    t0 = time.perf_counter()
    busy0, ru0 = cpu_busy_s(), children_cpu_s()
    fatal = None
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, cwd=HERE, env=env,
                                start_new_session=True)
        try:
            proc.wait(timeout=a.model_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            fatal = f"timeout: killed after {a.model_timeout:g} s"
        except KeyboardInterrupt:
            os.killpg(proc.pid, 9)
            proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    wall = time.perf_counter() - t0
    foreign = (cpu_busy_s() - busy0) - (children_cpu_s() - ru0)
    res = None
    if os.path.exists(out_path):
        with open(out_path) as f:
            res = json.load(f)
    if res is None:
        res = dict(model=e.name, family=e.family, source=e.source, batch=a.batch,
                   threads=a.threads, input=input_desc(e, a.batch), phase="start", peers={})
    if fatal is None and res.get("phase") != "done":
        fatal = (f"crashed (exit code {proc.returncode})" if proc.returncode else
                 "child ended without a result")
    if fatal:
        res["fatal"] = f"{fatal} in phase '{res.get('phase')}'; " + _log_tail(log_path)
    res["process_wall_s"] = wall
    res["background_cores"] = max(0.0, foreign / wall) if wall > 0 else None
    res["log"] = os.path.relpath(log_path, ROOT)
    res["measured_utc"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    res["settings"] = {k: getattr(a, k) for k in (
        "budget", "cap", "min_iters", "max_iters", "warmup", "warmup_budget", "gap_ms",
        "inductor_cache", "model_timeout", "omp_wait_policy")}
    shutil.rmtree(tmp, ignore_errors=True)
    return res


def _log_tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    except OSError:
        return ""
    lines = [ln for ln in lines if not ln.startswith("[")]
    return "log: " + " / ".join(lines[-2:])[:300]


# ---- formatting ----------------------------------------------------------------------

def _esc(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _ms(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if v < 1 else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def _x(v) -> str:
    return "–" if v is None else (f"{v:.2f}x" if v >= 0.1 else f"{v:.3f}x")


def _ok(r: dict, key: str) -> dict | None:
    p = r.get("peers", {}).get(key)
    return p if p and p.get("status") == "ok" and p.get("median_ms") else None


def _med(r, key):
    p = _ok(r, key)
    return p["median_ms"] if p else None


def _speedup(r, base):
    t, b = _med(r, "torch_tvm"), _med(r, base)
    return b / t if (t and b) else None


def _lat_cell(r, key) -> str:
    p = r.get("peers", {}).get(key)
    if p is None:
        return "–"
    if _ok(r, key):
        return f"{_ms(p['median_ms'])} ({_ms(p['p10_ms'])}–{_ms(p['p90_ms'])})"
    if p.get("status") == "ok":
        return "not timed"
    return "**error**" if p.get("status") == "error" else _esc(p.get("status", "–"))


def _outside_cell(info: dict | None) -> str:
    if not info or info.get("outside") is None:
        return "–"
    out = info["outside"]
    n = sum(out.values())
    if not n:
        return "0"
    top = sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    more = " …" if len(out) > 3 else ""
    return f"{n}: " + ", ".join(f"{k.replace('aten::', '')} {v}" for k, v in top) + more


def _fallback_cell(info: dict | None) -> str:
    if not info:
        return "–"
    fails = info.get("compile_failures", 0)
    calls = info.get("fallback_calls", 0) + info.get("timing_fallback_calls", 0)
    if not fails and not calls:
        return "0"
    return f"{fails} spec(s), {calls} call(s)"


def _rel_cell(r: dict) -> str:
    p = r.get("peers", {}).get("torch_tvm")
    if not p or p.get("status") != "ok":
        return "–"
    v = p.get("rel_err")
    if v is None:
        return _esc(p.get("rel_err_note", "–"))
    s = f"**{v:.1e}**" if v > REL_ERR_LIMIT else f"{v:.1e}"
    ts = r["peers"].get("ts_default") or {}
    if v > REL_ERR_LIMIT and ts.get("status") == "ok" and (ts.get("rel_err") or 0) > 0:
        s += f" (TorchScript {ts['rel_err']:.1e})"  # the model itself is not reproducible
    return s


def _geomean(vals):
    vals = [v for v in vals if v]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None


def select_rows(results: dict, batch: int, threads: int) -> list[dict]:
    """Cached rows of one configuration, in ZOO order (unknown names last)."""
    order = {e.name: i for i, e in enumerate(ZOO)}
    rows = [r for r in results.values()
            if r.get("batch") == batch and r.get("threads") == threads]
    return sorted(rows, key=lambda r: (order.get(r["model"], len(order)), r["model"]))


def markdown_table(results: dict, batch: int = 1, threads: int = 2, level: int = 2) -> str:
    """The zoo section (table + summary), from zoo_results.json's "results" dict, for one
    (batch, threads) configuration. `level` is the heading level, so that
    benchmarks/report.py can embed it: `zoo.markdown_table(json.load(f)["results"], 1, 2,
    level=2)`."""
    h = "#" * level
    rows = select_rows(results, batch, threads)
    out = []
    w = out.append
    w(f"{h} Model zoo: batch {batch}, {threads} thread(s)\n")
    if not rows:
        w("No model measured for this configuration yet.\n")
        return "\n".join(out) + "\n"
    cpus = sorted({f"{r['cpu']['model_name']} (torch_tvm host_cpu {r['cpu']['host_cpu']})"
                   for r in rows if r.get("cpu")})
    if cpus:
        w("CPU: " + "; ".join(cpus) + "\n")
    vers = next((r["versions"] for r in rows if r.get("versions")), None)
    if vers:
        w("Packages: " + ", ".join(f"{k} {v}" for k, v in vers.items() if v) + "\n")
    n_all = sum(1 for e in ZOO)
    w(f"{len(rows)} of {n_all} zoo models measured. Latency cells: median ms (p10–p90). "
      "Speedups are median/median (> 1: torch_tvm is faster). ⚠ marks models where "
      "torch_tvm is slower than TorchScript. first call = trace/compile + the calls until "
      "the first steady output. groups = TVM groups in torch_tvm's optimised graph; ops "
      "outside = ops left to PyTorch (count: top kinds); fallbacks = input specs whose "
      "compile failed and group calls that ran in PyTorch instead; max rel err = "
      "max|torch_tvm - eager| / max|eager| (bold > 1e-4; TorchScript's own error is "
      "added when it is not 0); bg load = CPU cores used by "
      "other processes while the model ran (above ~0.1 the row is disturbed on a 2-core "
      "machine).\n")
    w("| model | family / source | input | TorchScript ms | inductor ms | torch_tvm ms | "
      "vs TS | vs inductor | torch_tvm first call s | inductor first call s | groups | "
      "ops outside | fallbacks | max rel err | bg load |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
    for r in rows:
        tvm = r.get("peers", {}).get("torch_tvm", {})
        info = tvm.get("torch_tvm") if tvm.get("status") == "ok" else None
        sp_ts, sp_ind = _speedup(r, "ts_default"), _speedup(r, "inductor")
        slow = sp_ts is not None and sp_ts < 1.0
        name = ("⚠ " if slow else "") + r["model"]
        if r.get("fatal"):
            name += " (fatal)"
        ind = r.get("peers", {}).get("inductor", {})
        w(f"| {name} | {_esc(r.get('family', ''))} / {r.get('source', '')} | "
          f"{_esc(r.get('input', ''))} | {_lat_cell(r, 'ts_default')} | "
          f"{_lat_cell(r, 'inductor')} | {_lat_cell(r, 'torch_tvm')} | "
          f"{('**' + _x(sp_ts) + '**') if slow else _x(sp_ts)} | {_x(sp_ind)} | "
          f"{_fmt(tvm.get('first_call_s'), '.1f') if info else '–'} | "
          f"{_fmt(ind.get('first_call_s'), '.1f') if ind.get('status') == 'ok' else '–'} | "
          f"{info.get('groups', '–') if info else '–'} | {_outside_cell(info)} | "
          f"{_fallback_cell(info)} | {_rel_cell(r)} | "
          f"{_fmt(r.get('background_cores'), '.2f')} |")
    w("")
    g_ts = [s for r in rows if (s := _speedup(r, "ts_default"))]
    g_ind = [s for r in rows if (s := _speedup(r, "inductor"))]
    w(f"{h}# Summary\n")
    gm = _geomean(g_ts)
    w(f"- geometric mean speedup of torch_tvm vs TorchScript: {_x(gm)} over "
      f"{len(g_ts)} model(s)")
    gm = _geomean(g_ind)
    w(f"- geometric mean speedup of torch_tvm vs inductor: {_x(gm)} over "
      f"{len(g_ind)} model(s)")
    slow = [(r["model"], s) for r in rows if (s := _speedup(r, "ts_default")) and s < 1.0]
    w(f"- slower than TorchScript ({len(slow)}): "
      + (", ".join(f"{m} ({_x(s)})" for m, s in sorted(slow, key=lambda t: t[1]))
         or "none"))
    bad = []
    for r in rows:
        p = r.get("peers", {}).get("torch_tvm", {})
        if p.get("status") == "ok" and (p.get("rel_err") is None or
                                        p["rel_err"] > REL_ERR_LIMIT):
            bad.append(f"{r['model']} ({_fmt(p.get('rel_err'), '.1e')})"
                       if p.get("rel_err") is not None
                       else f"{r['model']} ({_esc(p.get('rel_err_note', '?'))})")
    w(f"- torch_tvm max rel err > 1e-4 ({len(bad)}): " + (", ".join(bad) or "none"))
    nogroup = [r["model"] for r in rows
               if r.get("peers", {}).get("torch_tvm", {}).get("status") == "ok"
               and not r["peers"]["torch_tvm"].get("torch_tvm", {}).get("groups")]
    if nogroup:
        w(f"- no TVM group formed (plain TorchScript): {', '.join(nogroup)}")
    busy = [r["model"] for r in rows if (r.get("background_cores") or 0) > 0.3]
    if busy:
        w(f"- measured with > 0.3 cores of background load (numbers disturbed): "
          f"{', '.join(busy)}")
    total = sum(r.get("process_wall_s", 0) for r in rows)
    w(f"- wall time of these rows: {total / 60:.0f} min "
      f"({total / len(rows):.0f} s per model on average)")
    w("")
    fails = []
    for r in rows:
        if r.get("fatal"):
            fails.append(f"- {r['model']}: **{_esc(r['fatal'])}**")
        for k in ("ts_default", "inductor", "torch_tvm"):
            p = r.get("peers", {}).get(k)
            if p and p.get("status") == "error":
                fails.append(f"- {r['model']} / {k}: {_esc(p.get('error', ''))}")
        info = (r.get("peers", {}).get("torch_tvm") or {}).get("torch_tvm") or {}
        for why, n in (info.get("failures") or {}).items():
            fails.append(f"- {r['model']} / torch_tvm fallback ({n} spec(s)): {_esc(why)}")
    if fails:
        w(f"{h}# Failures\n")
        out.extend(fails)
        w("")
    return "\n".join(out) + "\n"


def _fmt(v, spec):
    return "–" if v is None else format(v, spec)


def render(data: dict, batch: int, threads: int, command: str | None = None,
           json_name: str = "benchmarks/zoo_results.json") -> str:
    head = ["# Model zoo: torch_tvm vs TorchScript and inductor\n",
            f"Generated by `python benchmarks/zoo.py` from `{json_name}`"
            + (f" (last command: `{command}`)" if command else "")
            + ". Do not edit by hand. Each model ran in its own process: eager reference, "
            "TorchScript default (trace, warmed up before torch_tvm was enabled), inductor "
            "(freezing) and torch_tvm, then timed round-robin within a per-model budget; "
            "fp32, random weights. Method: [README.md](README.md#model-zoo-zoopy).\n"]
    return "\n".join(head) + "\n" + markdown_table(data.get("results", {}), batch, threads)


def console_line(r: dict) -> str:
    if r.get("fatal"):
        return f"    FATAL: {r['fatal'][:300]}"
    parts = []
    for k in TIMED_PEERS:
        p = r.get("peers", {}).get(k, {})
        if _ok(r, k):
            parts.append(f"{k} {_ms(p['median_ms'])} ms (n={p['n']})")
        else:
            parts.append(f"{k} {p.get('status', '-')}: {str(p.get('error', ''))[:100]}")
    tvm = r.get("peers", {}).get("torch_tvm", {})
    info = tvm.get("torch_tvm") or {}
    s = "    " + "; ".join(parts)
    s += (f"\n    vs TS {_x(_speedup(r, 'ts_default'))}, vs inductor "
          f"{_x(_speedup(r, 'inductor'))}; torch_tvm first call "
          f"{_fmt(tvm.get('first_call_s'), '.1f')} s, groups {info.get('groups', '–')}, "
          f"outside {_outside_cell(info)}, rel err {_fmt(tvm.get('rel_err'), '.1e')}")
    return s


# --------------------------------------------------------------------------------------

def csv_list(s):
    return [v.strip() for v in s.split(",") if v.strip()]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=csv_list, default=None,
                    help="comma list of zoo names (default: all); cached rows are skipped")
    ap.add_argument("--only", type=csv_list, default=None,
                    help="comma list of zoo names to (re-)measure even if cached")
    ap.add_argument("--force", action="store_true", help="re-measure cached models too")
    ap.add_argument("--retry-errors", action="store_true",
                    help="re-measure cached rows that ended fatally (timeout / crash)")
    ap.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    ap.add_argument("--budget", type=float, default=20.0,
                    help="seconds of round-robin timing per model once every peer has "
                    "--min-iters samples (default 20)")
    ap.add_argument("--cap", type=float, default=60.0,
                    help="hard cap on a model's timing phase in seconds (default 60)")
    ap.add_argument("--min-iters", type=int, default=5)
    ap.add_argument("--max-iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=3, help="warm-up calls per peer")
    ap.add_argument("--warmup-budget", type=float, default=3.0,
                    help="a peer whose last preparation call took longer than this many "
                    "seconds skips warm-up (default 3)")
    ap.add_argument("--gap-ms", type=float, default=5.0,
                    help="idle gap between two timed calls (default 5 ms)")
    ap.add_argument("--model-timeout", type=float, default=600.0,
                    help="kill a model's process after this many seconds (default 600)")
    ap.add_argument("--inductor-cache", choices=["cold", "warm"], default="cold",
                    help="cold (default): fresh TORCHINDUCTOR_CACHE_DIR per model, so the "
                    "inductor first call is a real compile")
    ap.add_argument("--no-inductor", action="store_true", help="skip the inductor peer")
    ap.add_argument("--omp-wait-policy", choices=["inherit", "passive", "active"],
                    default="inherit")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each model wait up to this many seconds for other "
                    "processes to use < 0.3 cores (default 0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=DEFAULT_JSON)
    ap.add_argument("--md", default=DEFAULT_MD)
    ap.add_argument("--log-dir", default=DEFAULT_LOGS)
    ap.add_argument("--report-only", action="store_true",
                    help="only re-render the markdown from the cache")
    ap.add_argument("--list", action="store_true", help="print the model table and exit")
    ap.add_argument("--check-build", action="store_true",
                    help="only build each selected model and run it once in eager mode "
                    "(1 thread, in this process): checks constructors and input shapes")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    for names in (a.models or []), (a.only or []):
        bad = [n for n in names if n not in ZOO_BY_NAME]
        if bad:
            ap.error(f"unknown model(s) {bad}; see --list")
    return a


def main(argv=None):
    a = parse_args(argv)
    if a.child:
        run_child(a.child, a.batch, a.threads, a, a.out)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # skip the slow teardown of TVM / dynamo
    if a.list:
        for e in ZOO:
            print(f"{e.name:32s} {e.source:12s} {input_desc(e, a.batch):28s} {e.family}")
        print(f"{len(ZOO)} models")
        return
    if a.check_build:
        check_build(a.only or a.models or [e.name for e in ZOO], a.batch, a.seed)
        return
    data = load_cache(a.json)
    command = "python benchmarks/zoo.py" + (" " + shlex.join(sys.argv[1:])
                                            if argv is None and sys.argv[1:] else "")
    if not a.report_only:
        names = a.only or a.models or [e.name for e in ZOO]
        todo, cached = [], []
        for n in names:
            r = data["results"].get(config_key(n, a.batch, a.threads))
            if r is None or a.force or a.only or (a.retry_errors and r.get("fatal")):
                todo.append(n)
            else:
                cached.append(n)
        print(f"{len(todo)} model(s) to measure, {len(cached)} cached in "
              f"{os.path.relpath(a.json)} (skipped; --force / --only to re-measure)",
              flush=True)
        from run import wait_idle

        t_all = time.perf_counter()
        for i, n in enumerate(todo, 1):
            waited = wait_idle(a.wait_idle) if a.wait_idle > 0 else 0.0
            print(f"[{i}/{len(todo)}] {n} (batch {a.batch}, {a.threads} threads) ..."
                  + (f" (waited {waited:.0f} s for an idle machine)" if waited >= 2.5
                     else ""), flush=True)
            r = run_model(ZOO_BY_NAME[n], a)
            data = load_cache(a.json)  # re-read: keep rows another run may have written
            data["results"][config_key(n, a.batch, a.threads)] = r
            data["meta"] = dict(last_command=command,
                                updated_utc=r["measured_utc"])
            save_cache(a.json, data)
            print(console_line(r), flush=True)
            print(f"    ({r['process_wall_s']:.0f} s, background load "
                  f"{r['background_cores']:.2f} cores; total so far "
                  f"{time.perf_counter() - t_all:.0f} s)", flush=True)
    jpath = os.path.abspath(a.json)
    md = render(data, a.batch, a.threads, data.get("meta", {}).get("last_command"),
                os.path.relpath(jpath, ROOT) if jpath.startswith(ROOT + os.sep) else jpath)
    with open(a.md, "w") as f:
        f.write(md)
    print(f"wrote {os.path.relpath(a.md)} ({len(select_rows(data['results'], a.batch, a.threads))}"
          f" rows) and {os.path.relpath(a.json)}", flush=True)


if __name__ == "__main__":
    main()
