//! The one error type of the crate.
//!
//! Shape and parameter messages are modelled on PyTorch's, so a user moving a model from
//! `torch.nn.Conv2d` to wgconv sees familiar wording with the offending values in it.

use std::path::PathBuf;

/// Everything that can go wrong in wgconv, each variant naming the values involved.
///
/// Its `Debug` form is its message, so `fn main() -> wgconv::Result<()>` prints the message (with
/// the variant's fields still there to match on).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input's rank does not fit the operation (`conv2d` takes `[N, C, H, W]` or `[C, H, W]`).
    #[error("Expected {expected} input to {op}, but got input of size: {shape:?}")]
    InputRank {
        /// The operation, e.g. `"conv1d"`.
        op: &'static str,
        /// The ranks it takes, e.g. `"2D (unbatched) or 3D (batched)"`.
        expected: String,
        /// The shape given.
        shape: Vec<usize>,
    },

    /// The weight's rank does not fit the operation (`conv2d` takes `[O, C/groups, kh, kw]`).
    #[error("expected {expected} to {op}, but got weight of size {shape:?}")]
    WeightRank {
        /// The operation, e.g. `"conv1d"`.
        op: &'static str,
        /// The layout it takes, e.g. `"3D weight [O, C/groups, k]"`.
        expected: &'static str,
        /// The shape given.
        shape: Vec<usize>,
    },

    /// A convolution over a number of spatial axes other than 1, 2 or 3 (`ConvNdParams<N>` with
    /// another `N`).
    #[error("convolutions have 1, 2 or 3 spatial dimensions, but {dims} were asked for")]
    SpatialDims {
        /// The `N` asked for.
        dims: usize,
    },

    /// A per-axis value of the command line has a count of numbers the convolution's axes do not
    /// take.
    #[error("--{what} of a {dims}-D convolution takes {allowed}, but got {got} numbers")]
    AxisCount {
        /// `"stride"`, `"padding"` or `"dilation"`.
        what: &'static str,
        /// The convolution's spatial axes.
        dims: usize,
        /// The counts it takes, e.g. `"1 or 2 numbers"`.
        allowed: String,
        /// The count given.
        got: usize,
    },

    /// A dimension that must be positive is zero (only an input's batch may be empty).
    #[error(
        "expected non-zero size for every dimension of {what}{}, but got {what} of size {shape:?}",
        except_batch(what)
    )]
    EmptyDimension {
        /// `"input"` or `"weight"`.
        what: &'static str,
        /// The shape given.
        shape: Vec<usize>,
    },

    /// Input channels differ from `weight[1] * groups`.
    #[error("Given groups={groups}, weight of size {weight:?}, expected input{input:?} to have {expected} channels, but got {got} channels instead")]
    ChannelMismatch {
        /// The groups parameter.
        groups: usize,
        /// Weight shape.
        weight: Vec<usize>,
        /// Input shape.
        input: Vec<usize>,
        /// `weight[1] * groups`.
        expected: usize,
        /// `input[1]`.
        got: usize,
    },

    /// Input channels are not divisible by `groups`.
    #[error("Given groups={groups}, expected input{input:?} to have a number of channels divisible by {groups}, but got {channels} channels instead")]
    InChannelsNotDivisible {
        /// The groups parameter.
        groups: usize,
        /// Input shape.
        input: Vec<usize>,
        /// `input[1]`.
        channels: usize,
    },

    /// Output channels (`weight[0]`) are not divisible by `groups`.
    #[error("Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but got weight of size {weight:?} instead")]
    OutChannelsNotDivisible {
        /// The groups parameter.
        groups: usize,
        /// Weight shape.
        weight: Vec<usize>,
    },

    /// Bias is not a vector of `weight[0]` elements.
    #[error("Given weight of size {weight:?}, expected bias to be 1-dimensional with {expected} elements, but got bias of size {got:?} instead")]
    BiasShape {
        /// Weight shape.
        weight: Vec<usize>,
        /// `weight[0]`.
        expected: usize,
        /// The bias shape given.
        got: Vec<usize>,
    },

    /// The dilated kernel does not fit in the padded input.
    #[error("Calculated padded input size per channel: ({}). Kernel size: ({}). Kernel size can't be greater than actual input size", by(padded), by(kernel))]
    KernelTooLarge {
        /// Input length plus padding per axis.
        padded: Vec<usize>,
        /// `dilation * (k - 1) + 1` per axis.
        kernel: Vec<usize>,
    },

    /// Stride, dilation or groups is zero.
    #[error("non-positive {name} is not supported: got {name}={value}")]
    NonPositive {
        /// `"stride"`, `"dilation"` or `"groups"`.
        name: &'static str,
        /// The value given, e.g. `(0, 1)` or `0`.
        value: String,
    },

    /// A transposed convolution's output padding is not smaller than its stride or dilation
    /// (per axis in axis order; a conv_transpose1d's as the 2D problem PyTorch runs it as, its
    /// height 0 or 1).
    #[error("output padding must be smaller than either stride or dilation, but got {}", axis_report(&[("output_padding", output_padding), ("stride", stride), ("dilation", dilation)]))]
    OutputPaddingTooLarge {
        /// Per axis, e.g. `[oph, opw]`.
        output_padding: Vec<usize>,
        /// Per axis.
        stride: Vec<usize>,
        /// Per axis.
        dilation: Vec<usize>,
    },

    /// A transposed convolution's input channels differ from `weight[0]`.
    #[error("Given transposed=1, weight of size {weight:?}, expected input{input:?} to have {expected} channels, but got {got} channels instead")]
    TransposedChannelMismatch {
        /// Weight shape `[Ci, Co/groups, kh, kw]`.
        weight: Vec<usize>,
        /// Input shape.
        input: Vec<usize>,
        /// `weight[0]`.
        expected: usize,
        /// `input[1]`.
        got: usize,
    },

    /// A transposed convolution's bias is not a vector of `weight[1] * groups` elements.
    #[error("Given transposed=1, weight of size {weight:?}, expected bias to be 1-dimensional with {expected} elements, but got bias of size {got:?} instead")]
    TransposedBiasShape {
        /// Weight shape.
        weight: Vec<usize>,
        /// `weight[1] * groups`.
        expected: usize,
        /// The bias shape given.
        got: Vec<usize>,
    },

    /// A transposed convolution's padding removes the whole output.
    #[error("Given input size per channel: ({}). Calculated output size per channel: ({}). Output size is too small", by_sep(input, " x "), by_sep(output, " x "))]
    TransposedOutputTooSmall {
        /// The input's size per axis, e.g. `[P, Q]` (a conv_transpose1d's `[1, L]`).
        input: Vec<usize>,
        /// The computed output size per axis, some zero or negative.
        output: Vec<i128>,
    },

    /// `padding = Same` with a stride other than 1, as PyTorch refuses it.
    #[error(
        "padding='same' is not supported for strided convolutions: got stride={}",
        tuple(stride)
    )]
    SameWithStride {
        /// The stride per axis.
        stride: Vec<usize>,
    },

    /// Reflect padding as long as the input along an axis (PyTorch needs it shorter), in
    /// PyTorch's words: `argument` is the pair's position in `F.pad`'s list (the last axis's
    /// pair is #4), `dim` the axis in the input as given.
    #[error(
        "Argument #{argument}: Padding size should be less than the corresponding input \
         dimension, but got: padding ({}, {}) at dimension {dim} of input {input:?}",
        padding[0],
        padding[1]
    )]
    ReflectPaddingTooLarge {
        /// `F.pad`'s argument number: 4 for the last axis, 6 for the one before, 8 for the first.
        argument: usize,
        /// `[before, after]` along the axis.
        padding: [usize; 2],
        /// The axis, counting every dimension of the input as given.
        dim: usize,
        /// The input's shape as given.
        input: Vec<usize>,
    },

    /// Circular padding longer than the input along an axis: PyTorch's message, then the values.
    #[error(
        "Padding value causes wrapping around more than once: padding ({}, {}) at dimension \
         {dim} of input {input:?}",
        padding[0],
        padding[1]
    )]
    CircularPaddingTooLarge {
        /// `[before, after]` along the axis.
        padding: [usize; 2],
        /// The axis, counting every dimension of the input as given.
        dim: usize,
        /// The input's shape as given.
        input: Vec<usize>,
    },

    /// A host buffer's length does not match the shape it comes with.
    #[error("{what} of shape {shape:?} needs {expected} elements, but {got} were given")]
    DataLength {
        /// Which tensor.
        what: &'static str,
        /// The shape given.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Length of the data.
        got: usize,
    },

    /// A size overflows the index arithmetic of the shaders or of the host.
    #[error("{what} is too large: {value} exceeds {limit} ({why})")]
    TooLarge {
        /// What is too large, e.g. `"output element count"`.
        what: String,
        /// Its value.
        value: u64,
        /// The limit.
        limit: u64,
        /// Which limit, e.g. `"u32 indices in the shader"`.
        why: &'static str,
    },

    /// The matrix-product form of a convolution needs a 1x1 kernel.
    #[error("the 1x1 (matrix-product) convolution needs a kernel of size 1x1, but got weight of size {weight:?}")]
    NotPointwise {
        /// The weight shape given.
        weight: Vec<usize>,
    },

    /// A size computed from the shapes overflows the host's `usize`.
    #[error("the {what} overflows this host's address space")]
    SizeOverflow {
        /// Which size.
        what: String,
    },

    /// A buffer would exceed one of the device's limits.
    #[error("{what} needs {bytes} bytes, more than the device's {limit_name} of {limit} bytes")]
    DeviceLimit {
        /// Which buffer.
        what: String,
        /// Bytes it needs.
        bytes: u64,
        /// The wgpu limit's name, e.g. `max_storage_buffer_binding_size`.
        limit_name: &'static str,
        /// The limit's value on this device.
        limit: u64,
    },

    /// A [`GpuTensor`](crate::GpuTensor) was used with an engine that did not create it.
    #[error("{what} belongs to engine #{tensor_engine}, but was passed to engine #{engine}; download it and upload it to this engine")]
    ForeignTensor {
        /// Which argument.
        what: &'static str,
        /// Engine id of the tensor.
        tensor_engine: u64,
        /// Engine id of the callee.
        engine: u64,
    },

    /// An output tensor given to `conv2d_into` has the wrong shape.
    #[error("output tensor has shape {got:?}, but this convolution produces {expected:?}")]
    OutputShape {
        /// Shape the convolution produces.
        expected: Vec<usize>,
        /// Shape of the tensor given.
        got: Vec<usize>,
    },

    /// The residual added in a fused epilogue does not have the output's shape.
    #[error("residual has shape {got:?}, but the convolution's output has shape {expected:?} (the residual is added element by element before the activation)")]
    ResidualShape {
        /// The convolution's output shape.
        expected: Vec<usize>,
        /// Shape of the residual given.
        got: Vec<usize>,
    },

    /// An activation's parameter is not a number it can use.
    #[error("activation {activation}: {parameter} must be {}, but got {value}", if *parameter == "slope" { "a finite number" } else { "a number (not NaN)" })]
    ActivationParameter {
        /// The activation's name (`leaky-relu`, `clamp`).
        activation: &'static str,
        /// The parameter (`slope`, `min`, `max`).
        parameter: &'static str,
        /// Its value as given.
        value: String,
    },

    /// A backward pass of the convolution alone was asked for a convolution with a fused
    /// activation, whose gradient needs the pre-activation values.
    #[error("{op} differentiates the convolution alone, but the parameters have the fused activation {activation}: the layer types (wgconv::layer) and cpu::reference::conv_nd_fused_backward_f64 differentiate through the epilogue")]
    EpilogueGradient {
        /// The backward call.
        op: &'static str,
        /// The activation it was given.
        activation: String,
    },

    /// The gradient given for a convolution's output does not have the output's shape.
    #[error("Mismatch in shape: grad_output has a shape of {got:?} and the convolution's output has a shape of {expected:?}")]
    GradOutputShape {
        /// The convolution's output shape `[N, O, P, Q]`.
        expected: Vec<usize>,
        /// Shape of the gradient given.
        got: Vec<usize>,
    },

    /// Packed weights were used with a different `groups` than they were packed for.
    #[error(
        "weights were packed for groups={packed}, but the convolution asks for groups={requested}"
    )]
    PackedGroups {
        /// Groups at packing time.
        packed: usize,
        /// Groups of the call.
        requested: usize,
    },

    /// A forced algorithm does not cover this convolution.
    #[error("the {algorithm} algorithm cannot run this convolution: {reason}")]
    UnsupportedAlgorithm {
        /// The algorithm asked for.
        algorithm: &'static str,
        /// Why not.
        reason: String,
    },

    /// No adapter matched the request.
    #[error("no GPU adapter found ({request}). Adapters seen: [{seen}]. On a headless Linux box install a software adapter: `apt-get install -y mesa-vulkan-drivers` (lavapipe, WGPU_BACKEND=vulkan) or Mesa's EGL/llvmpipe (WGPU_BACKEND=gl)")]
    NoAdapter {
        /// What was asked for (backends, adapter name).
        request: String,
        /// Every adapter wgpu enumerated, possibly none.
        seen: String,
    },

    /// The adapter refused to create a device.
    #[error("the adapter '{adapter}' could not create a device: {message}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        message: String,
    },

    /// wgpu reported a validation error (a bug in wgconv, or a limit it did not foresee).
    #[error("wgpu validation error during {during}: {message}")]
    Validation {
        /// What wgconv was doing.
        during: String,
        /// wgpu's message.
        message: String,
    },

    /// The device ran out of memory.
    #[error("GPU out of memory during {during}")]
    OutOfMemory {
        /// What wgconv was doing.
        during: String,
    },

    /// The device was lost (driver reset, `destroy`, ...); create a new [`Engine`](crate::Engine).
    #[error("the GPU device was lost: {reason}; create a new Engine")]
    DeviceLost {
        /// wgpu's reason.
        reason: String,
    },

    /// Waiting for the GPU, or for the driver to build a pipeline, took longer than the engine's
    /// bound (`EngineOptions::wait_timeout`, or `pipeline_timeout` for a build whose fallback
    /// kernel did not build either).
    #[error("waited {waited_ms} ms for the GPU during {during} without completion (the engine's {bound})")]
    Timeout {
        /// What wgconv was waiting for.
        during: String,
        /// The bound in milliseconds.
        waited_ms: u128,
        /// Which bound: `wait bound` or `pipeline-build bound`.
        bound: &'static str,
    },

    /// A kernel's pipeline did not build on this adapter earlier (past the pipeline-build bound,
    /// or refused by the driver), as remembered by the engine or its tuning cache.
    #[error("the {kernel} pipeline did not build on this adapter before ({reason}); it is not built again")]
    PipelineBuild {
        /// The kernel's name.
        kernel: String,
        /// Why it failed then.
        reason: String,
    },

    /// Mapping a readback buffer failed.
    #[error("reading back from the GPU failed: {message}")]
    Readback {
        /// wgpu's message.
        message: String,
    },

    /// A `.npy` file could not be read or written.
    #[error("{path}: {message}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// An image file could not be read or written.
    #[error("{path}: {message}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A file system operation failed: `cannot read x.npy: No such file or directory (os error 2)`.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done to the file: `"read"`, `"write"`, ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error, or what is wrong with the path (`folder nodir does not exist`).
        source: std::io::Error,
    },

    /// Host memory for a tensor or buffer whose size comes from the input cannot be had: the
    /// need exceeds what the machine (or the process's cgroup) has available, or the allocator
    /// refused it (an address-space limit such as `ulimit -v`).
    #[error("{what} needs {} of host memory, but {}", bytes_text(*bytes), available_text(available))]
    HostMemory {
        /// What the memory is for, with its shape.
        what: String,
        /// Bytes needed.
        bytes: u64,
        /// Bytes available when the need was checked; `None` when the allocator refused.
        available: Option<u64>,
    },

    /// Training diverged: the loss or the parameters became NaN or infinite.
    #[error("training diverged at step {step} with learning rate {lr:?}: {what}; try a smaller learning rate")]
    Diverged {
        /// The 1-based step at which it was seen.
        step: usize,
        /// The learning rate used.
        lr: f32,
        /// What is not finite, with its value: `the loss is NaN`.
        what: String,
    },

    /// An environment variable that wgconv honours holds a value it does not understand.
    #[error("{name}={value:?} is not understood; expected {expected}")]
    Environment {
        /// The variable, e.g. `WGPU_POWER_PREF`.
        name: &'static str,
        /// Its value.
        value: String,
        /// The values it takes.
        expected: &'static str,
    },

    /// Two tensors that must have the same shape (a gradient and its parameter, a prediction and
    /// its target, a gradient and the output it belongs to) do not.
    #[error("{what} has shape {got:?}, but {expected:?} was expected")]
    ShapeMismatch {
        /// Which tensor, e.g. `"grad_output"`.
        what: &'static str,
        /// The shape it must have.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },

    /// A scalar parameter (learning rate, ...) is NaN or infinite.
    #[error("{name} must be finite, got {value}")]
    NonFinite {
        /// Which parameter.
        name: &'static str,
        /// The value given.
        value: f32,
    },
}

