#!/usr/bin/env python3
"""Generate PyTorch golden files for the wgconv 2D convolution tests.

What it makes (all in the directory containing this script, tests/golden/):

  * For every case NAME:
      NAME.input.npy   float32, C order, shape [N, C, H, W]
      NAME.weight.npy  float32, C order, shape [O, C/groups, kh, kw]
      NAME.bias.npy    float32, shape [O]       (only when the case has bias)
      NAME.output.npy  float32, C order, shape [N, O, P, Q]
  * cases.json: a JSON list with one object per case:
      {"name", "input_shape", "weight_shape", "bias", "stride": [sh, sw],
       "padding": [top, bottom, left, right] | "same" | "valid",
       "dilation": [dh, dw], "groups", "output_shape"}

How the output is computed:
  Inputs, weights and biases are generated as float32 with torch.randn
  (standard normal; the large_mag/small_mag cases multiply input and weight
  by 100 / 1e-3 and the bias by the square of that, in float32), then cast
  to float64; the convolution runs in float64 with
  torch.nn.functional.conv2d and the result is cast back to float32, so the
  golden outputs are as close to exact as float32 allows.
  * Symmetric numeric padding uses conv2d's own `padding=(ph, pw)` argument.
  * Asymmetric padding is done with F.pad(x, (left, right, top, bottom))
    (zeros) followed by conv2d with padding=0.
  * "same" and "valid" use conv2d's own padding='same' / padding='valid'
    strings, so the files pin PyTorch's exact semantics: per axis the total
    padding is dilation*(k-1), split as top/left = total // 2 and
    bottom/right = total - total // 2 (the extra row/column goes at the
    bottom/right when the total is odd, i.e. even kernel with odd
    dilation); 'same' requires stride 1.

Re-run with:
    python3 tests/golden/generate.py

Generated with torch 2.15.0 (the PyPI wheel, version string 2.15.0+cu132,
executed on CPU) and numpy 2.4.6, Python 3.11.7.
It is deterministic: every case is seeded with torch.manual_seed(seed) right
before its tensors are drawn (input, then weight, then bias), where seed is
zlib.crc32 of the case name, so a case's data does not change when other
cases are added or reordered, and re-running reproduces the same files bit
for bit (on the same torch version).
"""

import json
import os
import zlib

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def case(name, n, c, h, w, o, kh, kw, *, stride=(1, 1), padding=(0, 0, 0, 0),
         dilation=(1, 1), groups=1, bias=True, scale=1.0):
    """Describe one case. padding: 4-tuple (top, bottom, left, right),
    or the string "same" / "valid"."""
    return dict(name=name, n=n, c=c, h=h, w=w, o=o, kh=kh, kw=kw,
                stride=tuple(stride), padding=padding, dilation=tuple(dilation),
                groups=groups, bias=bias, scale=scale)


def sym(ph, pw):
    return (ph, ph, pw, pw)


