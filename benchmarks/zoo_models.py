"""The model table of benchmarks/zoo.py. Every builder returns an eval-mode nn.Module
taking ONE tensor and returning ONE tensor (wrappers pick the main output), so every peer
shares one calling convention and the error check is one number. Imports (torch,
torchvision, timm, transformers) happen inside the builders: importing this module only
defines the table."""
from __future__ import annotations

import dataclasses
from typing import Callable


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


def build_tv(name, **kw):
    def build():
        import torchvision

        return getattr(torchvision.models, name)(weights=None, **kw)
    return build


def build_tv_det(name):
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


def build_tv_seg(name):
    def build():
        import torchvision

        m = getattr(torchvision.models.segmentation, name)(weights=None,
                                                           weights_backbone=None)
        return _wrap(m.eval(), lambda m, x: m(x)["out"])
    return build


def build_tv_video(name):
    def build():
        import torchvision

        return getattr(torchvision.models.video, name)(weights=None)
    return build


def build_tm(name, **kw):
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


def tv(arch: str, family: str, side: int = 224) -> Entry:
    """A torchvision classifier, named tv_<arch>, on a side x side image."""
    return Entry(f"tv_{arch}", family, "torchvision", build_tv(arch), img(side))


def tm(arch: str, family: str, side: int = 224, **kw) -> Entry:
    """A timm model, named as in timm, on a side x side image; kw go to create_model."""
    return Entry(arch, family, "timm", build_tm(arch, **kw), img(side))


