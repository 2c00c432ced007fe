// End-to-end test of the demo page: serves the built web/dist, opens it in headless Chromium with
// WebGPU (SwiftShader on a machine with no GPU), and checks the page against the native binary:
// the walkthrough's GPU results against the CPU reference and the lecture, the built-in sample
// picture and each filter's output against `wgconv sample-image` / `wgconv filter`, and that a
// bad convolution is refused with wgconv's own message. Leaves a screenshot of the whole page.
//
// Usage: node web/e2e/e2e.mjs <dist-dir> <native-wgconv-binary> <workdir>
// Exit status: 0 when every check passes, 1 when one fails, 2 on a bad command line.
// CHROMIUM (default /usr/bin/chromium) names the browser; the native binary inherits the
// environment (WGPU_BACKEND and friends) from the caller.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { launch, serve } from './browser.mjs';

const KERNELS = ['edges', 'gaussian', 'sharpen'];
/** Browser WebGPU and the native adapter may round f32 sums apart at .5: per channel at most this. */
const MAX_CHANNEL_DIFF = 1;
/** ... and at most this fraction of pixels may differ at all. */
const MAX_DIFFERING_PIXELS = 0.01;
const TIMEOUT_MS = { ready: 180_000, filter: 60_000, bench: 300_000 };
const failures = [];
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
  return ok;
}

/** Runs the native binary; its stderr goes to ours, a failure ends the test. */
function native(bin, args) {
  console.log(`native: ${path.basename(bin)} ${args.join(' ')}`);
  execFileSync(bin, args, { stdio: ['ignore', 'inherit', 'inherit'], timeout: 300_000 });
}

// In the page: a canvas's RGB, and a PNG file's RGB decoded as the page decodes a picked file.
function readCanvasRgb(id) {
  const canvas = document.getElementById(id);
  const { data } = canvas.getContext('2d', { willReadFrequently: true })
    .getImageData(0, 0, canvas.width, canvas.height);
  const rgb = [];
  for (let i = 0; i < data.length; i += 4) rgb.push(data[i], data[i + 1], data[i + 2]);
  return { width: canvas.width, height: canvas.height, rgb };
}
async function decodePngRgb(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }),
    { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  const rgb = [];
  for (let i = 0; i < data.length; i += 4) rgb.push(data[i], data[i + 1], data[i + 2]);
  return { width: bitmap.width, height: bitmap.height, rgb };
}

/** Compares two RGB images: the largest channel difference and how many pixels differ at all. */
function compare(a, b) {
  if (a.width !== b.width || a.height !== b.height) {
    return { sizeMismatch: `${a.width}x${a.height} vs ${b.width}x${b.height}` };
  }
  let maxDiff = 0;
  let differing = 0;
  let first = null;
  for (let p = 0; p < a.width * a.height; p++) {
    let pixelDiff = 0;
    for (let c = 0; c < 3; c++) pixelDiff = Math.max(pixelDiff, Math.abs(a.rgb[3 * p + c] - b.rgb[3 * p + c]));
    if (pixelDiff > 0) {
      differing += 1;
      if (first === null) {
        const at = `(${p % a.width}, ${Math.floor(p / a.width)})`;
        first = `${at}: [${a.rgb.slice(3 * p, 3 * p + 3)}] vs [${b.rgb.slice(3 * p, 3 * p + 3)}]`;
      }
    }
    maxDiff = Math.max(maxDiff, pixelDiff);
  }
  return { maxDiff, differing, pixels: a.width * a.height, first };
}

function describe(cmp) {
  if (cmp.sizeMismatch) return `sizes differ: ${cmp.sizeMismatch}`;
  const pct = ((100 * cmp.differing) / cmp.pixels).toFixed(2);
  return `max channel diff ${cmp.maxDiff}, ${cmp.differing} of ${cmp.pixels} pixels differ (${pct}%)` +
    (cmp.first ? `, first at ${cmp.first}` : '');
}

