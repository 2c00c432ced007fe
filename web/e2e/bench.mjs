// The resnet suite (`wgconv bench --suite resnet`'s layers, batch 1) through the JavaScript API in
// headless Chromium: Float32Array in, Float32Array out, so each timed call includes the upload,
// the convolution and the readback. Protocol: per layer one untimed call (pipeline builds), then
// REPEAT timed calls; the row shows their median. GFLOP/s = 2 * C * K * R * S * P * Q / time.
//
// Usage: node web/e2e/bench.mjs <dist-dir> [repeat]   (dist: web/build.sh's output)

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

// In the page: one layer, timed.
async function runLayer([name, c, h, w, k, r, stride, pad, repeat]) {
  const { Engine } = window.wgconv ?? (window.wgconv = await import('./wgconv.js').then(async (m) => {
    await m.default();
    return { Engine: m.Engine, engine: await m.Engine.create() };
  }));
  void Engine;
  const engine = window.wgconv.engine;
  const random = (n) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  const x = random(c * h * w);
  const wt = random(k * c * r * r);
  const bias = random(k);
  const options = { stride, padding: pad };
  const once = async () => {
    const t0 = performance.now();
    const { data, shape } = await engine.conv2d(x, [1, c, h, w], wt, [k, c, r, r], bias, options);
    const ms = performance.now() - t0;
    if (data.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`${name}: ${data.length} values for shape ${shape}`);
    return { ms, shape };
  };
  await once();
  const times = [];
  let shape;
  for (let i = 0; i < repeat; i++) {
    const run = await once();
    times.push(run.ms);
    shape = run.shape;
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  const flops = 2 * c * k * r * r * shape[2] * shape[3];
  return { name, ms, gflops: flops / ms / 1e6, adapter: engine.adapterInfo };
}

const [distArg, repeatArg] = process.argv.slice(2);
if (!distArg) {
  console.error('usage: node web/e2e/bench.mjs <dist-dir> [repeat]');
  process.exit(2);
}
const repeat = Number(repeatArg ?? 3);
const server = await serve(path.resolve(distArg));
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  // An empty page of the same origin, so the module and its wasm load from the server.
  await page.goto(`http://127.0.0.1:${server.address().port}/wgconv.d.ts`);
  console.log(`chromium ${browser.version()}, median of ${repeat} after one warm-up, end to end`);
  let logSum = 0;
  for (const layer of RESNET) {
    const row = await page.evaluate(runLayer, [...layer, repeat]);
    if (layer === RESNET[0]) console.log(`adapter: ${row.adapter}\n\nlayer        ms       GFLOP/s`);
    console.log(`${row.name.padEnd(12)} ${row.ms.toFixed(1).padStart(8)} ${row.gflops.toFixed(2).padStart(9)}`);
    logSum += Math.log(row.gflops);
  }
  console.log(`geometric mean       ${Math.exp(logSum / RESNET.length).toFixed(2).padStart(9)} GFLOP/s`);
} finally {
  await browser.close();
  server.close();
}
