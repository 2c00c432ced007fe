//! The JavaScript API (wasm-bindgen), for web pages: the same engine on the browser's WebGPU.
//!
//! ```js
//! import init, { Engine, conv2dReference, filterNames, sampleImage } from './wgconv.js';
//! await init();
//! const engine = await Engine.create();   // rejects with a clear message if there is no WebGPU
//! engine.adapterInfo;                      // e.g. "google swiftshader (BrowserWebGpu, Cpu)"
//! const { data, shape } = await engine.conv2d(x, [N, C, H, W], w, [O, C / groups, kh, kw], bias,
//!     { stride: 2, padding: 3 /* or [ph, pw], [t, b, l, r], 'same', 'valid' */, dilation: 1, groups: 1 });
//! ```
//!
//! `x`, `w` and `bias` (or `null`) are `Float32Array`s, `data` is one. Every option takes one
//! number or one per axis. Bad input rejects the promise (or, for the synchronous
//! `conv2dReference`, throws) with an `Error` whose message is wgconv's own
//! ([`Error`](crate::Error)'s text). Only the async API exists in the browser: nothing blocks
//! the page's thread.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::filter::{self, Filter, KernelChoice};
use crate::spec::{Conv2dParams, Padding};
use crate::tensor::Tensor;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** One number for both axes, or one per axis `[h, w]`. */
export type PerAxis = number | [number, number];
/** `p`, `[ph, pw]`, `[top, bottom, left, right]`, `'same'` or `'valid'`. */
export type Conv2dPadding = number | [number, number] | [number, number, number, number] | 'same' | 'valid';
/** PyTorch's `nn.Conv2d` parameters; each defaults as in PyTorch (stride 1, padding 0, dilation 1, groups 1). */
export interface Conv2dOptions {
  stride?: PerAxis;
  padding?: Conv2dPadding;
  dilation?: PerAxis;
  groups?: number;
}
/** A convolution's output: `[N, O, P, Q]` values in C order. */
export interface Conv2dResult {
  data: Float32Array;
  shape: number[];
}
/** An RGB picture, 3 bytes per pixel, rows top to bottom. */
export interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}
"#;

/// A wgconv engine on the browser's WebGPU adapter.
#[wasm_bindgen(js_name = Engine)]
pub struct WebEngine {
    engine: Rc<crate::Engine>,
    adapter: String,
    // The last call's promise: each call starts when the one before has settled, because in
    // the browser a call's GPU errors are reported by the engine's next wait (see
    // `Device::scoped`), which must be that call's own.
    last: Rc<RefCell<Promise>>,
}

#[wasm_bindgen(js_class = Engine)]
impl WebEngine {
    /// An engine on the page's WebGPU adapter. Rejects with wgconv's message when the browser
    /// has no WebGPU (`navigator.gpu` missing) or gives no adapter.
    #[wasm_bindgen(unchecked_return_type = "Promise<Engine>")]
    pub fn create() -> Promise {
        future_to_promise(async move {
            let navigator = Reflect::get(&js_sys::global(), &"navigator".into())?;
            let gpu = if navigator.is_undefined() {
                JsValue::UNDEFINED
            } else {
                Reflect::get(&navigator, &"gpu".into())?
            };
            if gpu.is_undefined() || gpu.is_null() {
                return Err(error(
                    "no WebGPU in this browser (navigator.gpu is missing): use a browser with \
                     WebGPU, in a secure context (https or localhost); headless Chromium needs \
                     --enable-unsafe-webgpu",
                ));
            }
            let engine = crate::Engine::new_async().await.map_err(|e| match e {
                // The native message's install hints are for servers, not browsers.
                crate::Error::NoAdapter { request, .. } => error(&format!(
                    "the browser gave no WebGPU adapter ({request}): WebGPU is off or \
                     unsupported here; in Chromium enable it (chrome://flags/#enable-unsafe-webgpu, \
                     or --enable-unsafe-webgpu)"
                )),
                other => error(&other.to_string()),
            })?;
            let adapter = engine.adapter().to_string();
            Ok(WebEngine {
                engine: Rc::new(engine),
                adapter,
                last: Rc::new(RefCell::new(Promise::resolve(&JsValue::UNDEFINED))),
            }
            .into())
        })
    }

