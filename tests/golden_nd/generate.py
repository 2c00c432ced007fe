#!/usr/bin/env python3
"""Generate PyTorch golden files for wgconv's N-dimensional convolutions
(conv1d / conv2d / conv3d) and every feature on top of them: padding modes,
the fused epilogue (bias + residual + activation), channels-last layout,
true convolution (flipped kernel), unbatched inputs, and gradients.

What it makes (all in the directory containing this script, tests/golden_nd/):

  * For every case NAME (S = the spatial axes: L for 1d, H, W for 2d,
    D, H, W for 3d; "as stored" means in the case's layout and batching):
      NAME.input.npy     float32, C order, the input as stored:
                           channels_first [N, C, *S]  / unbatched [C, *S]
                           channels_last  [N, *S, C]  / unbatched [*S, C]
      NAME.weight.npy    float32, [O, C/groups, *k] (always this layout, and
                         never flipped, even for flip_kernel cases)
      NAME.bias.npy      float32, [O]               (only when "bias")
      NAME.residual.npy  float32, the output's stored shape (only when "residual")
      NAME.output.npy    float32, [N, O, *P] / [O, *P] / [N, *P, O] / [*P, O]
    and, for the cases with "grad": true, with G = grad_output and
    L = sum(G * output) (both in the stored layout, so the same sum):
      NAME.grad_output.npy    float32, output's stored shape: G
      NAME.grad_input.npy     float32, input's stored shape: dL/dinput
      NAME.grad_weight.npy    float32, [O, C/groups, *k]: dL/dweight, with
                              respect to the stored (unflipped) weight
      NAME.grad_bias.npy      float32, [O]: dL/dbias   (only when "bias")
      NAME.grad_residual.npy  float32, output's stored shape: dL/dresidual
                              (only when "residual")
  * cases.json: a JSON list with one object per case, keys in this order:
      {"name", "dims": 1|2|3, "input_shape", "weight_shape", "output_shape"
       (all as stored), "bias", "residual", "unbatched",
       "stride": [per axis], "dilation": [per axis], "groups",
       "padding": "same" | "valid" | [[before, after], ...] (one pair per
                  spatial axis, in axis order D, H, W / H, W / L),
       "padding_mode": "zeros" | "reflect" | "replicate" | "circular",
       "activation": null | {"name": ..., "slope" (leaky_relu only),
                             "min", "max" (clamp only)},
       "layout": "channels_first" | "channels_last",
       "flip_kernel", "grad"}

How the values are computed (all in float64 from the float32 data, rounded
to float32 once at the end, so the goldens are as close to exact as float32
allows):
  1. seed = zlib.crc32(NAME); torch.manual_seed(seed); then, as float32
     standard normals (torch.randn) in this order: input (drawn in the
     channels-first shape [N, C, *S] / [C, *S]), weight, bias (if any),
     residual (if any, channels-first output shape), grad_output (if grad,
     channels-first output shape).
  2. Cases with an activation are rescaled so the pre-activations reach the
     interesting ranges: with pre = conv(x, w) + bias + residual on the
     unit-scale data, s = 2**round(log2(8 / max|pre|)), doubled while the
     pre-activations do not reach past both knees of the activation
     (relu6: < 0 and > 6; hardswish: < -3 and > 3; clamp: < min and > max);
     input, bias and residual (not weight, not grad_output) are multiplied
     by s in float32. s is a power of two, so this is exact and pre is
     scaled by exactly s; max|pre| ends up at about 6..11 (more only where
     doubling was needed). The stored files hold the scaled values.
  3. The forward pass, in float64, channels-first, via torch.nn.functional:
       w_eff = torch.flip(w, spatial dims) if flip_kernel else w
       padding "same" / "valid" with mode zeros:
           F.convNd(x, w_eff, b, stride, padding="same"/"valid", dilation, groups)
       symmetric explicit padding with mode zeros:
           F.convNd(x, w_eff, b, stride, padding=(p per axis), dilation, groups)
       asymmetric explicit padding with mode zeros, or any padding with a
       non-zeros mode (exactly what torch.nn.ConvNd does for a non-zeros
       padding_mode):
           F.convNd(F.pad(x, pads, mode=m), w_eff, b, stride, padding=0, ...)
         where pads lists the LAST axis first: (W_before, W_after,
         H_before, H_after, D_before, D_after), mode m is "constant" for
         zeros; for "same" each axis's total dilation*(k-1) is split as
         before = total // 2, after = total - before (the extra element goes
         at the end when the total is odd: even kernel, odd dilation).
       Unbatched inputs are passed to F.convNd / F.pad unbatched (PyTorch
       accepts them and returns an unbatched output).
       pre = conv + residual;  y = act(pre), act from torch:
         relu F.relu, relu6 F.relu6, leaky_relu F.leaky_relu(x, slope32)
         (slope32: the slope rounded to float32 and widened back, the slope
         a float32 model applies; clamp bounds are float32 values already),
         sigmoid torch.sigmoid, tanh torch.tanh, gelu F.gelu (erf),
         gelu_tanh F.gelu(approximate="tanh"), silu F.silu,
         hardswish F.hardswish, clamp torch.clamp(x, min, max).
  4. Channels-last cases permute input, residual, output (and grad_output,
     grad_input, grad_residual) from channels-first to channels-last
     before saving: x.permute(0, 2, ..., 1) batched, x.permute(1, ..., 0)
     unbatched, then made contiguous.
  5. Gradients: float64 autograd on the channels-first leaves (input,
     weight, bias, residual) of L = sum(G * y), through F.pad, the flip
     and the activation.
  Sanity checks run on every case: the output shape against
  floor((S + before + after - dilation*(k-1) - 1) / stride) + 1; non-zeros
  modes with symmetric or "same" padding against torch.nn.ConvNd(...,
  padding_mode=m) itself; unbatched cases against the batched computation
  on x.unsqueeze(0); and, for grad cases with a kinked activation (relu,
  relu6, leaky_relu, hardswish, clamp), that no pre-activation lies within
  1e-3 of a kink, so an f32 implementation cannot take the other branch of
  the derivative.

Re-run with:
    python3 tests/golden_nd/generate.py

Generated with torch 2.15.0 (the PyPI wheel, version string 2.15.0+cu132,
executed on CPU) and numpy 2.4.6, Python 3.11.7.
It is deterministic: every case is seeded from its own name, so a case's
data does not change when other cases are added or reordered, and
re-running reproduces the same files bit for bit (on the same torch
version). Stale .npy files in this folder are removed before writing.
"""

