#!/usr/bin/env python3
"""An independent PyTorch reference of the seed's UNet and UNet3+ (../shared/seed/), used by
tests/nn to check that the C++ networks compute the same logits from the same weights.

Written from the seed's text, not from the C++ code:
- UNet: DoubleConv = (3x3 conv without bias, BatchNorm, ReLU) x 2; Down = 2x2 max pool then
  DoubleConv; Up = 2x2/stride-2 transposed conv to half the channels, the upsampled map
  zero-padded (or cropped) to the skip's size, concatenated as [skip, upsampled], DoubleConv;
  1x1 output conv. Padding "seed" = unpadded 3x3 convs (256 in -> 248 out), "same" = padded.
- UNet3+: the same encoder with padded convs; every decoder stage concatenates five maps
  of width CatChannels (= base width), each made by Conv_BN_ReLU (3x3 conv with bias, BN,
  ReLU) from a max-pooled (ceil mode) shallower encoder map, the same-scale encoder map, or
  a bilinearly upsampled deeper decoder map; the 5*CatChannels concatenation is fused by
  Conv_BN_ReLU; a 3x3 output conv with bias.
- Deep supervision (UNet3+ paper): a 3x3 head on every decoder stage (and on the bridge),
  bilinearly upsampled to full size. CGM: Dropout, 1x1 conv to 2 classes, global max pool,
  sigmoid on the bridge; where the argmax says "no organ" every head's logits become -100
  (probability ~0) - liverseg's logit form of the paper's multiplication by the class.

Usage: seed_networks.py JOBS.json   (a list of jobs; see run_job)
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

NO_ORGAN_LOGIT = -100.0


class DoubleConv(nn.Module):
    def __init__(self, in_channels, out_channels, padding):
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, in_channels, out_channels, padding):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2),
                                          DoubleConv(in_channels, out_channels, padding))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, in_channels, out_channels, padding):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels, padding)

    def forward(self, deeper, skip):
        upsampled = self.up(deeper)
        rows = skip.shape[2] - upsampled.shape[2]
        cols = skip.shape[3] - upsampled.shape[3]
        upsampled = F.pad(upsampled, [cols // 2, cols - cols // 2, rows // 2, rows - rows // 2])
        return self.conv(torch.cat([skip, upsampled], dim=1))


class OutConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class SeedUNet(nn.Module):
    def __init__(self, in_channels=3, out_channels=1, width=64, padding="same"):
        super().__init__()
        p = {"same": 1, "seed": 0}[padding]
        w = [width * 2 ** i for i in range(5)]
        self.dconv = DoubleConv(in_channels, w[0], p)
        self.down1 = Down(w[0], w[1], p)
        self.down2 = Down(w[1], w[2], p)
        self.down3 = Down(w[2], w[3], p)
        self.down4 = Down(w[3], w[4], p)
        self.up1 = Up(w[4], w[3], p)
        self.up2 = Up(w[3], w[2], p)
        self.up3 = Up(w[2], w[1], p)
        self.up4 = Up(w[1], w[0], p)
        self.outc = OutConv(w[0], out_channels)

    def forward(self, x):
        x1 = self.dconv(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        y = self.up1(x5, x4)
        y = self.up2(y, x3)
        y = self.up3(y, x2)
        y = self.up4(y, x1)
        return [self.outc(y)]


class Conv_BN_ReLU(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv_bn = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),
                                     nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.conv_bn(x)


def pool(x, factor):
    return x if factor == 1 else F.max_pool2d(x, factor, factor, ceil_mode=True)


def upsample(x, factor):
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="bilinear")


class SeedUNet3Plus(nn.Module):
    # Which map feeds each decoder stage, by the seed's module names: (name, source level,
    # source is a decoder map). Levels 1-4 are encoder x1..x4, level 5 is the bridge x5.
    STAGES = {
        4: [("h1_PT_de4", 1, False), ("h2_PT_de4", 2, False), ("h3_PT_de4", 3, False),
            ("h4_PT_de4", 4, False), ("h5_PT_de4", 5, False)],
        3: [("h1_PT_de3", 1, False), ("h2_PT_de3", 2, False), ("h3_PT_de3", 3, False),
            ("h4_PT_de3", 4, True), ("h5_PT_de3", 5, False)],
        2: [("h1_PT_de2", 1, False), ("h2_PT_de2", 2, False), ("hd3_PT_de2", 3, True),
            ("hd4_PT_de2", 4, True), ("hd5_PT_de2", 5, False)],
        1: [("h1_PT_de1", 1, False), ("hd2_PT_de1", 2, True), ("hd3_PT_de1", 3, True),
            ("hd4_PT_de1", 4, True), ("hd5_PT_de1", 5, False)],
    }

    def __init__(self, in_channels=3, out_channels=1, width=64, variant="plain"):
        super().__init__()
        self.variant = variant
        w = [width * 2 ** i for i in range(5)]
        self.cat_channels = w[0]
        self.up_channels = 5 * w[0]
        self.dconv = DoubleConv(in_channels, w[0], 1)
        self.down1 = Down(w[0], w[1], 1)
        self.down2 = Down(w[1], w[2], 1)
        self.down3 = Down(w[2], w[3], 1)
        self.down4 = Down(w[3], w[4], 1)
        for stage in (4, 3, 2, 1):
            for name, level, from_decoder in self.STAGES[stage]:
                channels = self.up_channels if from_decoder else w[level - 1]
                setattr(self, name + "_Conv_BN_ReLU", Conv_BN_ReLU(channels, self.cat_channels))
            setattr(self, "de%d_Conv_BN_ReLU" % stage, Conv_BN_ReLU(self.up_channels, self.up_channels))
        self.outconv1 = nn.Conv2d(self.up_channels, out_channels, 3, padding=1)
        if variant in ("deepsup", "cgm"):
            self.outconv2 = nn.Conv2d(self.up_channels, out_channels, 3, padding=1)
            self.outconv3 = nn.Conv2d(self.up_channels, out_channels, 3, padding=1)
            self.outconv4 = nn.Conv2d(self.up_channels, out_channels, 3, padding=1)
            self.outconv5 = nn.Conv2d(w[4], out_channels, 3, padding=1)
        if variant == "cgm":
            self.cls = nn.Sequential(nn.Dropout(p=0.5), nn.Conv2d(w[4], 2, 1),
                                     nn.AdaptiveMaxPool2d(1), nn.Sigmoid())

    def forward(self, x):
        enc = {1: self.dconv(x)}
        for level in (2, 3, 4, 5):
            enc[level] = getattr(self, "down%d" % (level - 1))(enc[level - 1])
        dec = {5: enc[5]}
        for stage in (4, 3, 2, 1):
            parts = []
            for name, level, from_decoder in self.STAGES[stage]:
                source = dec[level] if (from_decoder or level == 5) else enc[level]
                if level < stage:
                    source = pool(source, 2 ** (stage - level))
                elif level > stage:
                    source = upsample(source, 2 ** (level - stage))
                parts.append(getattr(self, name + "_Conv_BN_ReLU")(source))
            dec[stage] = getattr(self, "de%d_Conv_BN_ReLU" % stage)(torch.cat(parts, 1))
        heads = [self.outconv1(dec[1])]
        if self.variant == "plain":
            return heads
        for level in (2, 3, 4, 5):
            heads.append(upsample(getattr(self, "outconv%d" % level)(dec[level]), 2 ** (level - 1)))
        if self.variant == "deepsup":
            return heads
        class_probabilities = self.cls(dec[5]).flatten(1)
        has_organ = class_probabilities.argmax(dim=1).view(-1, 1, 1, 1) == 1
        gated = [torch.where(has_organ, h, torch.full_like(h, NO_ORGAN_LOGIT)) for h in heads]
        return gated + [class_probabilities]


def build(job):
    arch = job["arch"]
    common = dict(in_channels=job.get("in_channels", 3), out_channels=job.get("out_channels", 1),
                  width=job.get("width", 64))
    if arch == "unet":
        return SeedUNet(padding=job.get("padding", "same"), **common)
    if arch == "unet3plus":
        return SeedUNet3Plus(variant=job.get("variant", "plain"), **common)
    raise ValueError("unknown arch " + arch)


def randomize(model, seed):
    """Random weights plus BatchNorm statistics far from the defaults, so eval-mode BN matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.3 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.num_batches_tracked.fill_(7)
            elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))


