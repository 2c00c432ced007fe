//! Planning the backward passes: which strategy computes a transposed convolution (the input
//! gradient), and how the weight and bias gradients' split reductions are chunked.
//!
//! - Stride 1 runs as a forward convolution of the upstream gradient with the weights turned by
//!   180 degrees and channels swapped per group, so it gets the fast forward kernels and their
//!   splitting; larger strides do the same over the gradient spread out with zeros between its
//!   values; padding beyond the kernel's reach runs the gather kernel `conv2d_grad_input`.
//! - The sums of the weight and bias gradients run as chunks of output rows in parallel, then
//!   the chunks added in order: no atomics, results independent of scheduling.

use crate::error::{Error, Result};
use crate::gpu::kernels::{ConvUniforms, Kernel};
use crate::gpu::plan::dispatch::{base_uniforms, flat, index_u32, Plan, PlanLimits};
use crate::gpu::plan::split::{batch_split, check_bindings};
use crate::spec::{Conv2dParams, Conv2dShape, ConvTranspose2dShape, Padding};

/// Invocations a split reduction aims for: enough to fill the device, few enough that the
/// partial sums stay small. CPU adapters run a workgroup per task, so fewer suffice there.
fn reduction_target(cpu_adapter: bool) -> usize {
    if cpu_adapter {
        4096
    } else {
        65536
    }
}

/// Chunks for a split reduction of `rows` rows into `outputs` sums: `(chunks, rows per chunk)`.
pub fn chunking(rows: usize, outputs: usize, cpu_adapter: bool) -> (usize, usize) {
    let chunks = (reduction_target(cpu_adapter) / outputs.max(1)).clamp(1, rows.max(1));
    let chunk_len = rows.div_ceil(chunks).max(1);
    (rows.div_ceil(chunk_len).max(1), chunk_len)
}

/// The uniform block the gather kernel reads: that of the forward convolution whose input
/// gradient `t` is (input `t`'s output, `t`'s weight, output `t`'s input). The kernel reads
/// neither the bottom nor the right padding, which `t` does not keep: they are set to the
/// kernel's reach (any valid forward problem will do), and the output sizes to `t`'s own.
fn transposed_uniforms(t: &ConvTranspose2dShape) -> Result<ConvUniforms> {
    let reach_h = t.dilation_h * (t.kernel_h - 1);
    let reach_w = t.dilation_w * (t.kernel_w - 1);
    let params = Conv2dParams {
        stride: (t.stride_h, t.stride_w),
        padding: Padding::explicit(t.pad_top, reach_h, t.pad_left, reach_w),
        dilation: (t.dilation_h, t.dilation_w),
        groups: t.groups,
        ..Conv2dParams::default()
    };
    let forward = Conv2dShape::new(&t.output_shape(), &t.weight_shape(), None, &params)?;
    let mut uniforms = base_uniforms(&forward)?;
    uniforms.out_h = index_u32("input height", t.in_h)?;
    uniforms.out_w = index_u32("input width", t.in_w)?;
    uniforms.has_bias = u32::from(t.has_bias);
    Ok(uniforms)
}

/// Checks the backward kernels' index arithmetic for `t` (in the forward convolution's terms:
/// padded extents and receptive-field reach as i32, element counts as u32), so that no value
/// wraps in a shader.
///
/// # Errors
/// [`Error::TooLarge`] naming the first value that does not fit.
pub fn check_indexing(t: &ConvTranspose2dShape) -> Result<()> {
    let why = "input coordinates are i32 in the shaders";
    let reach = |k: usize, d: usize| (k as u128 - 1) * d as u128;
    let field = |n: usize, s: usize, k: usize, d: usize| (n as u128 - 1) * s as u128 + reach(k, d);
    for (what, value) in [
        ("padded height", t.out_h as u128 + t.pad_top as u128),
        ("padded width", t.out_w as u128 + t.pad_left as u128),
        ("kernel reach in height", reach(t.kernel_h, t.dilation_h)),
        ("kernel reach in width", reach(t.kernel_w, t.dilation_w)),
        (
            "receptive field reach in height",
            field(t.in_h, t.stride_h, t.kernel_h, t.dilation_h),
        ),
        (
            "receptive field reach in width",
            field(t.in_w, t.stride_w, t.kernel_w, t.dilation_w),
        ),
    ] {
        if value > i32::MAX as u128 {
            return Err(Error::TooLarge {
                what: what.to_string(),
                value: u64::try_from(value).unwrap_or(u64::MAX),
                limit: i32::MAX as u64,
                why,
            });
        }
    }
    for (what, len) in [
        ("input element count", t.input_len()),
        ("weight element count", t.weight_len()),
        ("output element count", t.output_len()),
    ] {
        index_u32(what, len)?;
    }
    Ok(())
}