import json
import math
import os
import warnings
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))

# F.conv*(padding="same") warns that an even kernel with odd dilation needs a
# zero-padded copy of the input; that is expected here.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")

# --- activations --------------------------------------------------------------

RELU = {"name": "relu"}
RELU6 = {"name": "relu6"}
SIGMOID = {"name": "sigmoid"}
TANH = {"name": "tanh"}
GELU = {"name": "gelu"}
GELU_TANH = {"name": "gelu_tanh"}
SILU = {"name": "silu"}
HARDSWISH = {"name": "hardswish"}


def leaky(slope):
    return {"name": "leaky_relu", "slope": float(slope)}


def clamp(lo, hi):
    return {"name": "clamp", "min": float(lo), "max": float(hi)}


def apply_act(act, x):
    if act is None:
        return x
    n = act["name"]
    if n == "relu":
        return F.relu(x)
    if n == "relu6":
        return F.relu6(x)
    if n == "leaky_relu":
        return F.leaky_relu(x, float(np.float32(act["slope"])))
    if n == "sigmoid":
        return torch.sigmoid(x)
    if n == "tanh":
        return torch.tanh(x)
    if n == "gelu":
        return F.gelu(x)
    if n == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    if n == "silu":
        return F.silu(x)
    if n == "hardswish":
        return F.hardswish(x)
    if n == "clamp":
        return torch.clamp(x, act["min"], act["max"])
    raise ValueError(n)


def knees(act):
    """Points where the activation's derivative jumps (for the grad margin
    check) and the range the pre-activations must straddle."""
    if act is None:
        return []
    n = act["name"]
    if n in ("relu", "leaky_relu"):
        return [0.0]
    if n == "relu6":
        return [0.0, 6.0]
    if n == "hardswish":
        return [-3.0, 3.0]
    if n == "clamp":
        return [act["min"], act["max"]]
    return []


# --- case description ---------------------------------------------------------

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
MODULE = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def tup(v, dims):
    if isinstance(v, int):
        return (v,) * dims
    assert len(v) == dims, v
    return tuple(v)


def case(name, dims, n, c, spatial, o, k, *, stride=1, dilation=1, groups=1,
         padding=0, mode="zeros", bias=True, residual=False, act=None,
         cl=False, flip=False, grad=False):
    """One case.

    n: batch size, or None for an unbatched input.
    spatial, k, stride, dilation: int (all axes) or one per axis.
    padding: "same" | "valid" | int (symmetric, all axes) | tuple of ints
      (symmetric, per axis) | list of (before, after) pairs, one per axis.
    """
    spatial = tup(spatial, dims)
    k = tup(k, dims)
    stride = tup(stride, dims)
    dilation = tup(dilation, dims)
    if isinstance(padding, str):
        pad = padding
    elif isinstance(padding, int):
        pad = [(padding, padding)] * dims
    elif all(isinstance(p, int) for p in padding):
        pad = [(p, p) for p in tup(padding, dims)]
    else:
        pad = [tuple(p) for p in padding]
        assert len(pad) == dims and all(len(p) == 2 for p in pad), name
    assert mode in ("zeros", "reflect", "replicate", "circular"), mode
    return dict(name=name, dims=dims, n=n, c=c, spatial=spatial, o=o, k=k,
                stride=stride, dilation=dilation, groups=groups, padding=pad,
                mode=mode, bias=bias, residual=residual, act=act, cl=cl,
                flip=flip, grad=grad)


