// The fused epilogue of the forward convolutions, prepended (after shaders/conv_params.wgsl) to
// each forward kernel's text (src/gpu/codegen.rs `with_epilogue`):
//
//   output[i] = act(conv[i] + bias[o] + residual[i]),   act = `activate` (params.activation)
//
// The residual has the output's shape and is added only when `params.has_residual` is set:
// the caller has then copied it into the output buffer, and each kernel reads element i there
// just before it overwrites it (no fifth storage binding, which adapters with four lack). Every
// forward kernel writes each output element once, from one invocation. Twin: the epilogue of
// `cpu::reference::conv_nd_fused_f64`.

// Output element `i` from its convolution plus bias, `v` (`output` is the kernel's own binding).
fn epilogue(v: f32, i: u32) -> f32 {
    var x = v;
    if params.has_residual != 0u {
        x += output[i];
    }
    return activate(x);
}

// The residual's element `i` (0 without one), read before the kernel overwrites it: for the
// kernels that store first and activate afterwards (the register-tiled one).
fn residual_at(i: u32) -> f32 {
    if params.has_residual != 0u {
        return output[i];
    }
    return 0.0;
}