/// How a transposed convolution runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transposed {
    /// The output is empty: nothing runs.
    Empty,
    /// Too large for one binding: pieces of this many images, each planned on its own.
    BatchPieces(usize),
    /// Strides above 1: the input spread out with zeros (`plan`, into a tensor of `shape`), then
    /// the stride-1 problem `unit` over it (sh*sw times the multiply-adds, on kernels tens of
    /// times faster than the gather).
    Spread {
        /// The zero-spreading dispatch.
        plan: Plan,
        /// The spread input `[N, Ci, (P-1)*sh+1, (Q-1)*sw+1]`.
        shape: [usize; 4],
        /// The stride-1 transposed convolution over the spread input.
        unit: ConvTranspose2dShape,
    },
    /// Stride 1: the weights flipped (`plan`, into a tensor of `shape`), then a forward
    /// convolution of the input with them and `params`.
    Flipped {
        /// The weight-flipping dispatch.
        plan: Plan,
        /// The flipped weight `[Co, Ci/groups, kh, kw]`.
        shape: [usize; 4],
        /// The forward convolution's parameters.
        params: Conv2dParams,
    },
    /// The gather kernel, one invocation per output element.
    Gather(Plan),
}

/// The strategy for the transposed convolution `t` on a device with `limits`.
///
/// # Errors
/// [`Error::TooLarge`] or [`Error::DeviceLimit`] when a tensor or an index does not fit.
pub fn transposed(t: &ConvTranspose2dShape, limits: &PlanLimits) -> Result<Transposed> {
    if t.output_len() == 0 {
        return Ok(Transposed::Empty);
    }
    let per_image = [
        ("input", t.input_len() / t.batch),
        ("output", t.output_len() / t.batch),
    ];
    if let Some(images) = batch_split(t.batch, &per_image, limits) {
        return Ok(Transposed::BatchPieces(images));
    }
    check_indexing(t)?;
    // Stride 1: a forward convolution of the input with flipped weights, padded by the
    // kernel's reach less the transposed padding (when that is not negative).
    let reach_h = t.dilation_h * (t.kernel_h - 1);
    let reach_w = t.dilation_w * (t.kernel_w - 1);
    let spread = ((t.in_h - 1) * t.stride_h + 1, (t.in_w - 1) * t.stride_w + 1);
    let fits_flipped = t.out_h + t.pad_top >= spread.0
        && t.out_w + t.pad_left >= spread.1
        && t.pad_top <= reach_h
        && t.pad_left <= reach_w;
    // Fewer than 4 output channels per group leave the forward GEMM kernels idle, and the
    // direct kernel pays for every zero; the gather is faster there.
    let gemm_sized = t.out_channels / t.groups >= 4;
    let spread_shape = [t.batch, t.in_channels, spread.0, spread.1];
    // The spread-out gradient is one tensor for one kernel: it must fit one binding.
    let spread_len = spread_shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let spread_fits = spread_len.is_some_and(|len| {
        check_bindings(&[("spread input", len)], limits).is_ok()
            && flat(Kernel::ZeroUpsample, len, ConvUniforms::default(), limits).is_ok()
    });
    if let (false, true, true, Some(len)) = (
        (t.stride_h, t.stride_w) == (1, 1),
        fits_flipped,
        gemm_sized,
        spread_len.filter(|_| spread_fits),
    ) {
        let uniforms = ConvUniforms {
            batch: index_u32("batch", t.batch)?,
            out_channels: index_u32("input channels", t.in_channels)?,
            out_h: index_u32("input height", t.in_h)?,
            out_w: index_u32("input width", t.in_w)?,
            stride_h: index_u32("stride_h", t.stride_h)?,
            stride_w: index_u32("stride_w", t.stride_w)?,
            ..ConvUniforms::default()
        };
        check_bindings(&[("input", t.input_len()), ("spread input", len)], limits)?;
        let plan = flat(Kernel::ZeroUpsample, len, uniforms, limits)?;
        let unit = ConvTranspose2dShape {
            in_h: spread.0,
            in_w: spread.1,
            stride_h: 1,
            stride_w: 1,
            ..*t
        };
        return Ok(Transposed::Spread {
            plan,
            shape: spread_shape,
            unit,
        });
    }
    let bottom = (t.out_h + t.pad_top).checked_sub(t.in_h);
    let right = (t.out_w + t.pad_left).checked_sub(t.in_w);
    if let ((1, 1), Some(bottom), Some(right), true, true) = (
        (t.stride_h, t.stride_w),
        bottom,
        right,
        t.pad_top <= reach_h,
        t.pad_left <= reach_w,
    ) {
        let shape = [
            t.out_channels,
            t.in_channels / t.groups,
            t.kernel_h,
            t.kernel_w,
        ];
        let plan = flat(
            Kernel::FlipWeights,
            shape.iter().product(),
            transposed_uniforms(t)?,
            limits,
        )?;
        check_bindings(&[("weight", t.weight_len())], limits)?;
        let params = Conv2dParams {
            stride: (1, 1),
            padding: Padding::explicit(reach_h - t.pad_top, bottom, reach_w - t.pad_left, right),
            dilation: (t.dilation_h, t.dilation_w),
            groups: t.groups,
            ..Conv2dParams::default()
        };
        return Ok(Transposed::Flipped {
            plan,
            shape,
            params,
        });
    }
    check_bindings(
        &[
            ("input", t.input_len()),
            ("weight", t.weight_len()),
            ("output", t.output_len()),
        ],
        limits,
    )?;
    let plan = flat(
        Kernel::GradInput,
        t.output_len(),
        transposed_uniforms(t)?,
        limits,
    )?;
    Ok(Transposed::Gather(plan))
}