    /// The adapter, as `wgconv info` names it.
    #[wasm_bindgen(getter, js_name = adapterInfo)]
    pub fn adapter_info(&self) -> String {
        self.adapter.clone()
    }

    /// The convolution of `x` (`xShape = [N, C, H, W]`) with `w` (`wShape = [O, C/groups, kh,
    /// kw]`) and `bias` (`[O]` or `null`) on the GPU, upload and readback included.
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(unchecked_return_type = "Promise<Conv2dResult>")]
    pub fn conv2d(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array")] x: JsValue,
        #[wasm_bindgen(js_name = xShape, unchecked_param_type = "number[]")] x_shape: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Float32Array")] w: JsValue,
        #[wasm_bindgen(js_name = wShape, unchecked_param_type = "number[]")] w_shape: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | null | undefined")] bias: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Conv2dOptions | undefined")] options: JsValue,
    ) -> Promise {
        let engine = Rc::clone(&self.engine);
        let operands = operands(&x, &x_shape, &w, &w_shape, &bias, &options);
        self.after_last(async move {
            let (x, w, b, params) = operands?;
            let y = engine
                .conv2d_async(&x, &w, b.as_ref(), &params)
                .await
                .map_err(|e| error(&e.to_string()))?;
            result(&y)
        })
    }

    /// Filters an RGB picture (`rgb`: `width * height * 3` bytes) with the built-in kernel
    /// `name` (see `filterNames()`): the same computation as `wgconv filter`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array>")]
    pub fn filter(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] rgb: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] width: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] height: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] name: JsValue,
    ) -> Promise {
        let engine = Rc::clone(&self.engine);
        let image = rgb_image(&rgb, &width, &height);
        self.after_last(async move {
            let image = image?;
            let name = name.as_string().ok_or_else(|| {
                error(&format!(
                    "the filter name must be a string, got {}",
                    describe(&name)
                ))
            })?;
            let filter: Filter = name.parse().map_err(|e: String| error(&e))?;
            let out = filter::apply_async(&engine, &image, &KernelChoice::Builtin(filter))
                .await
                .map_err(|e| error(&e.to_string()))?;
            Ok(Uint8Array::from(out.as_raw().as_slice()).into())
        })
    }
}

impl WebEngine {
    /// `call` run once the engine's previous call has settled (fulfilled or rejected).
    fn after_last(
        &self,
        call: impl std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
    ) -> Promise {
        let before = self.last.borrow().clone();
        let promise = future_to_promise(async move {
            // The previous call's outcome is its own caller's business.
            let _ = JsFuture::from(before).await;
            call.await
        });
        *self.last.borrow_mut() = promise.clone();
        promise
    }
}

/// The same convolution on the CPU, accumulated in f64 (wgconv's reference), synchronously.
#[wasm_bindgen(js_name = conv2dReference, unchecked_return_type = "Conv2dResult")]
pub fn conv2d_reference(
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] x: JsValue,
    #[wasm_bindgen(js_name = xShape, unchecked_param_type = "number[]")] x_shape: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] w: JsValue,
    #[wasm_bindgen(js_name = wShape, unchecked_param_type = "number[]")] w_shape: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Float32Array | null | undefined")] bias: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Conv2dOptions | undefined")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let (x, w, b, params) = operands(&x, &x_shape, &w, &w_shape, &bias, &options)?;
    let y = crate::cpu::reference::conv2d(&x, &w, b.as_ref(), &params)
        .map_err(|e| error(&e.to_string()))?;
    result(&y)
}

/// The built-in filters' names, as `wgconv filter --kernel` takes them.
#[wasm_bindgen(js_name = filterNames)]
pub fn filter_names() -> Vec<String> {
    Filter::ALL.iter().map(|(n, _)| n.to_string()).collect()
}

/// The built-in 128x128 sample picture (`wgconv sample-image`).
#[wasm_bindgen(js_name = sampleImage, unchecked_return_type = "RgbImage")]
pub fn sample_image() -> Result<JsValue, JsValue> {
    let image = filter::sample_image();
    let out = Object::new();
    Reflect::set(
        &out,
        &"rgb".into(),
        &Uint8Array::from(image.as_raw().as_slice()),
    )?;
    Reflect::set(&out, &"width".into(), &image.width().into())?;
    Reflect::set(&out, &"height".into(), &image.height().into())?;
    Ok(out.into())
}

