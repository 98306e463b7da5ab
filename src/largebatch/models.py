"""Networks of the six papers, each in a 1-D (MNIST-1D signals) and a 2-D (images) form.

* ``mlp``  -- Keskar's F1: ``depth`` x [Linear(width) + Norm + ReLU] -> Linear.
* ``shallow_conv`` -- Keskar's C1/C3 (AlexNet-like ``shallownet`` of the official code):
  2 x [Conv k5 'same' + Norm + ReLU + MaxPool 3/2] -> FC 384 -> FC 192 -> classes,
  with Norm + ReLU + Dropout after each hidden FC.  ``width`` sets the conv channels
  (64 in the paper); FC widths scale with it (6x and 3x).
* ``vgg`` -- Keskar's C2/C4 (VGG-16-like ``deepnet``): conv stacks 2x64, 2x128, 3x256,
  3x512, 3x512 (scaled by width/64), each conv + Norm + ReLU, pool after each stack.
* ``resnet`` -- He et al. CIFAR ResNet, depth = 6n+2 (ResNet-44: depth 44, width 16).
* ``wrn`` -- Wide ResNet WRN-depth-k with ``width`` = 16*k (WRN-16-4: depth 16, width 64).

Norm is BatchNorm, GhostBatchNorm (``norm="ghost"``) or none, from the run spec.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .gbn import batch_norm


def _conv(dim: int):
    return nn.Conv1d if dim == 1 else nn.Conv2d


def _pool(dim: int, kernel: int, stride: int, padding: int = 0):
    return (nn.MaxPool1d if dim == 1 else nn.MaxPool2d)(kernel, stride, padding)


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, width: int, depth: int, norm: str, gbs, dropout: float):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for _ in range(depth):
            layers += [nn.Linear(prev, width), batch_norm(1, width, norm, gbs), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            prev = width
        layers.append(nn.Linear(prev, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def _flat_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        was = features.training
        features.eval()
        n = features(torch.zeros(1, *input_shape)).numel()
        features.train(was)
    return n


class ShallowConv(nn.Module):
    def __init__(self, input_shape, num_classes, width, norm, gbs, dropout):
        super().__init__()
        dim = len(input_shape) - 1
        conv = _conv(dim)
        c = input_shape[0]
        blocks: list[nn.Module] = []
        for _ in range(2):
            blocks += [
                conv(c, width, 5, padding=2),
                batch_norm(dim, width, norm, gbs),
                nn.ReLU(inplace=True),
                _pool(dim, 3, 2, 1),
            ]
            c = width
        self.features = nn.Sequential(*blocks, nn.Flatten())
        flat = _flat_size(self.features, input_shape)
        f1, f2 = 6 * width, 3 * width  # 384 and 192 for the paper's width 64
        self.classifier = nn.Sequential(
            nn.Linear(flat, f1), batch_norm(1, f1, norm, gbs), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(f1, f2), batch_norm(1, f2, norm, gbs), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(f2, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class VGG(nn.Module):
    STACKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))

    def __init__(self, input_shape, num_classes, width, norm, gbs, dropout):
        super().__init__()
        dim = len(input_shape) - 1
        conv = _conv(dim)
        c = input_shape[0]
        size = min(input_shape[1:])
        layers: list[nn.Module] = []
        for n_conv, base in self.STACKS:
            out = max(1, base * width // 64)
            for _ in range(n_conv):
                layers += [conv(c, out, 3, padding=1), batch_norm(dim, out, norm, gbs), nn.ReLU(inplace=True)]
                c = out
            if size >= 2:  # stop pooling when the signal is a single position
                layers.append(_pool(dim, 2, 2))
                size //= 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        flat = _flat_size(self.features, input_shape)
        hidden = max(1, 512 * width // 64)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(flat, hidden), batch_norm(1, hidden, norm, gbs), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, dim, c_in, c_out, stride, norm, gbs, dropout=0.0, preact=False):
        super().__init__()
        conv = _conv(dim)
        self.preact = preact
        self.bn1 = batch_norm(dim, c_in if preact else c_out, norm, gbs)
        self.conv1 = conv(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = conv(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = batch_norm(dim, c_out, norm, gbs)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.relu = nn.ReLU(inplace=False)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride, bias=False),
                                          *( [] if preact else [batch_norm(dim, c_out, norm, gbs)] ))

    def forward(self, x):
        if self.preact:  # WRN: BN-ReLU-conv
            o = self.relu(self.bn1(x))
            y = self.conv1(o)
            y = self.conv2(self.drop(self.relu(self.bn2(y))))
            return y + self.shortcut(o if not isinstance(self.shortcut, nn.Identity) else x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet (depth 6n+2) or, with ``wide=True``, a Wide ResNet (depth 6n+4)."""

    def __init__(self, input_shape, num_classes, depth, width, norm, gbs, dropout, wide=False):
        super().__init__()
        dim = len(input_shape) - 1
        conv = _conv(dim)
        if wide:
            if (depth - 4) % 6:
                raise ValueError(f"wrn depth = {depth} must be 6n+4 (e.g. 16, 28)")
            n = (depth - 4) // 6
            widths = (16, width, 2 * width, 4 * width)
        else:
            if (depth - 2) % 6:
                raise ValueError(f"resnet depth = {depth} must be 6n+2 (e.g. 20, 44, 56)")
            n = (depth - 2) // 6
            widths = (width, width, 2 * width, 4 * width)
        self.stem = conv(input_shape[0], widths[0], 3, 1, 1, bias=False)
        self.stem_bn = nn.Identity() if wide else batch_norm(dim, widths[0], norm, gbs)
        blocks = []
        c = widths[0]
        for stage, w in enumerate(widths[1:]):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(dim, c, w, stride, norm, gbs, dropout if wide else 0.0, preact=wide))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.final_bn = batch_norm(dim, c, norm, gbs) if wide else nn.Identity()
        self.pool = nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        self.relu = nn.ReLU()
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        x = self.relu(self.final_bn(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def build_model(spec: dict, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network a (normalised) run spec asks for, for data of `input_shape` (without N)."""
    name, width, depth = spec["model"], spec["width"], spec["depth"]
    norm, gbs, dropout = spec["norm"], spec["ghost_batch_size"], spec["dropout"]
    if name == "mlp":
        return MLP(math.prod(input_shape), num_classes, width, depth, norm, gbs, dropout)
    if len(input_shape) not in (2, 3):
        raise ValueError(f"model {name!r} needs (C, L) or (C, H, W) inputs, got shape {input_shape}")
    if name == "shallow_conv":
        return ShallowConv(input_shape, num_classes, width, norm, gbs, dropout)
    if name == "vgg":
        return VGG(input_shape, num_classes, width, norm, gbs, dropout)
    if name == "resnet":
        return ResNet(input_shape, num_classes, depth, width, norm, gbs, dropout)
    if name == "wrn":
        return ResNet(input_shape, num_classes, depth, width, norm, gbs, dropout, wide=True)
    raise ValueError(f"unknown model {name!r}")
