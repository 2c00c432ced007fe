//! What only the browser needs: error scopes that resolve later, and the adapter's own
//! description, which wgpu leaves empty there.

/// The popped error scopes of one call in the browser: what it was doing, and its validation
/// and out-of-memory scopes' results to come.
pub(crate) type PendingScope = (
    String,
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>,
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>,
);

/// Names `info`'s adapter from the browser's own description when wgpu left the name empty.
pub(crate) async fn name_adapter(
    info: &mut wgpu::AdapterInfo,
    preference: Option<wgpu::PowerPreference>,
) {
    if info.name.is_empty() {
        let preference = preference.unwrap_or(wgpu::PowerPreference::HighPerformance);
        info.name = adapter_name(preference).await.unwrap_or_default();
    }
}

/// What the browser says of its WebGPU adapter (`GPUAdapterInfo`), which wgpu 30 leaves out of
/// `AdapterInfo` but for an often empty description: the description, else vendor,
/// architecture and device, e.g. `google swiftshader` (the planner's profile is chosen by it).
async fn adapter_name(preference: wgpu::PowerPreference) -> Option<String> {
    use js_sys::Reflect;
    use wasm_bindgen::JsCast;
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok()?;
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()?
        .dyn_into()
        .ok()?;
    // The adapter wgpu asked for, with the same power preference.
    let options = js_sys::Object::new();
    let preference = match preference {
        wgpu::PowerPreference::HighPerformance => Some("high-performance"),
        wgpu::PowerPreference::LowPower => Some("low-power"),
        _ => None,
    };
    if let Some(preference) = preference {
        Reflect::set(&options, &"powerPreference".into(), &preference.into()).ok()?;
    }
    let promise: js_sys::Promise = request.call1(&gpu, &options).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    let info = Reflect::get(&adapter, &"info".into()).ok()?;
    let field = |key: &str| {
        Reflect::get(&info, &key.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let description = field("description");
    let name = if description.trim().is_empty() {
        ["vendor", "architecture", "device"]
            .map(field)
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        description
    };
    (!name.is_empty()).then_some(name)
}
