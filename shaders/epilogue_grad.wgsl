// The backward pass through the fused epilogue's activation, element by element:
//
//   dz[e] = grad_output[e] * act'(pre[e]),   pre = conv + bias (+ residual)
//
// `act'` is `activate_grad`, the derivative of `activate` (shaders/conv_params.wgsl) with
// PyTorch's choices at the kinks. Twin: `Activation::derivative` in src/spec/activation.rs.

// `struct Params` (the uniform block) comes from shaders/conv_params.wgsl, prepended at load.

@group(0) @binding(0) var<storage, read> pre: array<f32>;
@group(0) @binding(1) var<storage, read> grad_output: array<f32>;
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override WORKGROUP_SIZE: u32 = 64u;

fn activate_grad(x: f32) -> f32 {
    switch params.activation {
        case 0u: {
            return 1.0;
        }
        case 1u: {
            return select(0.0, 1.0, x > 0.0);
        }
        case 2u: {
            return select(0.0, 1.0, x > 0.0 && x < 6.0);
        }
        case 3u: {
            return select(bitcast<f32>(params.act_a), 1.0, x > 0.0);
        }
        case 4u: {
            let s = sigmoid_of(x);
            return s * (1.0 - s);
        }
        case 5u: {
            let t = tanh_of(x);
            return 1.0 - t * t;
        }
        case 6u: {
            let cdf = 0.5 * (1.0 + erf_of(x * 0.70710678118654752));
            let pdf = exp(-0.5 * x * x) * 0.39894228040143268;
            return cdf + x * pdf;
        }
        case 7u: {
            // With s = sigmoid(2u): 0.5 (1 + tanh u) = s and 1 - tanh^2 u = 4 s (1 - s).
            let u = 0.79788456080286536 * (x + 0.044715 * x * x * x);
            let s = sigmoid_of(2.0 * u);
            let s_minus = sigmoid_of(-2.0 * u);
            return s + 2.0 * x * s * s_minus * 0.79788456080286536 * (1.0 + 0.134145 * x * x);
        }
        case 8u: {
            let s = sigmoid_of(x);
            return s * (1.0 + x * (1.0 - s));
        }
        case 9u: {
            if x < -3.0 {
                return 0.0;
            }
            if x > 3.0 {
                return 1.0;
            }
            return (2.0 * x + 3.0) / 6.0;
        }
        default: {
            return select(0.0, 1.0, x > bitcast<f32>(params.act_a) && x < bitcast<f32>(params.act_b));
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x + gid.y * params.row_stride;
    if e >= params.work_items {
        return;
    }
    dz[e] = grad_output[e] * activate_grad(pre[e]);
}
