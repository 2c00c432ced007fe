#!/usr/bin/env python3
"""Generate PyTorch golden files for wgconv's transposed convolutions over 1 and 3 axes.

What it makes (all in the directory containing this script, tests/golden_transposed_nd/):

  * For every case NAME:
      NAME.input.npy   float32, C order, [N, Ci, *S] (or unbatched [Ci, *S])
      NAME.weight.npy  float32, [Ci, Co/groups, *k]
      NAME.bias.npy    float32, [Co]   (only when the case has bias)
      NAME.output.npy  float32, [N, Co, *out] (or [Co, *out]):
                       F.conv_transpose1d / F.conv_transpose3d(input, weight, bias, ...)
  * cases.json: a list of {"name", "dims": 1 | 3, "input_shape", "weight_shape", "bias",
    "stride", "padding", "output_padding", "dilation" (one number per axis each), "groups",
    "output_shape"}.

How the values are computed: input, weight and bias are drawn as float32 with torch.randn
(standard normal), in that order, after torch.manual_seed(1000 + the case's index), then cast
to float64; the transposed convolution runs in float64 and is rounded to float32 once, so the
golden outputs are as close to exact as float32 allows.

Re-run with:
    python3 tests/golden_transposed_nd/generate.py

Generated with torch 2.15.0 (the PyPI wheel, run on CPU) and numpy, Python 3. Deterministic.
"""

import json
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def case(name, dims, batch, ci, spatial, co, k, stride=1, padding=0, output_padding=0,
         dilation=1, groups=1, bias=True):
    axes = lambda v: list(v) if isinstance(v, (list, tuple)) else [v] * dims
    return dict(name=name, dims=dims, batch=batch, ci=ci, spatial=axes(spatial), co=co,
                k=axes(k), stride=axes(stride), padding=axes(padding),
                output_padding=axes(output_padding), dilation=axes(dilation), groups=groups,
                bias=bias)


CASES = [
    # ---- conv_transpose1d ----
    case("t1d_k3", 1, 2, 3, 7, 4, 3),
    case("t1d_s2_p1_op1", 1, 1, 4, 9, 2, 3, stride=2, padding=1, output_padding=1),
    case("t1d_s4_k8_audio", 1, 1, 8, 25, 4, 8, stride=4, padding=2),
    case("t1d_d3_op2_past_stride", 1, 2, 2, 6, 3, 3, stride=2, dilation=3, output_padding=2),
    case("t1d_g2_nobias", 1, 2, 4, 8, 6, 4, stride=3, groups=2, bias=False),
    case("t1d_depthwise", 1, 1, 5, 11, 5, 5, padding=2, groups=5),
    case("t1d_unbatched", 1, None, 3, 10, 2, 2, stride=2),
    case("t1d_L1", 1, 3, 2, 1, 3, 4, stride=2, padding=1),
    case("t1d_pad_heavy", 1, 1, 2, 4, 2, 3, padding=2),
    case("t1d_cin16", 1, 2, 16, 12, 8, 3, stride=2, padding=1, output_padding=1),
    # ---- conv_transpose3d ----
    case("t3d_k3", 3, 1, 2, (3, 4, 5), 3, 3),
    case("t3d_s2_p1_op1", 3, 2, 3, (3, 3, 4), 2, 3, stride=2, padding=1, output_padding=1),
    case("t3d_anisotropic", 3, 1, 4, (2, 5, 3), 2, (2, 3, 1), stride=(1, 2, 3),
         padding=(0, 1, 0), output_padding=(0, 1, 2)),
    case("t3d_d2_op_past_stride", 3, 1, 2, (3, 3, 3), 2, 2, stride=1, dilation=(2, 1, 3),
         output_padding=(1, 0, 2)),
    case("t3d_g2_nobias", 3, 2, 4, (2, 3, 3), 4, (3, 2, 2), stride=2, groups=2, bias=False),
    case("t3d_depthwise", 3, 1, 3, (3, 4, 4), 3, 3, padding=1, groups=3),
    case("t3d_unbatched", 3, None, 2, (2, 3, 4), 3, 2, stride=2, padding=(1, 0, 1)),
    case("t3d_video_16_8", 3, 1, 16, (2, 7, 7), 8, (3, 3, 3), stride=(1, 2, 2), padding=1,
         output_padding=(0, 1, 1)),
    case("t3d_k1", 3, 2, 5, (2, 2, 3), 3, 1, stride=2),
    case("t3d_pad_heavy", 3, 1, 2, (4, 4, 4), 2, 3, padding=(2, 1, 2)),
]


def main():
    meta = []
    for index, c in enumerate(CASES):
        torch.manual_seed(1000 + index)
        dims, name = c["dims"], c["name"]
        shape_in = [c["ci"]] + c["spatial"]
        if c["batch"] is not None:
            shape_in = [c["batch"]] + shape_in
        shape_w = [c["ci"], c["co"] // c["groups"]] + c["k"]
        x = torch.randn(shape_in, dtype=torch.float32)
        w = torch.randn(shape_w, dtype=torch.float32)
        b = torch.randn(c["co"], dtype=torch.float32) if c["bias"] else None
        f = F.conv_transpose1d if dims == 1 else F.conv_transpose3d
        y = f(x.double(), w.double(), None if b is None else b.double(), stride=c["stride"],
              padding=c["padding"], output_padding=c["output_padding"], groups=c["groups"],
              dilation=c["dilation"])
        save = lambda part, t: np.save(os.path.join(HERE, f"{name}.{part}.npy"),
                                       t.detach().to(torch.float32).numpy())
        save("input", x)
        save("weight", w)
        if b is not None:
            save("bias", b)
        save("output", y)
        meta.append(dict(name=name, dims=dims, input_shape=shape_in, weight_shape=shape_w,
                         bias=c["bias"], stride=c["stride"], padding=c["padding"],
                         output_padding=c["output_padding"], dilation=c["dilation"],
                         groups=c["groups"], output_shape=list(y.shape)))
    with open(os.path.join(HERE, "cases.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    print(f"wrote {len(meta)} cases")


if __name__ == "__main__":
    main()