/// The dispatch that turns the kernel of a weight of `weight_shape` (`[O, C/groups, *kernel]`)
/// by 180 degrees, for true convolution: the flipping kernel with one group per `[*kernel]`
/// block and the block as one row (`kernel_h` 1, `kernel_w` its length), so it swaps no channels
/// and reverses each block, which reverses every spatial axis at once.
///
/// # Errors
/// [`Error::TooLarge`] or [`Error::DeviceLimit`] when the weight does not fit one binding.
pub fn turned_kernel(weight_shape: &[usize], limits: &PlanLimits) -> Result<Plan> {
    let blocks = weight_shape.iter().take(2).product::<usize>();
    let taps = weight_shape.iter().skip(2).product::<usize>();
    let len = blocks
        .checked_mul(taps)
        .ok_or_else(|| Error::SizeOverflow {
            what: format!("the weight {weight_shape:?}"),
        })?;
    check_bindings(&[("weight", len)], limits)?;
    let blocks = index_u32("weight channels", blocks)?;
    let uniforms = ConvUniforms {
        in_channels: blocks,
        out_channels: blocks,
        groups: blocks,
        kernel_h: 1,
        kernel_w: index_u32("kernel taps", taps)?,
        ..ConvUniforms::default()
    };
    flat(Kernel::FlipWeights, len, uniforms, limits)
}