def load_weights(path):
    loaded = torch.load(path)
    if isinstance(loaded, dict) and loaded.get("format") == "liverseg-checkpoint":
        assert loaded["version"] == 1, loaded["version"]
        json.loads(loaded["metadata"])
        return loaded["state_dict"]
    return loaded


def run_job(job):
    torch.set_num_threads(job.get("threads", 1))
    model = build(job)
    kind = job["kind"]
    if kind == "keys":
        # name <tab> shape <tab> dtype, in state_dict order, like ../shared/interop/*.tsv
        with open(job["output"], "w") as out:
            count = sum(p.numel() for p in model.parameters())
            out.write("# parameters\t%d\n" % count)
            for name, tensor in model.state_dict().items():
                shape = "x".join(str(s) for s in tensor.shape) or "scalar"
                out.write("%s\t%s\t%s\n" % (name, shape, str(tensor.dtype).replace("torch.", "")))
        return
    if kind == "create":  # random reference weights saved the way PyTorch users save them
        randomize(model, job["seed"])
        torch.save(model.state_dict(), job["weights"])
    model.load_state_dict(load_weights(job["weights"]), strict=True)
    model.eval()
    with torch.no_grad():
        outputs = model(torch.load(job["input"]).float())
    torch.save([o.contiguous() for o in outputs], job["output"])


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        run_job(job)


if __name__ == "__main__":
    main()
