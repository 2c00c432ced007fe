//! What only the browser needs: error scopes that resolve later, and the adapter's own
//! description, which wgpu leaves empty there.

/// The popped error scopes of one call in the browser: what it was doing, and its validation
/// and out-of-memory scopes' results to come.
pub(crate) type PendingScope = (
    String,
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>,
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>,
);

/// What the browser says of its WebGPU adapter (`GPUAdapterInfo`), which wgpu 30 leaves out of
/// `AdapterInfo` but for an often empty description: the description, else vendor,
/// architecture and device, e.g. `google swiftshader` (the planner's profile is chosen by it).
pub(crate) async fn adapter_name() -> Option<String> {
    use js_sys::Reflect;
    use wasm_bindgen::JsCast;
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok()?;
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
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