CASES = [
    # ======================= conv1d, zeros padding ===========================
    case("conv1d_k3_bias", 1, 2, 3, 16, 4, 3),
    case("conv1d_k1_pointwise", 1, 2, 8, 7, 5, 1),
    case("conv1d_s4_k9_bias", 1, 1, 2, 40, 3, 9, stride=4),
    case("conv1d_s2_k3_pad1_batch3", 1, 3, 3, 15, 4, 3, stride=2, padding=1),
    case("conv1d_s2_d2_k5_pad_3_1", 1, 2, 2, 17, 3, 5, stride=2, dilation=2,
         padding=[(3, 1)]),
    case("conv1d_g2_k3_pad1", 1, 1, 4, 12, 6, 3, groups=2, padding=1),
    case("conv1d_depthwise_k5_pad2", 1, 2, 6, 10, 6, 5, groups=6, padding=2),
    case("conv1d_depthwise_mult2_k3", 1, 1, 4, 9, 8, 3, groups=4),
    case("conv1d_same_k3", 1, 2, 3, 9, 4, 3, padding="same"),
    case("conv1d_same_k4_even", 1, 1, 2, 10, 3, 4, padding="same"),
    case("conv1d_same_k2_nobias", 1, 1, 3, 7, 2, 2, padding="same", bias=False),
    case("conv1d_same_k4_d2", 1, 1, 2, 12, 3, 4, dilation=2, padding="same"),
    case("conv1d_same_k2_d3", 1, 2, 2, 8, 2, 2, dilation=3, padding="same"),
    case("conv1d_valid_k5", 1, 2, 3, 11, 2, 5, padding="valid"),
    case("conv1d_unbatched_k3_bias", 1, None, 3, 12, 4, 3),
    case("conv1d_unbatched_same_k4_g2", 1, None, 4, 9, 2, 4, groups=2, padding="same"),
    case("conv1d_L1_k3_pad1", 1, 1, 2, 1, 3, 3, padding=1),
    case("conv1d_cin32_k3_pad1", 1, 1, 32, 6, 8, 3, padding=1),
    # ======================= conv2d, zeros padding ===========================
    case("conv2d_k3_bias", 2, 1, 3, (6, 7), 4, 3),
    case("conv2d_s2_k2x3_pad_1_0_2_1", 2, 2, 3, (7, 8), 4, (2, 3), stride=2,
         padding=[(1, 0), (2, 1)]),
    case("conv2d_same_k4x2_d1x3", 2, 1, 2, (7, 9), 3, (4, 2), dilation=(1, 3),
         padding="same"),
    case("conv2d_unbatched_k3_pad1", 2, None, 3, (5, 6), 2, 3, padding=1),
    case("conv2d_depthwise_k3_s2", 2, 2, 4, (7, 7), 4, 3, groups=4, stride=2),
    case("conv2d_g2_d2_valid_nobias", 2, 1, 4, (8, 7), 6, (2, 3), groups=2,
         dilation=2, padding="valid", bias=False),
    # ======================= conv3d, zeros padding ===========================
    case("conv3d_k3_bias", 3, 1, 2, (5, 6, 7), 3, 3),
    case("conv3d_k1_pointwise", 3, 2, 4, (3, 4, 5), 3, 1),
    case("conv3d_s2_k3_pad1_nobias", 3, 1, 2, (7, 7, 7), 2, 3, stride=2, padding=1,
         bias=False),
    case("conv3d_s1x2x3_k2x3x3", 3, 1, 2, (5, 7, 9), 2, (2, 3, 3), stride=(1, 2, 3)),
    case("conv3d_d1x2x1_k3x3x2", 3, 1, 2, (4, 7, 5), 2, (3, 3, 2), dilation=(1, 2, 1)),
    case("conv3d_pad_1_0_0_2_2_1", 3, 1, 2, (4, 5, 5), 3, (2, 3, 3),
         padding=[(1, 0), (0, 2), (2, 1)]),
    case("conv3d_g2_k3", 3, 1, 4, (4, 5, 5), 4, 3, groups=2),
    case("conv3d_depthwise_k3_pad1", 3, 1, 3, (4, 5, 6), 3, 3, groups=3, padding=1),
    case("conv3d_depthwise_mult2_k2", 3, 2, 2, (3, 4, 4), 4, 2, groups=2),
    case("conv3d_same_k2x3x4_even", 3, 1, 2, (4, 5, 6), 2, (2, 3, 4), padding="same"),
    case("conv3d_same_k2_d3_g2_nobias", 3, 1, 2, (5, 5, 5), 2, 2, dilation=3, groups=2,
         padding="same", bias=False),
    case("conv3d_valid_k2x3x1", 3, 2, 2, (3, 5, 4), 3, (2, 3, 1), padding="valid"),
    case("conv3d_unbatched_k3_bias", 3, None, 2, (4, 5, 6), 3, 3),
    case("conv3d_batch3_k3_s2_pad1", 3, 3, 2, (5, 5, 4), 2, 3, stride=2, padding=1),
    case("conv3d_D1_k1x3x3_pad_0_1", 3, 1, 2, (1, 5, 6), 3, (1, 3, 3), padding=(0, 1, 1)),
    # ======================= padding modes ===================================
    # 1d
    case("conv1d_reflect_pad_2_1_k3", 1, 2, 2, 9, 3, 3, mode="reflect",
         padding=[(2, 1)]),
    case("conv1d_replicate_pad_0_3_k3_s2", 1, 1, 3, 10, 2, 3, stride=2,
         mode="replicate", padding=[(0, 3)]),
    case("conv1d_circular_pad_3_1_k4", 1, 2, 2, 8, 3, 4, mode="circular",
         padding=[(3, 1)]),
    case("conv1d_reflect_same_k4", 1, 1, 2, 9, 2, 4, mode="reflect", padding="same"),
    case("conv1d_replicate_same_k5_d2", 1, 1, 3, 12, 2, 5, dilation=2,
         mode="replicate", padding="same"),
    case("conv1d_circular_same_k3_d2", 1, 2, 2, 7, 3, 3, dilation=2, mode="circular",
         padding="same"),
    case("conv1d_reflect_pad_max_4_4_L5", 1, 1, 2, 5, 2, 3, mode="reflect",
         padding=[(4, 4)]),
    case("conv1d_circular_pad_eq_len_4_2_L4", 1, 1, 2, 4, 2, 3, mode="circular",
         padding=[(4, 2)]),
    case("conv1d_replicate_pad_big_5_6_L3", 1, 1, 2, 3, 2, 3, mode="replicate",
         padding=[(5, 6)]),
    case("conv1d_reflect_unbatched_pad_1_3", 1, None, 3, 7, 2, 3, mode="reflect",
         padding=[(1, 3)]),
    # 2d
    case("conv2d_reflect_pad_1_2_2_0", 2, 1, 2, (5, 6), 3, 3, mode="reflect",
         padding=[(1, 2), (2, 0)]),
    case("conv2d_replicate_pad_2_0_1_3_s2", 2, 2, 2, (6, 5), 2, 3, stride=2,
         mode="replicate", padding=[(2, 0), (1, 3)]),
    case("conv2d_circular_pad_1_1_0_2_g2", 2, 1, 4, (5, 5), 2, (3, 2), groups=2,
         mode="circular", padding=[(1, 1), (0, 2)]),
    case("conv2d_reflect_same_k4x3", 2, 1, 2, (6, 6), 2, (4, 3), mode="reflect",
         padding="same"),
    case("conv2d_replicate_same_k2x2", 2, 1, 3, (5, 4), 2, 2, mode="replicate",
         padding="same"),
    case("conv2d_circular_same_k3x4_d2x1", 2, 1, 2, (6, 7), 2, (3, 4), dilation=(2, 1),
         mode="circular", padding="same"),
    case("conv2d_reflect_unbatched_pad_0_1_2_2", 2, None, 2, (4, 5), 3, 3,
         mode="reflect", padding=[(0, 1), (2, 2)]),
    # 3d
    case("conv3d_reflect_pad_1_0_2_1_0_2", 3, 1, 2, (4, 4, 5), 2, (2, 3, 3),
         mode="reflect", padding=[(1, 0), (2, 1), (0, 2)]),
    case("conv3d_replicate_pad_0_2_1_1_3_0", 3, 1, 2, (3, 4, 4), 2, (2, 2, 3),
         mode="replicate", padding=[(0, 2), (1, 1), (3, 0)]),
    case("conv3d_circular_pad_1_2_0_1_2_2", 3, 1, 2, (3, 4, 4), 2, (2, 2, 3),
         mode="circular", padding=[(1, 2), (0, 1), (2, 2)]),
    case("conv3d_reflect_same_k2x3x4", 3, 1, 2, (3, 4, 5), 2, (2, 3, 4), mode="reflect",
         padding="same"),
    case("conv3d_replicate_same_k3_d2", 3, 1, 1, (4, 5, 5), 2, 3, dilation=2,
         mode="replicate", padding="same"),
    case("conv3d_circular_same_k2x2x3", 3, 1, 2, (3, 4, 5), 2, (2, 2, 3),
         mode="circular", padding="same"),
    case("conv3d_circular_unbatched_pad_1_0_1_1_0_2", 3, None, 2, (3, 3, 4), 2, 2,
         mode="circular", padding=[(1, 0), (1, 1), (0, 2)]),
    case("conv3d_replicate_depthwise_pad_1_1_2_0_1_1", 3, 1, 3, (3, 4, 4), 3, 3,
         groups=3, mode="replicate", padding=[(1, 1), (2, 0), (1, 1)]),
    # ======================= fused epilogue ==================================
    case("conv1d_relu", 1, 2, 3, 12, 4, 3, act=RELU),
    case("conv1d_relu6_residual", 1, 2, 3, 12, 4, 3, padding=1, residual=True, act=RELU6),
    case("conv2d_relu6_nobias", 2, 1, 3, (6, 6), 4, 3, padding=1, bias=False, act=RELU6),
    case("conv2d_leaky0p1", 2, 1, 3, (6, 5), 3, 3, act=leaky(0.1)),
    case("conv1d_leaky0p01_residual", 1, 2, 2, 10, 3, 3, residual=True, act=leaky(0.01)),
    case("conv3d_sigmoid", 3, 1, 2, (4, 4, 5), 2, 3, padding=1, act=SIGMOID),
    case("conv2d_tanh_residual", 2, 1, 2, (5, 5), 3, 3, residual=True, act=TANH),
    case("conv2d_gelu_residual", 2, 1, 3, (6, 6), 3, 3, padding=1, residual=True, act=GELU),
    case("conv3d_gelu_tanh", 3, 1, 2, (4, 5, 4), 3, 2, act=GELU_TANH),
    case("conv1d_gelu_tanh_residual", 1, 2, 3, 9, 3, 3, residual=True, act=GELU_TANH),
    case("conv2d_silu", 2, 2, 2, (5, 5), 3, 3, act=SILU),
    case("conv2d_hardswish", 2, 1, 3, (6, 6), 4, 3, act=HARDSWISH),
    case("conv1d_hardswish_residual", 1, 2, 3, 10, 4, 3, residual=True, act=HARDSWISH),
    case("conv1d_clamp_m2_3", 1, 2, 3, 12, 3, 3, act=clamp(-2.0, 3.0)),
    case("conv3d_clamp_m1p5_0p5_residual", 3, 1, 2, (3, 4, 5), 2, 3, padding=1,
         residual=True, act=clamp(-1.5, 0.5)),
    case("conv2d_clamp_m4_m1", 2, 1, 2, (6, 6), 3, 3, act=clamp(-4.0, -1.0)),
    case("conv2d_residual_noact", 2, 2, 2, (5, 6), 3, 3, padding=1, residual=True),
    case("conv1d_unbatched_silu_residual", 1, None, 3, 10, 3, 3, residual=True, act=SILU),
    # ======================= channels-last ===================================
    case("conv1d_nlc_k3", 1, 2, 3, 10, 4, 3, cl=True),
    case("conv1d_nlc_unbatched_s2_pad1", 1, None, 4, 9, 3, 3, stride=2, padding=1, cl=True),
    case("conv2d_nhwc_gelu_residual", 2, 1, 3, (5, 5), 4, 3, padding=1, residual=True,
         act=GELU, cl=True),
    case("conv2d_nhwc_depthwise_s2", 2, 1, 4, (7, 6), 4, 3, groups=4, stride=2, cl=True),
    case("conv2d_nhwc_unbatched_same_k2", 2, None, 3, (4, 5), 2, 2, padding="same",
         cl=True),
    case("conv3d_ndhwc_k3", 3, 1, 3, (4, 5, 4), 2, 3, cl=True),
    case("conv3d_ndhwc_unbatched_same_k3", 3, None, 2, (3, 4, 5), 3, 3, padding="same",
         cl=True),
    case("conv3d_ndhwc_g2_replicate_pad_1_0_0_1_1_1", 3, 2, 4, (3, 3, 4), 2, (2, 2, 3),
         groups=2, mode="replicate", padding=[(1, 0), (0, 1), (1, 1)], cl=True),
    # ======================= true convolution (flip_kernel) ==================
    case("conv1d_flip_k3", 1, 1, 2, 10, 3, 3, flip=True),
    case("conv1d_flip_k4_same", 1, 2, 2, 8, 2, 4, padding="same", flip=True),
    case("conv2d_flip_unbatched_pad1", 2, None, 2, (4, 5), 2, 3, padding=1, flip=True),
    case("conv3d_flip_k2x3x2", 3, 1, 2, (3, 5, 4), 2, (2, 3, 2), flip=True),
    case("conv3d_flip_g2_s2", 3, 1, 4, (5, 5, 5), 2, 3, groups=2, stride=2, flip=True),
    # ======================= combinations ====================================
    case("conv3d_combo_reflect_g2_residual_gelu_ndhwc_flip_grad", 3, 1, 4, (3, 4, 4), 4,
         (2, 3, 2), groups=2, mode="reflect", padding=[(1, 0), (1, 1), (0, 1)],
         residual=True, act=GELU, cl=True, flip=True, grad=True),
    case("conv1d_combo_circular_s2_d2_silu", 1, 2, 3, 12, 4, 3, stride=2, dilation=2,
         mode="circular", padding=[(2, 3)], act=SILU),
    case("conv2d_combo_replicate_same_hardswish_nhwc", 2, 1, 3, (5, 6), 3, (3, 4),
         mode="replicate", padding="same", act=HARDSWISH, cl=True),
    case("conv1d_combo_unbatched_nlc_reflect_flip_relu6_residual", 1, None, 3, 9, 2, 4,
         mode="reflect", padding=[(2, 1)], residual=True, act=RELU6, cl=True, flip=True),
    case("conv3d_combo_circular_depthwise_s2_tanh_grad", 3, 1, 3, (4, 4, 5), 3, 3,
         groups=3, stride=2, mode="circular", padding=[(1, 1), (0, 2), (1, 0)],
         act=TANH, grad=True),
    case("conv2d_combo_reflect_d2_g3_clamp_residual_flip", 2, 1, 3, (6, 7), 6, 2,
         dilation=2, groups=3, mode="reflect", padding=[(2, 1), (1, 3)],
         residual=True, act=clamp(-1.0, 2.0), flip=True),
    case("conv1d_combo_replicate_same_k4_leaky_nlc_residual_grad", 1, 2, 2, 7, 3, 4,
         mode="replicate", padding="same", residual=True, act=leaky(0.1), cl=True,
         grad=True),
    case("conv3d_combo_unbatched_replicate_gelu_tanh_residual_nobias", 3, None, 2,
         (3, 4, 4), 2, 3, mode="replicate", padding=[(2, 0), (1, 1), (0, 2)],
         bias=False, residual=True, act=GELU_TANH),
    case("conv2d_combo_circular_same_flip_sigmoid_nhwc_grad", 2, 1, 2, (4, 5), 3, (2, 3),
         mode="circular", padding="same", act=SIGMOID, cl=True, flip=True, grad=True),
    case("conv3d_combo_zeros_asym_s2_d2_g2_silu_residual_ndhwc", 3, 1, 2, (5, 6, 6), 4,
         2, stride=2, dilation=2, groups=2, padding=[(0, 1), (1, 2), (2, 0)],
         residual=True, act=SILU, cl=True),
    case("conv2d_combo_unbatched_nhwc_flip_g2_relu_residual_grad", 2, None, 4, (4, 5),
         2, 3, groups=2, padding=[(1, 0), (0, 1)], residual=True, act=RELU, cl=True,
         flip=True, grad=True),
    # ======================= gradients =======================================
    case("conv1d_s2_d2_g2_pad_2_1_grad", 1, 2, 4, 11, 4, 3, stride=2, dilation=2,
         groups=2, padding=[(2, 1)], grad=True),
    case("conv1d_depthwise_s3_pad1_grad", 1, 2, 3, 10, 3, 3, groups=3, stride=3,
         padding=1, grad=True),
    case("conv3d_s2_g2_pad_1_0_1_2_0_1_grad", 3, 1, 4, (4, 5, 5), 2, (2, 3, 3),
         stride=2, groups=2, padding=[(1, 0), (1, 2), (0, 1)], grad=True),
    case("conv3d_d2_same_grad", 3, 1, 2, (4, 5, 5), 2, 3, dilation=2, padding="same",
         grad=True),
    case("conv3d_depthwise_s1x2x1_grad", 3, 2, 2, (3, 5, 4), 2, (2, 3, 2), groups=2,
         stride=(1, 2, 1), grad=True),
    case("conv1d_reflect_pad_2_3_grad", 1, 2, 2, 8, 3, 3, mode="reflect",
         padding=[(2, 3)], grad=True),
    case("conv1d_replicate_pad_3_1_s2_grad", 1, 1, 2, 9, 2, 3, stride=2,
         mode="replicate", padding=[(3, 1)], grad=True),
    case("conv1d_circular_pad_1_2_d2_nobias_grad", 1, 1, 3, 8, 2, 3, dilation=2,
         mode="circular", padding=[(1, 2)], bias=False, grad=True),
    case("conv1d_reflect_pad_max_3_3_L4_grad", 1, 1, 2, 4, 2, 3, mode="reflect",
         padding=[(3, 3)], grad=True),
    case("conv1d_circular_pad_eq_len_3_3_L3_grad", 1, 1, 2, 3, 2, 2, mode="circular",
         padding=[(3, 3)], grad=True),
    case("conv2d_reflect_pad_2_1_0_3_grad", 2, 1, 2, (5, 5), 2, 3, mode="reflect",
         padding=[(2, 1), (0, 3)], grad=True),
    case("conv2d_replicate_same_k4x3_grad", 2, 1, 2, (5, 5), 2, (4, 3), mode="replicate",
         padding="same", grad=True),
    case("conv2d_circular_pad_0_2_1_1_s2_grad", 2, 2, 2, (5, 6), 2, 3, stride=2,
         mode="circular", padding=[(0, 2), (1, 1)], grad=True),
    case("conv3d_reflect_pad_1_1_0_2_2_1_grad", 3, 1, 2, (3, 4, 4), 2, (2, 2, 3),
         mode="reflect", padding=[(1, 1), (0, 2), (2, 1)], grad=True),
    case("conv3d_replicate_pad_2_0_1_1_0_1_grad", 3, 1, 2, (3, 3, 4), 2, 2,
         mode="replicate", padding=[(2, 0), (1, 1), (0, 1)], grad=True),
    case("conv3d_circular_same_k2x3x2_grad", 3, 1, 2, (3, 4, 4), 2, (2, 3, 2),
         mode="circular", padding="same", grad=True),
    case("conv2d_relu_residual_grad", 2, 1, 2, (5, 5), 3, 3, padding=1, residual=True,
         act=RELU, grad=True),
    case("conv1d_gelu_grad", 1, 2, 3, 9, 3, 3, act=GELU, grad=True),
    case("conv1d_gelu_tanh_grad", 1, 1, 3, 10, 3, 3, act=GELU_TANH, grad=True),
    case("conv3d_hardswish_residual_grad", 3, 1, 2, (3, 4, 4), 2, 3, padding=1,
         residual=True, act=HARDSWISH, grad=True),
    case("conv2d_leaky0p1_grad", 2, 1, 2, (5, 6), 3, 3, act=leaky(0.1), grad=True),
    case("conv1d_sigmoid_residual_grad", 1, 2, 2, 8, 3, 3, residual=True, act=SIGMOID,
         grad=True),
    case("conv3d_relu6_grad", 3, 1, 2, (4, 4, 4), 3, 3, padding=1, act=RELU6, grad=True),
    case("conv1d_clamp_m1_2_residual_grad", 1, 2, 3, 9, 3, 3, residual=True,
         act=clamp(-1.0, 2.0), grad=True),
    case("conv2d_nhwc_grad", 2, 2, 3, (4, 5), 2, 3, padding=1, cl=True, grad=True),
    case("conv1d_nlc_residual_grad", 1, 2, 3, 8, 2, 3, residual=True, cl=True, grad=True),
    case("conv3d_ndhwc_s2_grad", 3, 1, 2, (4, 5, 5), 3, 2, stride=2, cl=True, grad=True),
    case("conv2d_flip_grad", 2, 1, 2, (5, 5), 2, (2, 3), padding=[(1, 0), (1, 1)],
         flip=True, grad=True),
    case("conv1d_flip_s2_d2_grad", 1, 2, 2, 11, 2, 3, stride=2, dilation=2, flip=True,
         grad=True),
    case("conv3d_flip_same_k2x2x3_grad", 3, 1, 2, (3, 4, 4), 2, (2, 2, 3),
         padding="same", flip=True, grad=True),
    case("conv2d_unbatched_g2_grad", 2, None, 4, (4, 5), 2, 3, groups=2, padding=1,
         grad=True),
    case("conv3d_unbatched_reflect_grad", 3, None, 2, (3, 3, 4), 2, 2, mode="reflect",
         padding=[(1, 1), (2, 0), (1, 2)], grad=True),
]


