#!/usr/bin/env python3
"""Generate PyTorch golden files for wgconv's gradients and transposed convolutions.

What it makes (all in the directory containing this script, tests/golden_grad/):

  * For every convolution case NAME (kind "conv2d_backward"):
      NAME.input.npy        float32, C order, [N, C, H, W]
      NAME.weight.npy       float32, C order, [O, C/groups, kh, kw]
      NAME.bias.npy         float32, [O]             (only when the case has bias)
      NAME.grad_output.npy  float32, C order, [N, O, P, Q]: G, the gradient of the loss
                            with respect to the convolution's output
      NAME.grad_input.npy   float32, [N, C, H, W]:       dL/dinput
      NAME.grad_weight.npy  float32, [O, C/groups, kh, kw]: dL/dweight
      NAME.grad_bias.npy    float32, [O]:                 dL/dbias (only with bias)
    where L = sum(G * conv2d(input, weight, bias)).
  * For every transposed-convolution case NAME (kind "conv_transpose2d"):
      NAME.input.npy   float32, [N, Ci, P, Q]
      NAME.weight.npy  float32, [Ci, Co/groups, kh, kw]
      NAME.bias.npy    float32, [Co]   (only when the case has bias)
      NAME.output.npy  float32, [N, Co, H, W]: F.conv_transpose2d(input, weight, bias, ...)
  * cases.json: {"conv2d_backward": [...], "conv_transpose2d": [...]}, one object per case:
      conv2d_backward: {"name", "input_shape", "weight_shape", "bias", "stride": [sh, sw],
                        "padding": [top, bottom, left, right] | "same" | "valid",
                        "dilation": [dh, dw], "groups", "output_shape"}
      conv_transpose2d: {"name", "input_shape", "weight_shape", "bias", "stride": [sh, sw],
                         "padding": [ph, pw], "output_padding": [oph, opw],
                         "dilation": [dh, dw], "groups", "output_shape"}

How the values are computed:
  Input, weight, bias and grad_output are drawn as float32 with torch.randn
  (standard normal), in that order, then cast to float64. The convolution
  runs in float64 (torch.nn.functional.conv2d) with requires_grad on input,
  weight and bias; (y * G).sum().backward() gives the three gradients in
  float64, which are rounded to float32 once, so the golden gradients are
  as close to exact as float32 allows (transposed outputs likewise, with
  F.conv_transpose2d in float64).
  * Symmetric numeric padding uses conv2d's own padding=(ph, pw).
  * Asymmetric padding is F.pad(x, (left, right, top, bottom)) (zeros)
    followed by conv2d with padding=0; autograd carries the gradient back
    through the pad, so grad_input has the unpadded input's shape.
  * "same" / "valid" use conv2d's padding='same' / 'valid' strings: per
    axis the total padding is dilation*(k-1), top/left get total // 2 and
    bottom/right the rest.
  * The lecture case ("lecture_edge_k1x2") uses the lecture's data instead
    of random numbers: X is a 6x8 image of ones with columns 2..5 zero, the
    target Y = conv2d(X, [[1, -1]]), a random 1x2 weight, no bias, and
    G = d/dy of sum((y - Y)**2) = 2 * (y - Y), rounded to float32 before the
    backward pass uses it (so the stored G is exactly what produced the
    stored gradients).
  * conv_transpose2d's output_padding must be smaller than the stride or
    the dilation of its axis (PyTorch's rule); it adds rows/columns at the
    bottom/right of the output window, which still receive contributions
    when padding > 0 (the window is rows [pad, pad + H) of the full
    scatter, which is (P-1)*s + d*(k-1) + 1 rows long).

Re-run with:
    python3 tests/golden_grad/generate.py

Generated with torch 2.15.0 (the PyPI wheel, run on CPU) and numpy, Python 3.
It is deterministic: every case is seeded with torch.manual_seed(seed) right
before its tensors are drawn, where seed is zlib.crc32 of the case name, so a
case's data does not change when other cases are added or reordered, and
re-running reproduces the same files bit for bit (on the same torch version).
Stale .npy files are removed before writing.
"""

import json
import os
import zlib

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def conv(name, n, c, h, w, o, kh, kw, *, stride=(1, 1), padding=(0, 0, 0, 0),
         dilation=(1, 1), groups=1, bias=True):
    """One convolution case. padding: (top, bottom, left, right), "same" or "valid"."""
    return dict(name=name, n=n, c=c, h=h, w=w, o=o, kh=kh, kw=kw,
                stride=tuple(stride), padding=padding, dilation=tuple(dilation),
                groups=groups, bias=bias)