/** Waits until the filter status is final for `kernel` on `source`; returns the status text. */
async function filterDone(page, kernel, source) {
  await page.waitForFunction(([k, s]) => {
    const status = document.getElementById('filter-status').textContent;
    const after = document.getElementById('after');
    return status.startsWith('error') ||
      (status === 'done' && after.dataset.kernel === k && after.dataset.source === s);
  }, [kernel, source], { timeout: TIMEOUT_MS.filter });
  return page.textContent('#filter-status');
}

async function main() {
  const [distArg, binArg, workArg] = process.argv.slice(2);
  if (!distArg || !binArg || !workArg) {
    console.error('usage: node e2e.mjs <dist-dir> <native-wgconv-binary> <workdir>');
    process.exit(2);
  }
  const dist = path.resolve(distArg);
  const bin = path.resolve(binArg);
  const work = path.resolve(workArg);
  for (const f of ['index.html', 'main.js', 'style.css', 'wgconv.js', 'wgconv_bg.wasm']) {
    if (!fs.existsSync(path.join(dist, f))) throw new Error(`${path.join(dist, f)} is missing (run web/build.sh first)`);
  }
  if (!fs.existsSync(bin)) throw new Error(`native binary ${bin} is missing (cargo build --release)`);
  fs.mkdirSync(work, { recursive: true });

  // 1. The native side: the sample picture and each kernel's output.
  const samplePng = path.join(work, 'sample.png');
  native(bin, ['sample-image', '--output', samplePng]);
  for (const k of KERNELS) {
    native(bin, ['filter', '--input', samplePng, '--kernel', k, '--output', path.join(work, `native-${k}.png`)]);
  }
  const pngBase64 = (file) => fs.readFileSync(file).toString('base64');

  let server;
  let browser;
  try {
    // 2. The page, in headless Chromium with WebGPU.
    server = await serve(dist);
    const url = `http://127.0.0.1:${server.address().port}/`;
    browser = await launch();
    console.log(`chromium ${browser.version()}, serving ${dist} at ${url}`);
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const pageErrors = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') console.log(`page console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => {
      pageErrors.push(e.message);
      console.log(`page error: ${e.message}`);
    });
    page.on('requestfailed', (r) => console.log(`page request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => {
      if (r.status() >= 400) console.log(`page request ${r.url()}: HTTP ${r.status()}`);
    });

    await page.goto(url);
    await page.waitForFunction(() => window.wgconvReady === true || window.wgconvError !== null,
      null, { timeout: TIMEOUT_MS.ready });
    const startError = await page.evaluate(() => window.wgconvError);
    const adapter = await page.textContent('#adapter');
    console.log(`page adapter: ${adapter}`);
    if (!check(startError === null, `the page starts (${startError ?? 'ready'})`)) return;
    check(adapter.trim() !== '' && !adapter.startsWith('none'), 'the page shows its adapter');

    // 3. The walkthrough: GPU equals the CPU reference, which equals the lecture.
    const walkthrough = await page.evaluate(() => window.wgconvResults.walkthrough);
    check(walkthrough.length >= 6, `the walkthrough has ${walkthrough.length} examples`);
    for (const ex of walkthrough) {
      check(ex.ok === true, `walkthrough "${ex.title}": shape [${ex.shape}], max |GPU - CPU| = ${ex.maxAbsDiff}` +
        `${ex.matchesLecture ? ', as the lecture expects' : ''}${ex.error ? `, error: ${ex.error}` : ''}`);
    }

    // 4. Bad input is refused with wgconv's own message, on the GPU and on the CPU reference.
    const refusals = await page.evaluate(async () => {
      const x = new Float32Array(4 * 8 * 8);
      const w = new Float32Array(8 * 3);
      const args = [x, [1, 4, 8, 8], w, [8, 3, 1, 1], null, {}];
      const outcome = async (f) => {
        try { await f(); return 'accepted'; } catch (e) { return e instanceof Error ? e.message : `a non-Error: ${e}`; }
      };
      return {
        gpu: await outcome(() => window.wgconv.engine.conv2d(...args)),
        cpu: await outcome(() => window.wgconv.conv2dReference(...args)),
      };
    });
    for (const [side, text] of Object.entries(refusals)) {
      check(/channels/.test(text), `${side}: a 4-channel input to a 3-channel weight is refused: "${text}"`);
    }

    // 5. The picture: the built-in sample is `wgconv sample-image`, and a picked file is drawn as is.
    const nativeSample = await page.evaluate(decodePngRgb, pngBase64(samplePng));
    const builtIn = compare(await page.evaluate(readCanvasRgb, 'before'), nativeSample);
    check(builtIn.maxDiff === 0, `sampleImage() equals wgconv sample-image: ${describe(builtIn)}`);
    const initialKernel = await page.inputValue('#kernel');

    await page.setInputFiles('#file', samplePng);
    let status = await filterDone(page, initialKernel, 'sample.png');
    check(status === 'done', `filtering the picked sample.png (${initialKernel}): ${status}`);
    const before = compare(await page.evaluate(readCanvasRgb, 'before'), nativeSample);
    check(before.maxDiff === 0, `the before canvas equals sample.png: ${describe(before)}`);

    // 6. Each kernel on the page against `wgconv filter` on the same file.
    for (const k of KERNELS) {
      await page.selectOption('#kernel', k);
      status = await filterDone(page, k, 'sample.png');
      if (!check(status === 'done', `filter ${k}: ${status}`)) continue;
      const pageOut = await page.evaluate(readCanvasRgb, 'after');
      const nativeOut = await page.evaluate(decodePngRgb, pngBase64(path.join(work, `native-${k}.png`)));
      const cmp = compare(pageOut, nativeOut);
      const ok = !cmp.sizeMismatch && cmp.maxDiff <= MAX_CHANNEL_DIFF &&
        cmp.differing <= MAX_DIFFERING_PIXELS * cmp.pixels;
      check(ok, `filter ${k}, page vs native: ${describe(cmp)}`);
    }

    // 7. The benchmark runs and every layer agrees with the CPU reference.
    await page.click('#bench-run');
    await page.waitForFunction(() => {
      const s = document.getElementById('bench-status').textContent;
      return s === 'done' || s.startsWith('error');
    }, null, { timeout: TIMEOUT_MS.bench });
    const benchStatus = await page.textContent('#bench-status');
    check(benchStatus === 'done', `the benchmark: ${benchStatus}`);
    for (const r of await page.evaluate(() => window.wgconvResults.bench)) {
      const finite = [r.gpuMs, r.cpuMs, r.gpuGflops, r.cpuGflops].every(Number.isFinite);
      check(r.ok && finite, `bench ${r.name}: GPU ${r.gpuMs.toFixed(1)} ms (${r.gpuGflops.toFixed(2)} GFLOP/s), ` +
        `CPU reference ${r.cpuMs.toFixed(1)} ms (${r.cpuGflops.toFixed(2)} GFLOP/s), max |GPU - CPU| = ${r.maxAbsDiff}`);
    }

    // 8. Nothing went wrong on the page, and a picture of it for the README.
    const shown = (await page.textContent('#errors')).trim();
    check(shown === '', `the page shows no errors${shown ? `: ${shown}` : ''}`);
    check(pageErrors.length === 0, `no uncaught page errors${pageErrors.length ? `: ${pageErrors.join('; ')}` : ''}`);
    const screenshot = path.join(work, 'screenshot.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`wrote ${screenshot}`);
  } finally {
    await browser?.close();
    server?.close();
  }
}

try {
  await main();
} catch (e) {
  failures.push(e.message);
  console.error(`FAIL ${e.stack ?? e}`);
}
if (failures.length) {
  console.error(`\ne2e: ${failures.length} check(s) failed:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log('\ne2e: all checks passed');