# --- computation --------------------------------------------------------------

def out_size(size, k, s, pad_total, d):
    return (size + pad_total - d * (k - 1) - 1) // s + 1


def resolved_pairs(cs):
    """Per-axis (before, after) amounts actually applied."""
    pad = cs["padding"]
    if pad == "valid":
        return [(0, 0)] * cs["dims"]
    if pad == "same":
        pairs = []
        for k, d in zip(cs["k"], cs["dilation"]):
            total = d * (k - 1)
            pairs.append((total // 2, total - total // 2))
        return pairs
    return pad


def conv_forward(cs, x, w, b):
    """Convolution (+ bias) in float64, channels-first, as documented."""
    dims, g = cs["dims"], cs["groups"]
    conv = CONV[dims]
    stride, dil, pad, mode = cs["stride"], cs["dilation"], cs["padding"], cs["mode"]
    if cs["flip"]:
        w = torch.flip(w, dims=list(range(2, 2 + dims)))
    if mode == "zeros" and isinstance(pad, str):
        return conv(x, w, b, stride=stride, padding=pad, dilation=dil, groups=g)
    pairs = resolved_pairs(cs)
    if mode == "zeros" and all(a == c for a, c in pairs):
        return conv(x, w, b, stride=stride, padding=tuple(a for a, _ in pairs),
                    dilation=dil, groups=g)
    flat = []
    for before, after in reversed(pairs):  # F.pad wants the last axis first
        flat += [before, after]
    fmode = "constant" if mode == "zeros" else mode
    xp = F.pad(x, tuple(flat), mode=fmode)
    return conv(xp, w, b, stride=stride, padding=0, dilation=dil, groups=g)


def to_layout(t, cl, unbatched):
    if not cl:
        return t
    if unbatched:
        perm = list(range(1, t.dim())) + [0]
    else:
        perm = [0] + list(range(2, t.dim())) + [1]
    return t.permute(*perm).contiguous()


def save(name, suffix, t):
    arr = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))
    assert arr.dtype == np.float32
    np.save(os.path.join(HERE, f"{name}.{suffix}.npy"), arr)


