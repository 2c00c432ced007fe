// The resnet suite (`wgconv bench --suite resnet`'s layers, batch 1) through the JavaScript API in
// headless Chromium: Float32Array in, Float32Array out, so each timed call includes the upload,
// the convolution and the readback. Protocol: per layer one untimed call (pipeline builds), then
// REPEAT timed calls; the row shows their median. GFLOP/s = 2 * C * K * R * S * P * Q / time.
//
// Usage: node web/e2e/bench.mjs <dist-dir> [repeat] [--tfjs <node_modules>]   (dist: web/build.sh's
// output). With --tfjs (a node_modules holding @tensorflow/tfjs-core and tfjs-backend-webgpu, e.g.
// after `npm install @tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-backend-webgpu@4.22.0`), each
// layer also runs through TF.js's WebGPU backend in the same page, the same way (NHWC tensors
// from Float32Arrays, `await y.data()`), for a same-run comparison.

import path from 'node:path';
import { launch, serve } from './browser.mjs';

// name C H W -> K RxS stride pad, as src/bench/suites.rs's RESNET_SUITE.
const RESNET = [
  ['stem', 3, 224, 224, 64, 7, 2, 3],
  ['conv3x3', 64, 56, 56, 64, 3, 1, 1],
  ['conv1x1', 64, 56, 56, 256, 1, 1, 0],
  ['conv3x3_s2', 128, 56, 56, 128, 3, 2, 1],
  ['conv1x1_s2', 512, 28, 28, 1024, 1, 2, 0],
  ['deep', 512, 7, 7, 512, 3, 1, 1],
  ['thin', 16, 112, 112, 16, 3, 1, 1],
  ['vgg', 64, 224, 224, 64, 3, 1, 1],
];

// In the page: one layer through `library` ('wgconv', or 'tfjs' for TF.js's WebGPU backend with
// NHWC tensors), timed the same way for both.
async function runLayer([name, c, h, w, k, r, stride, pad, repeat, library]) {
  const random = (n) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  const x = random(c * h * w);
  const wt = random(k * c * r * r);
  const bias = random(k);
  let conv; // resolves to { data, shape: [N, P, Q] of the output }
  let adapter;
  if (library === 'wgconv') {
    window.wgconvEngine ??= await import('./wgconv.js').then(async (m) => {
      await m.default();
      return m.Engine.create();
    });
    const engine = window.wgconvEngine;
    adapter = engine.adapterInfo;
    const options = { stride, padding: pad };
    conv = async () => {
      const { data, shape } = await engine.conv2d(x, [1, c, h, w], wt, [k, c, r, r], bias, options);
      return { data, shape, p: shape[2], q: shape[3] };
    };
  } else {
    const tf = window.tf;
    if (tf.getBackend() !== 'webgpu') {
      if (!(await tf.setBackend('webgpu'))) throw new Error('TF.js: no webgpu backend');
      await tf.ready();
    }
    const padding = [[0, 0], [pad, pad], [pad, pad], [0, 0]];
    conv = async () => {
      const y = tf.tidy(() => tf.add(
        tf.conv2d(tf.tensor4d(x, [1, h, w, c]), tf.tensor4d(wt, [r, r, c, k]), stride, padding),
        tf.tensor1d(bias)));
      const data = await y.data();
      const shape = y.shape;
      y.dispose();
      return { data, shape, p: shape[1], q: shape[2] };
    };
  }
  const once = async () => {
    const t0 = performance.now();
    const out = await conv();
    const ms = performance.now() - t0;
    if (out.data.length !== out.shape.reduce((a, b) => a * b, 1)) {
      throw new Error(`${name} (${library}): ${out.data.length} values for shape ${out.shape}`);
    }
    return { ms, ...out };
  };
  await once();
  const times = [];
  let last;
  for (let i = 0; i < repeat; i++) {
    last = await once();
    times.push(last.ms);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  return { name, ms, gflops: (2 * c * k * r * r * last.p * last.q) / ms / 1e6, adapter };
}

const args = process.argv.slice(2);
const tfjsAt = args.indexOf('--tfjs');
const tfjsDir = tfjsAt >= 0 ? args.splice(tfjsAt, 2)[1] : null;
const [distArg, repeatArg] = args;
if (!distArg || (tfjsAt >= 0 && !tfjsDir)) {
  console.error('usage: node web/e2e/bench.mjs <dist-dir> [repeat] [--tfjs <node_modules>]');
  process.exit(2);
}
const repeat = Number(repeatArg ?? 3);
if (!Number.isInteger(repeat) || repeat < 1) {
  console.error(`repeat must be a whole number >= 1, got ${repeatArg}`);
  process.exit(2);
}
const server = await serve(path.resolve(distArg));
const tfjsServer = tfjsDir ? await serve(path.resolve(tfjsDir)) : null;
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  // An empty page of the same origin, so the module and its wasm load from the server.
  await page.goto(`http://127.0.0.1:${server.address().port}/wgconv.d.ts`);
  if (tfjsServer) {
    const base = `http://127.0.0.1:${tfjsServer.address().port}/@tensorflow`;
    await page.addScriptTag({ url: `${base}/tfjs-core/dist/tf-core.min.js` });
    await page.addScriptTag({ url: `${base}/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js` });
  }
  console.log(`chromium ${browser.version()}, median of ${repeat} after one warm-up, end to end`);
  const logSum = { wgconv: 0, tfjs: 0 };
  for (const layer of RESNET) {
    const row = await page.evaluate(runLayer, [...layer, repeat, 'wgconv']);
    const tf = tfjsServer ? await page.evaluate(runLayer, [...layer, repeat, 'tfjs']) : null;
    if (layer === RESNET[0]) {
      console.log(`adapter: ${row.adapter}\n\nlayer        wgconv ms  GFLOP/s${tf ? '    TF.js ms  GFLOP/s   ratio' : ''}`);
    }
    let line = `${row.name.padEnd(12)} ${row.ms.toFixed(1).padStart(9)} ${row.gflops.toFixed(2).padStart(8)}`;
    if (tf) line += ` ${tf.ms.toFixed(1).padStart(11)} ${tf.gflops.toFixed(2).padStart(8)} ${(row.gflops / tf.gflops).toFixed(1).padStart(7)}`;
    console.log(line);
    logSum.wgconv += Math.log(row.gflops);
    if (tf) logSum.tfjs += Math.log(tf.gflops);
  }
  const mean = (s) => Math.exp(s / RESNET.length);
  let line = `geometric mean ${' '.repeat(8)} ${mean(logSum.wgconv).toFixed(2).padStart(8)}`;
  if (tfjsServer) {
    line += ` ${' '.repeat(11)} ${mean(logSum.tfjs).toFixed(2).padStart(8)} ${(mean(logSum.wgconv) / mean(logSum.tfjs)).toFixed(1).padStart(7)}`;
  }
  console.log(`${line}  (GFLOP/s)`);
} finally {
  await browser.close();
  server.close();
  tfjsServer?.close();
}