CASES = [
    # --- basics ---------------------------------------------------------------
    case("basic_1x1ch_k3", 1, 1, 5, 5, 1, 3, 3, bias=False),
    case("basic_k3_bias", 1, 3, 8, 8, 4, 3, 3),
    case("batch2_k3_pad1", 2, 3, 7, 9, 5, 3, 3, padding=sym(1, 1)),
    case("batch4_k3_s2_pad1_bias", 4, 2, 9, 8, 3, 3, 3, stride=(2, 2), padding=sym(1, 1)),
    case("batch3_k5_nobias", 3, 4, 10, 11, 2, 5, 5, bias=False),
    # --- 1x1 kernels ----------------------------------------------------------
    case("pointwise_k1", 2, 8, 6, 5, 6, 1, 1),
    case("pointwise_k1_s2", 1, 5, 7, 8, 3, 1, 1, stride=(2, 2), bias=False),
    # --- even / non-square kernels --------------------------------------------
    case("k2x2_s2", 1, 3, 8, 8, 4, 2, 2, stride=(2, 2)),
    case("k2x3_pad_1_0", 2, 2, 6, 7, 3, 2, 3, padding=sym(1, 0), bias=False),
    case("k4x1_s1", 1, 3, 9, 5, 2, 4, 1),
    case("k5x3_pad_2_1", 1, 2, 11, 9, 3, 5, 3, padding=sym(2, 1)),
    case("k7x7_s2_pad3", 1, 3, 20, 20, 8, 7, 7, stride=(2, 2), padding=sym(3, 3)),
    # --- strides --------------------------------------------------------------
    case("k3_s3", 1, 2, 13, 11, 3, 3, 3, stride=(3, 3)),
    case("k3_s2x3_pad1", 2, 3, 10, 13, 4, 3, 3, stride=(2, 3), padding=sym(1, 1)),
    # --- asymmetric 4-number padding -----------------------------------------
    case("k3_pad_asym_0_2_1_0", 1, 2, 6, 7, 3, 3, 3, padding=(0, 2, 1, 0)),
    case("k2x3_s2_pad_asym_1_0_2_1_bias", 2, 3, 7, 8, 4, 2, 3, stride=(2, 2),
         padding=(1, 0, 2, 1)),
    # --- 'same' and 'valid' ---------------------------------------------------
    case("same_k3", 2, 3, 7, 6, 4, 3, 3, padding="same"),
    case("same_k4x2_even", 1, 2, 7, 8, 3, 4, 2, padding="same"),
    case("same_k2x2_even_nobias", 1, 3, 5, 6, 2, 2, 2, padding="same", bias=False),
    case("same_k3_d2", 1, 2, 9, 10, 3, 3, 3, padding="same", dilation=(2, 2)),
    # dilation (2, 3) on a 4x2 kernel: H total pad 6 -> 3/3 (even kernel but
    # even dilation, so symmetric); W total pad 3 -> 1 left / 2 right.
    case("same_k4x2_d2x3", 1, 2, 9, 10, 2, 4, 2, padding="same", dilation=(2, 3)),
    case("valid_k3", 2, 3, 6, 8, 2, 3, 3, padding="valid"),
    # --- dilation -------------------------------------------------------------
    case("dil2_k3", 1, 2, 11, 12, 3, 3, 3, dilation=(2, 2)),
    case("dil3_k3_pad3_s2", 1, 3, 14, 13, 2, 3, 3, stride=(2, 2), padding=sym(3, 3),
         dilation=(3, 3)),
    case("dil_1x2_k3", 2, 2, 8, 12, 3, 3, 3, dilation=(1, 2), padding=sym(1, 2)),
    # --- groups ---------------------------------------------------------------
    case("groups2_k3", 1, 4, 7, 7, 6, 3, 3, groups=2, padding=sym(1, 1)),
    case("groups4_k3_s2_nobias", 2, 8, 9, 9, 8, 3, 3, groups=4, stride=(2, 2), bias=False),
    case("depthwise_k3_pad1", 2, 6, 8, 8, 6, 3, 3, groups=6, padding=sym(1, 1)),
    case("depthwise_mult2_k3_s2_bias", 1, 4, 9, 10, 8, 3, 3, groups=4, stride=(2, 2),
         padding=sym(1, 1)),
    case("depthwise_k5_same", 1, 3, 8, 9, 3, 5, 5, groups=3, padding="same", bias=False),
    # --- odd shapes -----------------------------------------------------------
    case("input_1x1_k1", 2, 3, 1, 1, 4, 1, 1),
    case("input_1x1_k3_pad1", 1, 2, 1, 1, 3, 3, 3, padding=sym(1, 1)),
    case("input_1xW_k1x3", 1, 3, 1, 16, 2, 1, 3),
    case("input_1xW_k3_pad1_s2", 2, 2, 1, 15, 3, 3, 3, stride=(2, 2), padding=sym(1, 1)),
    case("output_1x1_k5", 2, 3, 5, 5, 4, 5, 5),
    case("nonsquare_input_3x17_k3", 1, 2, 3, 17, 2, 3, 3, padding=sym(1, 1)),
    # --- many channels / magnitudes -------------------------------------------
    case("cin64_k3", 1, 64, 8, 8, 16, 3, 3, padding=sym(1, 1)),
    case("cin64_k1_cout32", 2, 64, 5, 6, 32, 1, 1, bias=False),
    case("large_mag_x100_k3", 1, 3, 8, 8, 4, 3, 3, padding=sym(1, 1), scale=100.0),
    case("small_mag_1e-3_k3", 1, 3, 8, 8, 4, 3, 3, padding=sym(1, 1), scale=1e-3),
]


