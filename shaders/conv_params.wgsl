// The uniform block every wgconv compute shader reads, prepended to each shader's text at load
// time (src/gpu/kernels.rs) so there is one definition.
// Twin: `ConvUniforms` in src/gpu/kernels.rs (same field order, all u32).
struct Params {
    batch: u32,
    in_channels: u32,
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    kernel_h: u32,
    kernel_w: u32,
    groups: u32,
    out_h: u32,
    out_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    dilation_h: u32,
    dilation_w: u32,
    has_bias: u32,
    // Work items of a flattened dispatch (outputs, 4x4 tiles or packed elements).
    work_items: u32,
    // Invocations per dispatch row of a flattened dispatch: num_workgroups.x * workgroup size.
    row_stride: u32,
    // Split reductions (gradients, losses): rows or elements per chunk, and their total.
    chunk_len: u32,
    reduce_len: u32,
    // A kernel's f32 operand as bits (the SGD learning rate).
    scalar_bits: u32,
    // The depth axis of a 3D convolution (shaders/fold_depth.wgsl).
    in_d: u32,
    out_d: u32,
    kernel_d: u32,
    stride_d: u32,
    pad_front: u32,
    dilation_d: u32,
    // The first folded image (n*OD + od) of a piece of a split 3D convolution.
    first_image: u32,
}