/// A JavaScript `Error` with `message`.
fn error(message: &str) -> JsValue {
    js_sys::Error::new(message).into()
}

/// `{ data, shape }` of `y`.
fn result(y: &Tensor) -> Result<JsValue, JsValue> {
    let out = Object::new();
    Reflect::set(&out, &"data".into(), &Float32Array::from(y.data()))?;
    let shape: Array = y.shape().iter().map(|&d| JsValue::from(d as f64)).collect();
    Reflect::set(&out, &"shape".into(), &shape)?;
    Ok(out.into())
}

type Operands = (Tensor, Tensor, Option<Tensor>, Conv2dParams);

/// The tensors and parameters of a call, checked as wgconv checks them natively.
fn operands(
    x: &JsValue,
    x_shape: &JsValue,
    w: &JsValue,
    w_shape: &JsValue,
    bias: &JsValue,
    options: &JsValue,
) -> Result<Operands, JsValue> {
    let x_shape = numbers(x_shape, "xShape")?;
    let w_shape = numbers(w_shape, "wShape")?;
    let x = Tensor::new(x_shape, floats(x, "x")?).map_err(|e| error(&format!("x: {e}")))?;
    let w = Tensor::new(w_shape, floats(w, "w")?).map_err(|e| error(&format!("w: {e}")))?;
    let b = if bias.is_null() || bias.is_undefined() {
        None
    } else {
        let b = floats(bias, "bias")?;
        Some(Tensor::new([b.len()], b).map_err(|e| error(&format!("bias: {e}")))?)
    };
    Ok((x, w, b, params(options)?))
}

/// The values of a `Float32Array` (anything else is refused, naming what it was).
fn floats(value: &JsValue, what: &str) -> Result<Vec<f32>, JsValue> {
    if let Some(a) = value.dyn_ref::<Float32Array>() {
        return Ok(a.to_vec());
    }
    // One from another realm (an iframe, a worker's copy) is a Float32Array too.
    if tag(value) == "[object Float32Array]" {
        return Ok(Float32Array::new(value).to_vec());
    }
    Err(error(&format!(
        "{what} must be a Float32Array, got {}",
        kind(value)
    )))
}

/// `Object.prototype.toString` of `value`: `[object Float32Array]`, `[object Array]`.
fn tag(value: &JsValue) -> String {
    let to_string = Reflect::get(&Object::new(), &"toString".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    to_string
        .and_then(|f| f.call0(value).ok())
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}

/// What kind of JavaScript value `value` is: `null`, `an Array`, `a number`, a constructor name.
fn kind(value: &JsValue) -> String {
    if value.is_null() || value.is_undefined() {
        return describe(value);
    }
    if Array::is_array(value) {
        return "an Array".into();
    }
    if value.is_object() || value.is_function() {
        // The tag, not the constructor's name: reading it cannot throw.
        let tag = tag(value);
        let name = tag
            .strip_prefix("[object ")
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or("Object");
        return format!("a {name}");
    }
    format!("a {}", value.js_typeof().as_string().unwrap_or_default())
}

/// A JavaScript array of whole numbers `>= 0`, as sizes.
fn numbers(value: &JsValue, what: &str) -> Result<Vec<usize>, JsValue> {
    if !Array::is_array(value) {
        return Err(error(&format!(
            "{what} must be an array of whole numbers, got {}",
            describe(value)
        )));
    }
    Array::from(value).iter().map(|v| whole(&v, what)).collect()
}

/// One whole number `>= 0` (and at most 2^32 - 1, wasm32's `usize`).
fn whole(value: &JsValue, what: &str) -> Result<usize, JsValue> {
    match value.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX) => Ok(n as usize),
        _ => Err(error(&format!(
            "{what} takes whole numbers from 0 to {}, got {}",
            u32::MAX,
            describe(value)
        ))),
    }
}

/// `value` as a message shows it: `2.5`, `"same"`, `null`, `[1,2]`.
fn describe(value: &JsValue) -> String {
    if value.is_undefined() {
        return "undefined".into();
    }
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return format!("an Error: {}", String::from(e.message()));
    }
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