def check_module(cs, x, w, b, y):
    """Non-zeros mode with padding nn.ConvNd accepts: compare with the module."""
    pad = cs["padding"]
    if cs["mode"] == "zeros":
        return
    if isinstance(pad, str):
        mpad = pad
    elif all(a == c for a, c in pad):
        mpad = tuple(a for a, _ in pad)
    else:
        return
    dims = cs["dims"]
    m = MODULE[dims](cs["c"], cs["o"], cs["k"], stride=cs["stride"], padding=mpad,
                     dilation=cs["dilation"], groups=cs["groups"], bias=b is not None,
                     padding_mode=cs["mode"], dtype=torch.float64)
    with torch.no_grad():
        weff = torch.flip(w, dims=list(range(2, 2 + dims))) if cs["flip"] else w
        m.weight.copy_(weff)
        if b is not None:
            m.bias.copy_(b)
        ym = m(x)
    assert ym.shape == y.shape, cs["name"]
    assert torch.allclose(ym, y, rtol=1e-12, atol=1e-12), cs["name"]


def run_case(cs):
    name, dims, n, c, o, g = cs["name"], cs["dims"], cs["n"], cs["c"], cs["o"], cs["groups"]
    assert c % g == 0 and o % g == 0, name
    unbatched = n is None
    act = cs["act"]
    if cs["padding"] == "same":
        assert all(s == 1 for s in cs["stride"]), name
    pairs = resolved_pairs(cs)
    for (before, after), size in zip(pairs, cs["spatial"]):
        if cs["mode"] == "reflect":
            assert before < size and after < size, name
        if cs["mode"] == "circular":
            assert before <= size and after <= size, name
    out_sp = [out_size(sz, k, s, a + b_, d) for sz, k, s, (a, b_), d in
              zip(cs["spatial"], cs["k"], cs["stride"], pairs, cs["dilation"])]
    assert all(p >= 1 for p in out_sp), name
    in_cf = ([] if unbatched else [n]) + [c] + list(cs["spatial"])
    out_cf = ([] if unbatched else [n]) + [o] + out_sp

    torch.manual_seed(zlib.crc32(name.encode("utf-8")))
    x32 = torch.randn(*in_cf, dtype=torch.float32)
    w32 = torch.randn(o, c // g, *cs["k"], dtype=torch.float32)
    b32 = torch.randn(o, dtype=torch.float32) if cs["bias"] else None
    r32 = torch.randn(*out_cf, dtype=torch.float32) if cs["residual"] else None
    g32 = torch.randn(*out_cf, dtype=torch.float32) if cs["grad"] else None

    def pre_act(x, w, b, r):
        y = conv_forward(cs, x, w, b)
        return y + r if r is not None else y

    if act is not None:
        d = lambda t: t.double() if t is not None else None  # noqa: E731
        pre = pre_act(d(x32), d(w32), d(b32), d(r32))
        m = pre.abs().max().item()
        s = 2.0 ** round(math.log2(8.0 / m))
        ks = knees(act) if act["name"] in ("relu6", "hardswish", "clamp") else []
        if ks:
            while not (pre.min().item() * s < min(ks) and pre.max().item() * s > max(ks)):
                s *= 2.0
        x32 = (x32 * s).to(torch.float32)
        if b32 is not None:
            b32 = (b32 * s).to(torch.float32)
        if r32 is not None:
            r32 = (r32 * s).to(torch.float32)

    x = x32.double().requires_grad_(cs["grad"])
    w = w32.double().requires_grad_(cs["grad"])
    b = b32.double().requires_grad_(cs["grad"]) if b32 is not None else None
    r = r32.double().requires_grad_(cs["grad"]) if r32 is not None else None
    pre = pre_act(x, w, b, r)
    y = apply_act(act, pre)
    assert list(y.shape) == out_cf, (name, y.shape, out_cf)

    # Cross-checks.
    with torch.no_grad():
        check_module(cs, x.detach(), w.detach(),
                     b.detach() if b is not None else None,
                     conv_forward(cs, x.detach(), w.detach(),
                                  b.detach() if b is not None else None))
        if unbatched:
            yb = apply_act(act, pre_act(x.detach().unsqueeze(0), w.detach(),
                                        b.detach() if b is not None else None,
                                        r.detach().unsqueeze(0) if r is not None else None))
            assert torch.allclose(yb.squeeze(0), y.detach(), rtol=1e-12, atol=1e-12), name
        if act is not None and act["name"] in ("relu6", "hardswish", "clamp"):
            ks = knees(act)
            assert pre.min().item() < min(ks) and pre.max().item() > max(ks), name
        if cs["grad"]:
            for kp in knees(act):
                gap = (pre.detach() - kp).abs().min().item()
                assert gap > 1e-3, (name, kp, gap)

    cl = cs["cl"]
    save(name, "input", to_layout(x32, cl, unbatched))
    save(name, "weight", w32)
    if b32 is not None:
        save(name, "bias", b32)
    if r32 is not None:
        save(name, "residual", to_layout(r32, cl, unbatched))
    y32 = to_layout(y.detach().to(torch.float32), cl, unbatched)
    save(name, "output", y32)

    if cs["grad"]:
        (y * g32.double()).sum().backward()
        save(name, "grad_output", to_layout(g32, cl, unbatched))
        save(name, "grad_input", to_layout(x.grad, cl, unbatched))
        save(name, "grad_weight", w.grad)
        if b is not None:
            save(name, "grad_bias", b.grad)
        if r is not None:
            save(name, "grad_residual", to_layout(r.grad, cl, unbatched))

    pad = cs["padding"]
    return {
        "name": name,
        "dims": dims,
        "input_shape": list(to_layout(x32, cl, unbatched).shape),
        "weight_shape": list(w32.shape),
        "output_shape": list(y32.shape),
        "bias": b32 is not None,
        "residual": r32 is not None,
        "unbatched": unbatched,
        "stride": list(cs["stride"]),
        "dilation": list(cs["dilation"]),
        "groups": g,
        "padding": pad if isinstance(pad, str) else [list(p) for p in pad],
        "padding_mode": cs["mode"],
        "activation": act,
        "layout": "channels_last" if cl else "channels_first",
        "flip_kernel": cs["flip"],
        "grad": cs["grad"],
    }


def main():
    names = [cs["name"] for cs in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    for f in os.listdir(HERE):
        if f.endswith(".npy"):
            os.remove(os.path.join(HERE, f))
    meta = [run_case(cs) for cs in CASES]
    with open(os.path.join(HERE, "cases.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    print(f"wrote {len(meta)} cases ({sum(m['grad'] for m in meta)} with gradients) "
          f"to {HERE} (torch {torch.__version__}, numpy {np.__version__})")


if __name__ == "__main__":
    main()