ZOO: list[Entry] = [
    # ---- torchvision classification: every family at its smallest size ----
    tv("alexnet", "AlexNet"),
    tv("vgg11", "VGG"),
    tv("resnet18", "ResNet"),
    tv("resnext50_32x4d", "ResNeXt"),
    tv("wide_resnet50_2", "Wide ResNet"),
    tv("squeezenet1_0", "SqueezeNet"),
    tv("densenet121", "DenseNet"),
    tv("googlenet", "GoogLeNet"),
    tv("inception_v3", "Inception v3", 299),
    tv("mobilenet_v2", "MobileNetV2"),
    tv("mobilenet_v3_small", "MobileNetV3"),
    tv("shufflenet_v2_x0_5", "ShuffleNetV2"),
    tv("mnasnet0_5", "MNASNet"),
    tv("efficientnet_b0", "EfficientNet"),
    tv("efficientnet_v2_s", "EfficientNetV2"),
    tv("regnet_x_400mf", "RegNetX"),
    tv("regnet_y_400mf", "RegNetY"),
    tv("convnext_tiny", "ConvNeXt"),
    tv("vit_b_16", "ViT"),
    tv("swin_t", "Swin"),
    tv("swin_v2_t", "Swin V2"),
    tv("maxvit_t", "MaxViT"),
    # ---- torchvision detection / segmentation / video ----
    Entry("tv_ssdlite320_mobilenet_v3", "SSDlite detection", "torchvision",
          build_tv_det("ssdlite320_mobilenet_v3_large"), (1, 3, 320, 320),
          note="full model incl. transform, post-processing and NMS; output = image 0's "
          "detections (boxes, score, label); BatchNorm statistics set from random batches"),
    Entry("tv_lraspp_mobilenet_v3", "LR-ASPP segmentation", "torchvision",
          build_tv_seg("lraspp_mobilenet_v3_large"), IMG, note="output = 'out' (21 classes)"),
    Entry("tv_r3d_18", "R3D video", "torchvision", build_tv_video("r3d_18"),
          (1, 3, 8, 112, 112)),
    # ---- timm: different families ----
    tm("resnet18", "ResNet"),
    tm("resnet50d", "ResNet-D"),
    tm("resnetv2_50x1_bit", "BiT (GroupNorm + StdConv)"),
    tm("res2net50_26w_4s", "Res2Net"),
    tm("resnest14d", "ResNeSt (split attention)"),
    tm("seresnext26d_32x4d", "SE-ResNeXt"),
    tm("skresnet18", "SKNet"),
    tm("eca_resnet33ts", "ECA ResNet (SiLU)", 256),
    tm("efficientnet_b0", "EfficientNet"),
    tm("tf_efficientnet_lite0", "EfficientNet-Lite (TF pad)"),
    tm("tinynet_a", "TinyNet", 192),
    tm("mobilenetv3_small_100", "MobileNetV3"),
    tm("mobilenetv4_conv_small", "MobileNetV4"),
    tm("lcnet_050", "LCNet"),
    tm("mixnet_s", "MixNet (mixed kernels)"),
    tm("fbnetc_100", "FBNet"),
    tm("hardcorenas_a", "HardCoRe-NAS"),
    tm("ghostnet_100", "GhostNet"),
    tm("ghostnetv2_100", "GhostNetV2"),
    tm("rexnet_100", "ReXNet"),
    tm("regnety_002", "RegNetY"),
    tm("gernet_s", "GENet"),
    tm("repvgg_a0", "RepVGG"),
    tm("mobileone_s0", "MobileOne"),
    tm("hgnetv2_b0", "HGNetV2"),
    tm("dla34", "DLA"),
    tm("dpn68", "DPN"),
    tm("cspdarknet53", "CSPDarkNet (Mish)", 256),
    tm("ese_vovnet19b_dw", "VoVNet"),
    tm("selecsls42b", "SelecSLS"),
    tm("hrnet_w18_small", "HRNet"),
    tm("xception41", "Xception", 299),
    tm("dm_nfnet_f0", "NFNet (norm-free)"),
    tm("sebotnet33ts_256", "BoTNet (self-attention)", 256),
    tm("halonet26t", "HaloNet (local attention)", 256),
    tm("convnext_atto", "ConvNeXt"),
    tm("convnextv2_atto", "ConvNeXt V2 (GRN)"),
    tm("inception_next_atto", "InceptionNeXt"),
    tm("starnet_s1", "StarNet"),
    tm("mambaout_femto", "MambaOut"),
    tm("poolformer_s12", "PoolFormer (MetaFormer, GroupNorm)"),
    tm("edgenext_xx_small", "EdgeNeXt", 256),
    tm("vit_tiny_patch16_224", "ViT"),
    tm("deit_tiny_patch16_224", "DeiT"),
    tm("eva02_tiny_patch14_224", "EVA-02 (RoPE, SwiGLU)", num_classes=1000),
    tm("cait_xxs24_224", "CaiT"),
    tm("xcit_nano_12_p16_224", "XCiT"),
    tm("pit_ti_224", "PiT"),
    tm("crossvit_tiny_240", "CrossViT", 240),
    tm("coat_lite_tiny", "CoaT"),
    tm("swin_tiny_patch4_window7_224", "Swin"),
    tm("twins_svt_small", "Twins"),
    tm("pvt_v2_b0", "PVTv2"),
    tm("davit_tiny", "DaViT"),
    tm("focalnet_tiny_srf", "FocalNet"),
    tm("gcvit_xxtiny", "GCViT"),
    tm("maxvit_nano_rw_256", "MaxViT", 256),
    tm("hiera_tiny_224", "Hiera"),
    tm("tiny_vit_5m_224", "TinyViT", num_classes=1000),
    tm("levit_128s", "LeViT"),
    tm("efficientformer_l1", "EfficientFormer"),
    tm("efficientvit_b0", "EfficientViT (MIT, linear attention)"),
    tm("efficientvit_m0", "EfficientViT (MSRA)"),
    tm("mobilevit_xxs", "MobileViT", 256),
    tm("mobilevitv2_050", "MobileViTv2", 256),
    tm("fastvit_t8", "FastViT", 256),
    tm("mixer_s16_224", "MLP-Mixer"),
    tm("resmlp_12_224", "ResMLP"),
    tm("sequencer2d_s", "Sequencer (BiLSTM)"),
    # ---- transformers (small configs, random init) and torch.nn ----
    Entry("bert_small", "BERT encoder (4 layers, hidden 256)", "transformers", hf_bert,
          (1, 128), "int64", 30522, note="BertModel, no pooler; seq 128"),
    Entry("gpt2_small", "GPT-2 (4 layers, n_embd 256)", "transformers", hf_gpt2, (1, 64),
          "int64", 50257, note="GPT2Model, use_cache=False; seq 64"),
    Entry("t5_encoder_small", "T5 encoder (4 layers, d_model 256)", "transformers",
          hf_t5_encoder, (1, 128), "int64", 32128, note="T5EncoderModel; seq 128"),
    Entry("nn_transformer_encoder", "nn.TransformerEncoder (4 layers, d_model 256)",
          "torch.nn", nn_transformer_encoder, (1, 128, 256),
          note="batch_first, nhead 4, ffn 1024; eval + no_grad: the trace holds the fused "
          "aten::_transformer_encoder_layer_fwd fast path"),
    Entry("nn_transformer_encoder_nofastpath", "nn.TransformerEncoder, MHA fast path off",
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