/// " except the batch" for an input (whose batch may be empty), nothing for a weight.
/// Values as Python prints a tuple: `(2,)`, `(2, 1)`.
pub(crate) fn tuple(values: &[usize]) -> String {
    match values {
        [one] => format!("({one},)"),
        _ => format!("({})", by_sep(values, ", ")),
    }
}

fn by_sep<T: ToString>(values: &[T], sep: &str) -> String {
    let parts: Vec<String> = values.iter().map(T::to_string).collect();
    parts.join(sep)
}

/// PyTorch's per-axis report of named values: `output_padding_height: 0 output_padding_width: 2
/// stride_height: 2 ...` (with `_depth` first for three axes).
fn axis_report(values: &[(&str, &Vec<usize>)]) -> String {
    let mut parts = Vec::new();
    for (name, per_axis) in values {
        let axes = ["depth", "height", "width"];
        let axes = &axes[axes.len().saturating_sub(per_axis.len())..];
        for (axis, v) in axes.iter().zip(per_axis.iter()) {
            parts.push(format!("{name}_{axis}: {v}"));
        }
    }
    parts.join(" ")
}

/// Sizes as PyTorch prints them per channel: `5`, `6 x 7`.
fn by(sizes: &[usize]) -> String {
    by_sep(sizes, " x ")
}

fn except_batch(what: &str) -> &'static str {
    if what == "input" {
        " except the batch"
    } else {
        ""
    }
}

/// The second half of a [`Error::HostMemory`] message.
fn available_text(available: &Option<u64>) -> String {
    match available {
        Some(bytes) => format!(
            "only {} are available (MemAvailable, the cgroup's limit or `ulimit -v`)",
            bytes_text(*bytes)
        ),
        None => "the allocator refused it (an address-space limit such as `ulimit -v`?)".into(),
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// [`Error::Io`] for `action` ("read", "write", ...) on `path`.
    pub fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `Result` with wgconv's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A byte count for people: `28.8 GB (28800960008 bytes)`, or `512 bytes` below a kilobyte.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")];
    UNITS
        .iter()
        .find(|(scale, _)| bytes as f64 >= *scale)
        .map_or_else(
            || format!("{bytes} bytes"),
            |(scale, unit)| format!("{:.1} {unit} ({bytes} bytes)", bytes as f64 / scale),
        )
}