def transpose(name, n, ci, p, q, co, kh, kw, *, stride=(1, 1), padding=(0, 0),
              output_padding=(0, 0), dilation=(1, 1), groups=1, bias=True):
    """One transposed-convolution case: input [n, ci, p, q], co output channels."""
    return dict(name=name, n=n, ci=ci, p=p, q=q, co=co, kh=kh, kw=kw,
                stride=tuple(stride), padding=tuple(padding),
                output_padding=tuple(output_padding), dilation=tuple(dilation),
                groups=groups, bias=bias)


def sym(ph, pw):
    return (ph, ph, pw, pw)


CONV_CASES = [
    # --- 1x1 ------------------------------------------------------------------
    conv("k1x1_basic", 1, 3, 5, 5, 4, 1, 1),
    conv("k1x1_s2_batch2_nobias", 2, 5, 7, 6, 3, 1, 1, stride=(2, 2), bias=False),
    # --- 3x3 ------------------------------------------------------------------
    conv("k3_basic", 1, 3, 8, 8, 4, 3, 3),
    conv("k3_pad1_batch2", 2, 3, 7, 9, 5, 3, 3, padding=sym(1, 1)),
    conv("k3_batch3_nobias", 3, 2, 6, 7, 2, 3, 3, bias=False),
    conv("cin16_k3_pad1", 1, 16, 6, 6, 8, 3, 3, padding=sym(1, 1)),
    # --- even / non-square kernels --------------------------------------------
    conv("k2x2_s2", 1, 3, 8, 8, 4, 2, 2, stride=(2, 2)),
    conv("k2x3_pad_1_0_nobias", 2, 2, 6, 7, 3, 2, 3, padding=sym(1, 0), bias=False),
    conv("k4x1", 1, 3, 9, 5, 2, 4, 1),
    conv("k5x3_pad_2_1", 1, 2, 11, 9, 3, 5, 3, padding=sym(2, 1)),
    # --- strides (incl. rows/columns the kernel never reaches) -----------------
    conv("k3_s2_pad1", 2, 2, 9, 8, 3, 3, 3, stride=(2, 2), padding=sym(1, 1)),
    conv("k3_s3_leftover", 1, 2, 13, 11, 3, 3, 3, stride=(3, 3)),
    conv("k3_s2x3_pad1", 2, 3, 10, 13, 4, 3, 3, stride=(2, 3), padding=sym(1, 1)),
    conv("k2x3_s3_leftover_nobias", 1, 2, 10, 12, 2, 2, 3, stride=(3, 3), bias=False),
    # --- asymmetric padding (F.pad) -------------------------------------------
    conv("pad_asym_0_2_1_0_k3", 1, 2, 6, 7, 3, 3, 3, padding=(0, 2, 1, 0)),
    conv("pad_asym_1_0_2_1_k2x3_s2", 2, 3, 7, 8, 4, 2, 3, stride=(2, 2),
         padding=(1, 0, 2, 1)),
    conv("pad_asym_3_1_0_2_k3_d2_nobias", 1, 2, 6, 6, 2, 3, 3, padding=(3, 1, 0, 2),
         dilation=(2, 2), bias=False),
    # --- 'same' and 'valid' ---------------------------------------------------
    conv("same_k3", 2, 3, 7, 6, 4, 3, 3, padding="same"),
    conv("same_k4x2_even", 1, 2, 7, 8, 3, 4, 2, padding="same"),
    conv("same_k2x2_even_nobias", 1, 3, 5, 6, 2, 2, 2, padding="same", bias=False),
    conv("same_k3_d2", 1, 2, 9, 10, 3, 3, 3, padding="same", dilation=(2, 2)),
    conv("same_k4x2_d2x3", 1, 2, 9, 10, 2, 4, 2, padding="same", dilation=(2, 3)),
    conv("valid_k3", 2, 3, 6, 8, 2, 3, 3, padding="valid"),
    # --- dilation -------------------------------------------------------------
    conv("dil2_k3", 1, 2, 11, 12, 3, 3, 3, dilation=(2, 2)),
    conv("dil3_k3_pad3_s2", 1, 3, 14, 13, 2, 3, 3, stride=(2, 2), padding=sym(3, 3),
         dilation=(3, 3)),
    conv("dil_2x3_k2x3_s2", 2, 2, 10, 12, 3, 2, 3, stride=(2, 2), dilation=(2, 3)),
    # --- groups ---------------------------------------------------------------
    conv("groups2_k3_pad1", 1, 4, 7, 7, 6, 3, 3, groups=2, padding=sym(1, 1)),
    conv("groups3_k2x2_s2", 2, 6, 8, 7, 9, 2, 2, groups=3, stride=(2, 2)),
    conv("groups4_k3_s2_nobias", 2, 8, 9, 9, 8, 3, 3, groups=4, stride=(2, 2), bias=False),
    conv("depthwise_k3_pad1", 2, 6, 8, 8, 6, 3, 3, groups=6, padding=sym(1, 1)),
    conv("depthwise_mult2_k3_s2", 1, 4, 9, 10, 8, 3, 3, groups=4, stride=(2, 2),
         padding=sym(1, 1)),
    conv("depthwise_mult3_k5_same_nobias", 1, 3, 8, 9, 9, 5, 5, groups=3, padding="same",
         bias=False),
    # --- odd shapes and mixtures ----------------------------------------------
    conv("input_1x1_k3_pad1", 1, 2, 1, 1, 3, 3, 3, padding=sym(1, 1)),
    conv("output_1x1_k5", 2, 3, 5, 5, 4, 5, 5),
    conv("batch4_groups2_k3_s2_d2_pad2", 4, 4, 9, 10, 6, 3, 3, groups=2, stride=(2, 2),
         padding=sym(2, 2), dilation=(2, 2)),
    # --- the lecture: a 1x2 edge detector learned on a 6x8 image ---------------
    conv("lecture_edge_k1x2", 1, 1, 6, 8, 1, 1, 2, bias=False),
]