/// One number for both axes, or `[h, w]`.
fn per_axis(value: &JsValue, what: &str) -> Result<(usize, usize), JsValue> {
    if Array::is_array(value) {
        match *numbers(value, what)?.as_slice() {
            [h, w] => Ok((h, w)),
            _ => Err(error(&format!(
                "{what} takes one number or [h, w], got {}",
                describe(value)
            ))),
        }
    } else {
        let n = whole(value, what)?;
        Ok((n, n))
    }
}

/// `p`, `[ph, pw]`, `[t, b, l, r]`, `'same'` or `'valid'`.
fn padding(value: &JsValue) -> Result<Padding, JsValue> {
    if let Some(s) = value.as_string() {
        return match s.as_str() {
            "same" => Ok(Padding::Same),
            "valid" => Ok(Padding::Valid),
            _ => Err(error(&format!(
                "padding takes a number, [ph, pw], [top, bottom, left, right], 'same' or \
                 'valid', got \"{s}\""
            ))),
        };
    }
    if Array::is_array(value) {
        return match *numbers(value, "padding")?.as_slice() {
            [ph, pw] => Ok(Padding::symmetric(ph, pw)),
            [t, b, l, r] => Ok(Padding::explicit(t, b, l, r)),
            _ => Err(error(&format!(
                "padding takes a number, [ph, pw], [top, bottom, left, right], 'same' or \
                 'valid', got {}",
                describe(value)
            ))),
        };
    }
    Ok(Padding::uniform(whole(value, "padding")?))
}

/// The options object (or `undefined`/`null` for PyTorch's defaults); unknown keys are refused.
fn params(options: &JsValue) -> Result<Conv2dParams, JsValue> {
    const KNOWN: [&str; 4] = ["stride", "padding", "dilation", "groups"];
    let mut p = Conv2dParams::default();
    if options.is_undefined() || options.is_null() {
        return Ok(p);
    }
    if !options.is_object() || Array::is_array(options) {
        return Err(error(&format!(
            "options must be an object {{ stride, padding, dilation, groups }}, got {}",
            describe(options)
        )));
    }
    for key in Object::keys(options.unchecked_ref::<Object>()).iter() {
        let name = key.as_string().unwrap_or_default();
        if !KNOWN.contains(&name.as_str()) {
            return Err(error(&format!(
                "unknown option '{name}'; the options are stride, padding, dilation and groups"
            )));
        }
    }
    // Read by name, so that inherited options (a class with getters) count too.
    for name in KNOWN {
        let value = Reflect::get(options, &name.into())
            .map_err(|e| error(&format!("reading option '{name}' threw {}", describe(&e))))?;
        if value.is_undefined() {
            continue;
        }
        match name {
            "stride" => p.stride = per_axis(&value, "stride")?,
            "padding" => p.padding = padding(&value)?,
            "dilation" => p.dilation = per_axis(&value, "dilation")?,
            _ => p.groups = whole(&value, "groups")?,
        }
    }
    Ok(p)
}

/// `rgb` as a `width x height` RGB image, its length checked.
fn rgb_image(rgb: &JsValue, width: &JsValue, height: &JsValue) -> Result<image::RgbImage, JsValue> {
    let rgb = rgb
        .dyn_ref::<Uint8Array>()
        .ok_or_else(|| error(&format!("rgb must be a Uint8Array, got {}", kind(rgb))))?;
    let size = |v: &JsValue, what: &str| {
        let n = whole(v, what)?;
        u32::try_from(n).map_err(|_| error(&format!("{what} {n} is too large")))
    };
    let (width, height) = (size(width, "width")?, size(height, "height")?);
    let want = u64::from(width) * u64::from(height) * 3;
    if u64::from(rgb.length()) != want {
        return Err(error(&format!(
            "an RGB picture of {width}x{height} pixels has {want} bytes, got {}",
            rgb.length()
        )));
    }
    image::RgbImage::from_raw(width, height, rgb.to_vec()).ok_or_else(|| {
        error(&format!(
            "an RGB picture of {width}x{height} pixels does not fit in memory"
        ))
    })
}