def out_size(size, k, s, pad_total, d):
    return (size + pad_total - d * (k - 1) - 1) // s + 1


def run_case(idx, cs):
    n, c, h, w, o = cs["n"], cs["c"], cs["h"], cs["w"], cs["o"]
    kh, kw, g = cs["kh"], cs["kw"], cs["groups"]
    assert c % g == 0 and o % g == 0, cs["name"]
    seed = zlib.crc32(cs["name"].encode("utf-8"))
    torch.manual_seed(seed)
    scale = cs["scale"]
    x32 = torch.randn(n, c, h, w, dtype=torch.float32)
    wt32 = torch.randn(o, c // g, kh, kw, dtype=torch.float32)
    b32 = torch.randn(o, dtype=torch.float32) if cs["bias"] else None
    if scale != 1.0:
        # Input and weight are multiplied by `scale`. Scale in float32 so the
        # stored float32 values are exactly what the float64 convolution sees.
        x32 = (x32 * scale).to(torch.float32)
        wt32 = (wt32 * scale).to(torch.float32)
        if b32 is not None:
            # Bias gets scale**2 so it stays commensurate with the products
            # x*w (otherwise it would swamp or vanish in the output).
            b32 = (b32 * (scale * scale)).to(torch.float32)

    x = x32.double()
    wt = wt32.double()
    b = b32.double() if b32 is not None else None
    stride, dil, pad = cs["stride"], cs["dilation"], cs["padding"]

    if isinstance(pad, str):
        y = F.conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil, groups=g)
        pad_json = pad
    else:
        top, bottom, left, right = pad
        if top == bottom and left == right:
            y = F.conv2d(x, wt, b, stride=stride, padding=(top, left), dilation=dil,
                         groups=g)
        else:
            xp = F.pad(x, (left, right, top, bottom))
            y = F.conv2d(xp, wt, b, stride=stride, padding=0, dilation=dil, groups=g)
        pad_json = [top, bottom, left, right]
        # Sanity check of the output size formula.
        p = out_size(h, kh, stride[0], top + bottom, dil[0])
        q = out_size(w, kw, stride[1], left + right, dil[1])
        assert tuple(y.shape) == (n, o, p, q), (cs["name"], y.shape, (p, q))

    y32 = y.to(torch.float32)
    name = cs["name"]

    def save(suffix, t):
        arr = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))
        np.save(os.path.join(HERE, f"{name}.{suffix}.npy"), arr)

    save("input", x32)
    save("weight", wt32)
    if b32 is not None:
        save("bias", b32)
    save("output", y32)

    return {
        "name": name,
        "input_shape": [n, c, h, w],
        "weight_shape": [o, c // g, kh, kw],
        "bias": b32 is not None,
        "stride": list(stride),
        "padding": pad_json,
        "dilation": list(dil),
        "groups": g,
        "output_shape": list(y32.shape),
    }


def main():
    names = [cs["name"] for cs in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    # Remove stale .npy files from earlier runs so the folder matches CASES.
    for f in os.listdir(HERE):
        if f.endswith(".npy"):
            os.remove(os.path.join(HERE, f))
    meta = [run_case(i, cs) for i, cs in enumerate(CASES)]
    with open(os.path.join(HERE, "cases.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    print(f"wrote {len(meta)} cases to {HERE} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