TRANSPOSE_CASES = [
    transpose("t_k3_basic", 1, 2, 4, 4, 3, 3, 3),
    transpose("t_k3_s2", 1, 3, 4, 5, 2, 3, 3, stride=(2, 2)),
    transpose("t_k3_s2_pad1_nobias", 2, 2, 5, 4, 3, 3, 3, stride=(2, 2), padding=(1, 1),
              bias=False),
    transpose("t_k3_s2_pad1_op1", 1, 3, 4, 4, 2, 3, 3, stride=(2, 2), padding=(1, 1),
              output_padding=(1, 1)),
    transpose("t_k4_s3_pad1_op2x1", 1, 2, 3, 4, 2, 4, 4, stride=(3, 3), padding=(1, 1),
              output_padding=(2, 1)),
    # output_padding >= stride is allowed while it is below the dilation.
    transpose("t_k3_s1_d2_op1", 1, 2, 4, 5, 3, 3, 3, dilation=(2, 2),
              output_padding=(1, 1)),
    transpose("t_k3_s1_d3_pad2_op2", 1, 2, 5, 4, 2, 3, 3, dilation=(3, 3), padding=(2, 2),
              output_padding=(2, 2)),
    transpose("t_k2x3_s2x3_pad0x1_op1x2", 2, 2, 3, 4, 3, 2, 3, stride=(2, 3),
              padding=(0, 1), output_padding=(1, 2)),
    transpose("t_k5_s2_pad2_d2_op1", 1, 2, 4, 4, 2, 5, 5, stride=(2, 2), padding=(2, 2),
              dilation=(2, 2), output_padding=(1, 1)),
    transpose("t_groups2_k3_s2", 1, 4, 4, 4, 6, 3, 3, stride=(2, 2), groups=2),
    transpose("t_groups3_k3_s2_pad1_d2_op1_nobias", 2, 6, 3, 4, 3, 3, 3, stride=(2, 2),
              padding=(1, 1), dilation=(2, 2), output_padding=(1, 1), groups=3,
              bias=False),
    transpose("t_depthwise_k3_s2_pad1", 1, 4, 5, 5, 4, 3, 3, stride=(2, 2), padding=(1, 1),
              groups=4),
    transpose("t_batch3_k1_s2_op1", 3, 3, 4, 3, 2, 1, 1, stride=(2, 2),
              output_padding=(1, 1)),
    transpose("t_input_1x1_k3", 1, 2, 1, 1, 2, 3, 3),
    transpose("t_k2x2_s2_pad1_crop", 1, 2, 4, 4, 2, 2, 2, stride=(2, 2), padding=(1, 1)),
]


def seed_for(name):
    torch.manual_seed(zlib.crc32(name.encode("utf-8")))


def save(name, suffix, t):
    arr = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))
    np.save(os.path.join(HERE, f"{name}.{suffix}.npy"), arr)


def conv_forward(x, wt, b, cs):
    """conv2d in float64 with the case's padding (F.pad for asymmetric padding)."""
    stride, dil, pad, g = cs["stride"], cs["dilation"], cs["padding"], cs["groups"]
    if isinstance(pad, str):
        return F.conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil, groups=g)
    top, bottom, left, right = pad
    if top == bottom and left == right:
        return F.conv2d(x, wt, b, stride=stride, padding=(top, left), dilation=dil, groups=g)
    xp = F.pad(x, (left, right, top, bottom))
    return F.conv2d(xp, wt, b, stride=stride, padding=0, dilation=dil, groups=g)


def out_size(size, k, s, pad_total, d):
    return (size + pad_total - d * (k - 1) - 1) // s + 1


def run_conv(cs):
    name = cs["name"]
    n, c, h, w, o = cs["n"], cs["c"], cs["h"], cs["w"], cs["o"]
    kh, kw, g = cs["kh"], cs["kw"], cs["groups"]
    assert c % g == 0 and o % g == 0, name
    seed_for(name)
    if name.startswith("lecture_"):
        x32 = torch.ones(n, c, h, w, dtype=torch.float32)
        x32[:, :, :, 2:6] = 0.0
        wt32 = torch.randn(o, c // g, kh, kw, dtype=torch.float32)
        b32 = None
        target = F.conv2d(x32.double(), torch.tensor([[[[1.0, -1.0]]]], dtype=torch.float64))
        y0 = conv_forward(x32.double(), wt32.double(), None, cs)
        g32 = (2.0 * (y0 - target)).to(torch.float32)
    else:
        x32 = torch.randn(n, c, h, w, dtype=torch.float32)
        wt32 = torch.randn(o, c // g, kh, kw, dtype=torch.float32)
        b32 = torch.randn(o, dtype=torch.float32) if cs["bias"] else None
        g32 = None

    x = x32.double().requires_grad_(True)
    wt = wt32.double().requires_grad_(True)
    b = b32.double().requires_grad_(True) if b32 is not None else None
    y = conv_forward(x, wt, b, cs)
    if g32 is None:
        g32 = torch.randn(*y.shape, dtype=torch.float32)
    assert tuple(g32.shape) == tuple(y.shape), name
    (y * g32.double()).sum().backward()

    pad = cs["padding"]
    if not isinstance(pad, str):
        top, bottom, left, right = pad
        p = out_size(h, kh, cs["stride"][0], top + bottom, cs["dilation"][0])
        q = out_size(w, kw, cs["stride"][1], left + right, cs["dilation"][1])
        assert tuple(y.shape) == (n, o, p, q), (name, y.shape, (p, q))
        pad_json = [top, bottom, left, right]
    else:
        pad_json = pad

    save(name, "input", x32)
    save(name, "weight", wt32)
    if b32 is not None:
        save(name, "bias", b32)
    save(name, "grad_output", g32)
    save(name, "grad_input", x.grad)
    save(name, "grad_weight", wt.grad)
    if b is not None:
        save(name, "grad_bias", b.grad)
    return {
        "name": name,
        "input_shape": [n, c, h, w],
        "weight_shape": [o, c // g, kh, kw],
        "bias": b32 is not None,
        "stride": list(cs["stride"]),
        "padding": pad_json,
        "dilation": list(cs["dilation"]),
        "groups": g,
        "output_shape": list(y.shape),
    }


def run_transpose(cs):
    name = cs["name"]
    n, ci, p, q, co = cs["n"], cs["ci"], cs["p"], cs["q"], cs["co"]
    kh, kw, g = cs["kh"], cs["kw"], cs["groups"]
    assert ci % g == 0 and co % g == 0, name
    seed_for(name)
    x32 = torch.randn(n, ci, p, q, dtype=torch.float32)
    wt32 = torch.randn(ci, co // g, kh, kw, dtype=torch.float32)
    b32 = torch.randn(co, dtype=torch.float32) if cs["bias"] else None
    s, pad, op, d = cs["stride"], cs["padding"], cs["output_padding"], cs["dilation"]
    y = F.conv_transpose2d(x32.double(), wt32.double(),
                           b32.double() if b32 is not None else None,
                           stride=s, padding=pad, output_padding=op, groups=g, dilation=d)
    # Sanity check of the output size formula.
    want = [(size - 1) * s[a] - 2 * pad[a] + d[a] * (k - 1) + op[a] + 1
            for a, (size, k) in enumerate([(p, kh), (q, kw)])]
    assert list(y.shape) == [n, co] + want, (name, y.shape, want)
    save(name, "input", x32)
    save(name, "weight", wt32)
    if b32 is not None:
        save(name, "bias", b32)
    save(name, "output", y)
    return {
        "name": name,
        "input_shape": [n, ci, p, q],
        "weight_shape": [ci, co // g, kh, kw],
        "bias": b32 is not None,
        "stride": list(s),
        "padding": list(pad),
        "output_padding": list(op),
        "dilation": list(d),
        "groups": g,
        "output_shape": list(y.shape),
    }


def main():
    names = [cs["name"] for cs in CONV_CASES + TRANSPOSE_CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    for f in os.listdir(HERE):
        if f.endswith(".npy"):
            os.remove(os.path.join(HERE, f))
    meta = {
        "conv2d_backward": [run_conv(cs) for cs in CONV_CASES],
        "conv_transpose2d": [run_transpose(cs) for cs in TRANSPOSE_CASES],
    }
    with open(os.path.join(HERE, "cases.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    print(f"wrote {len(CONV_CASES)} conv2d_backward and {len(TRANSPOSE_CASES)} "
          f"conv_transpose2d cases to {HERE} (torch {torch.__version__}, "
          f"numpy {np.__version__})")


if __name__ == "__main__":
    main()
