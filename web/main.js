// The demo page: the lecture's walkthrough, an image filter and a small benchmark, each on this
// page's GPU (wgconv's WGSL kernels through WebGPU) next to wgconv's CPU reference (wasm).
//
// For tests and the curious: `window.wgconvReady` turns true once the walkthrough and the first
// filter have finished (`window.wgconvError` holds the message if start-up failed),
// `window.wgconvResults` holds the numbers shown, and `window.wgconv` the engine and functions.

import init, { Engine, conv2dReference, filterNames, sampleImage } from './wgconv.js';

window.wgconvReady = false;
window.wgconvError = null;
window.wgconvResults = { walkthrough: [], bench: [] };

const $ = (id) => document.getElementById(id);
const message = (e) => (e instanceof Error ? e.message : String(e));

/** Shows `e` on the page under `context` (and in the console); nothing fails silently. */
function showError(context, e) {
  const errors = $('errors');
  const p = document.createElement('p');
  p.textContent = `${context}: ${message(e)}`;
  errors.append(p);
  errors.hidden = false;
  console.error(`${context}:`, e);
}
window.addEventListener('error', (event) => showError('uncaught error', event.error ?? event.message));
window.addEventListener('unhandledrejection', (event) => showError('unhandled rejection', event.reason));

/** `el(tag, {attributes}, ...children)`: a small DOM builder; strings become text. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

/** A value as the tables show it: integers exactly, others to 4 significant digits. */
function formatValue(v) {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
}

/** `max |a - b|` over two results, or Infinity when their shapes differ. */
function maxAbsDiff(a, b) {
  if (a.shape.join() !== b.shape.join() || a.data.length !== b.data.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) worst = Math.max(worst, Math.abs(a.data[i] - b.data[i]));
  return worst;
}

/** `n` values `f(i)`, as the f32 arrays the API takes. */
const values = (n, f) => Float32Array.from({ length: n }, (_, i) => f(i));

/** Seeded uniform values in [-1, 1) (mulberry32), so every run times the same data. */
function randomValues(n, seed) {
  let s = seed >>> 0;
  return values(n, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  });
}

// ---------------------------------------------------------------------------------------------
// The walkthrough

/** The 6x8 image of ones with a black band in columns 2..6, the lecture's edge example. */
const edgeImage = values(48, (i) => (i % 8 >= 2 && i % 8 < 6 ? 0 : 1));
const edgeMap = [0, 1, 0, 0, 0, -1, 0];
/** An 8x8 input for the padding and stride cases: row + column. */
const grid = values(64, (i) => (i % 8) + Math.floor(i / 8));
/** Two input channels: X = 0..9 as 3x3 and X + 1. */
const twoChannels = values(18, (i) => (i % 9) + Math.floor(i / 9));

/** `K[O x C] . X[C x HW]`, the lecture's `corr2d_multi_in_out_1x1`, computed here in plain JS. */
function matrixProduct(x, [, c, h, w], k, [o]) {
  const hw = h * w;
  return values(o * hw, (i) => {
    const [row, col] = [Math.floor(i / hw), i % hw];
    let sum = 0;
    for (let ci = 0; ci < c; ci++) sum += k[row * c + ci] * x[ci * hw + col];
    return sum;
  });
}

/**
 * The lecture's worked examples in its order. `expect` is the result the lecture gives (values,
 * or just the output shape where it only works out the size).
 */
function examples() {
  const oneByOneX = values(27, (i) => ((i * 7) % 11) - 5);
  const oneByOneK = values(6, (i) => i - 2);
  return [
    {
      title: 'corr2d',
      note: 'X = 0..9 as 3x3, K = [[0, 1], [2, 3]]: the lecture gets [[19, 25], [37, 43]].',
      x: values(9, (i) => i), xShape: [1, 1, 3, 3],
      w: values(4, (i) => i), wShape: [1, 1, 2, 2],
      expect: { data: [19, 25, 37, 43], shape: [1, 1, 2, 2] },
    },
    {
      title: 'Edge detection',
      note: 'A 6x8 image of ones, columns 2..5 black, with K = [1, -1]: 1 marks white to black, -1 black to white.',
      x: edgeImage, xShape: [1, 1, 6, 8],
      w: values(2, (i) => 1 - 2 * i), wShape: [1, 1, 1, 2],
      expect: { data: Array(6).fill(edgeMap).flat(), shape: [1, 1, 6, 7] },
    },
    {
      title: 'Edge detection, transposed image',
      note: 'The same K on the transposed image: horizontal edges are invisible to it.',
      x: values(48, (i) => edgeImage[(i % 6) * 8 + Math.floor(i / 6)]), xShape: [1, 1, 8, 6],
      w: values(2, (i) => 1 - 2 * i), wShape: [1, 1, 1, 2],
      expect: { data: Array(40).fill(0), shape: [1, 1, 8, 5] },
    },
    {
      title: 'Padding',
      note: 'An 8x8 input, a 3x3 kernel of ones, padding 1 on every side: the output keeps the size, 8x8.',
      x: grid, xShape: [1, 1, 8, 8],
      w: values(9, () => 1), wShape: [1, 1, 3, 3],
      options: { padding: 1 },
      expect: { shape: [1, 1, 8, 8] },
    },
    {
      title: 'Stride',
      note: 'The same with stride 2: every other row and column, 4x4.',
      x: grid, xShape: [1, 1, 8, 8],
      w: values(9, () => 1), wShape: [1, 1, 3, 3],
      options: { padding: 1, stride: 2 },
      expect: { shape: [1, 1, 4, 4] },
    },
    {
      title: 'Multiple input channels',
      note: 'X and X + 1 with kernels K and K + 1, one per channel, summed: the lecture gets [[56, 72], [104, 120]].',
      x: twoChannels, xShape: [1, 2, 3, 3],
      w: values(8, (i) => (i % 4) + Math.floor(i / 4)), wShape: [1, 2, 2, 2],
      expect: { data: [56, 72, 104, 120], shape: [1, 1, 2, 2] },
    },
    {
      title: 'Multiple output channels',
      note: 'The same input with the kernels K, K + 1 and K + 2 stacked: three output channels, the first as above.',
      x: twoChannels, xShape: [1, 2, 3, 3],
      w: values(24, (i) => (i % 4) + (Math.floor(i / 4) % 2) + Math.floor(i / 8)), wShape: [3, 2, 2, 2],
      expect: { shape: [1, 3, 2, 2] },
    },
    {
      title: '1x1 convolution',
      note: '3 input channels to 2 on a 3x3 input: a fully connected layer over the channels at every pixel, the matrix product K[2x3] . X[3x9].',
      x: oneByOneX, xShape: [1, 3, 3, 3],
      w: oneByOneK, wShape: [2, 3, 1, 1],
      expect: { data: Array.from(matrixProduct(oneByOneX, [1, 3, 3, 3], oneByOneK, [2])), shape: [1, 2, 3, 3] },
    },
  ];
}

/** `rows x cols` values of `data` from `start` as a small table, with an optional caption. */
function matrixTable(data, start, rows, cols, caption) {
  const table = el('table');
  if (caption) table.append(el('caption', {}, caption));
  for (let r = 0; r < rows; r++) {
    const row = el('tr');
    for (let q = 0; q < cols; q++) row.append(el('td', {}, formatValue(data[start + r * cols + q])));
    table.append(row);
  }
  return table;
}

/**
 * A `[N, C, H, W]` image (N = 1) as one table per channel, or an `[O, C, kh, kw]` weight as a
 * grid of kernels, out by in; a 1x1 weight as its O x C matrix, the fully connected layer it is.
 */
function tensorTables(label, data, shape) {
  const [a, b, h, w] = shape;
  const block = el('div', { class: 'tensor' }, el('div', { class: 'label' }, label));
  if (a > 1 && h === 1 && w === 1) {
    block.append(matrixTable(data, 0, a, b, `${a} out x ${b} in`));
    return block;
  }
  const grid = el('div', { class: 'slices' });
  grid.style.gridTemplateColumns = `repeat(${a > 1 ? b : 1}, auto)`;
  for (let k = 0; k < a * b; k++) {
    const caption = a * b === 1 ? '' : a === 1 ? `channel ${k}` : `out ${Math.floor(k / b)}, in ${k % b}`;
    grid.append(matrixTable(data, k * h * w, h, w, caption));
  }
  block.append(grid);
  return block;
}

/** One example on the GPU and on the CPU reference, rendered; returns its record. */
async function workExample(engine, ex) {
  const args = [ex.x, ex.xShape, ex.w, ex.wShape, null, ex.options ?? {}];
  const reference = conv2dReference(...args);
  const gpu = engine ? await engine.conv2d(...args) : null;

  const diff = gpu ? maxAbsDiff(gpu, reference) : NaN;
  const shapeOk = reference.shape.join() === ex.expect.shape.join();
  const valuesOk = !ex.expect.data || maxAbsDiff(reference, ex.expect) <= 1e-9;
  const gpuOk = gpu !== null && diff <= 1e-4;
  const ok = shapeOk && valuesOk && gpuOk;

  const mark = gpu ? (ok ? 'ok' : 'bad') : 'cpu-only';
  const article = el('article', { class: `example ${mark}` },
    el('h3', {}, ex.title), el('p', {}, ex.note));
  const tables = el('div', { class: 'tables' },
    tensorTables('X', ex.x, ex.xShape), tensorTables('K', ex.w, ex.wShape));
  tables.append(gpu ? tensorTables('GPU', gpu.data, gpu.shape)
    : el('div', { class: 'tensor' }, el('div', { class: 'label' }, 'GPU'), 'unavailable'));
  tables.append(tensorTables('CPU reference', reference.data, reference.shape));
  article.append(tables);

  const checks = [`output shape [${reference.shape.join(', ')}]`];
  checks.push(gpu ? `max |GPU − CPU| = ${diff === Infinity ? 'shapes differ' : diff.toExponential(1)}` : 'CPU reference only (no GPU)');
  if (ex.expect.data) checks.push(valuesOk ? 'as the lecture expects' : 'NOT what the lecture expects');
  else checks.push(shapeOk ? `the expected size` : `NOT the expected shape [${ex.expect.shape.join(', ')}]`);
  article.append(el('p', { class: 'verdict' }, `${{ ok: '✓', bad: '✗', 'cpu-only': '–' }[mark]} ${checks.join('; ')}`));
  $('walkthrough').append(article);

  return { title: ex.title, shape: reference.shape, maxAbsDiff: diff, matchesLecture: shapeOk && valuesOk, ok };
}

async function runWalkthrough(engine) {
  $('walkthrough').replaceChildren();
  for (const ex of examples()) {
    try {
      window.wgconvResults.walkthrough.push(await workExample(engine, ex));
    } catch (e) {
      showError(`walkthrough, ${ex.title}`, e);
      window.wgconvResults.walkthrough.push({ title: ex.title, ok: false, error: message(e) });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The image filter

/** The picture being filtered: RGB bytes, row-major, and where it came from. */
let picture = null;

function context2d(canvas) {
  return canvas.getContext('2d', { willReadFrequently: true });
}

/** The RGB bytes of `canvas` (alpha dropped). */
function canvasRgb(canvas) {
  const { data } = context2d(canvas).getImageData(0, 0, canvas.width, canvas.height);
  const rgb = new Uint8Array((data.length / 4) * 3);
  for (let i = 0, j = 0; i < data.length; i += 4, j += 3) {
    rgb[j] = data[i];
    rgb[j + 1] = data[i + 1];
    rgb[j + 2] = data[i + 2];
  }
  return rgb;
}

/** Sizes `canvas` for a `width x height` picture: small ones shown enlarged with sharp pixels. */
function sizeCanvas(canvas, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.style.imageRendering = width < 320 ? 'pixelated' : 'auto';
}

/** Draws RGB bytes into `canvas`, opaque, resizing it to the picture. */
function drawRgb(canvas, rgb, width, height) {
  sizeCanvas(canvas, width, height);
  const image = new ImageData(width, height);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    image.data[i] = rgb[j];
    image.data[i + 1] = rgb[j + 1];
    image.data[i + 2] = rgb[j + 2];
    image.data[i + 3] = 255;
  }
  context2d(canvas).putImageData(image, 0, 0);
}

function useSample() {
  const { rgb, width, height } = sampleImage();
  drawRgb($('before'), rgb, width, height);
  picture = { rgb, width, height, source: 'sample' };
  $('before-caption').textContent = `(the built-in sample, ${width}x${height})`;
}

/** Decodes `file` into the before canvas and makes it the picture. */
async function usePicture(file) {
  // The stored values, no colour management: what `wgconv filter` reads from the same file.
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' })
    .catch((e) => { throw new Error(`could not decode ${file.name} as a picture: ${message(e)}`); });
  const canvas = $('before');
  sizeCanvas(canvas, bitmap.width, bitmap.height);
  const ctx = context2d(canvas);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  picture = { rgb: canvasRgb(canvas), width: canvas.width, height: canvas.height, source: file.name };
  $('before-caption').textContent = `(${file.name}, ${canvas.width}x${canvas.height})`;
}

async function filterPicture(engine) {
  const name = $('kernel').value;
  const { rgb, width, height, source } = picture;
  const start = performance.now();
  const out = await engine.filter(rgb, width, height, name);
  const ms = performance.now() - start;
  if (out.length !== rgb.length) {
    throw new Error(`engine.filter returned ${out.length} bytes for a ${width}x${height} RGB picture (expected ${rgb.length})`);
  }
  const after = $('after');
  drawRgb(after, out, width, height);
  after.dataset.kernel = name;
  after.dataset.source = source;
  $('after-caption').textContent = `(${name}, ${ms.toFixed(1)} ms on the GPU)`;
}

// Filter runs go one after another in the order asked for; the status reads "done" only when the
// last one asked for has finished, so a test (or a user) never sees an older picture as the result.
let filterQueue = Promise.resolve();
let filtersPending = 0;

/** Queues `task`; returns when it has run. */
function queueFilter(task) {
  filtersPending += 1;
  $('filter-status').textContent = 'working…';
  filterQueue = filterQueue.then(task).then(
    () => {
      filtersPending -= 1;
      if (filtersPending === 0) $('filter-status').textContent = 'done';
    },
    (e) => {
      filtersPending -= 1;
      $('filter-status').textContent = `error: ${message(e)}`;
      showError('image filter', e);
    },
  );
  return filterQueue;
}

function setUpFilter(engine) {
  const select = $('kernel');
  select.replaceChildren(...filterNames().map((name) => el('option', { value: name }, name)));
  select.value = filterNames().includes('edges') ? 'edges' : select.options[0].value;
  select.addEventListener('change', () => queueFilter(() => filterPicture(engine)));
  const file = $('file');
  file.addEventListener('change', () => {
    const picked = file.files[0];
    queueFilter(async () => {
      if (picked) await usePicture(picked);
      else useSample();
      await filterPicture(engine);
    });
  });
  $('sample').addEventListener('click', () => {
    file.value = '';
    queueFilter(async () => {
      useSample();
      await filterPicture(engine);
    });
  });
  for (const id of ['kernel', 'file', 'sample']) $(id).disabled = false;
  return queueFilter(async () => {
    useSample();
    await filterPicture(engine);
  });
}

// ---------------------------------------------------------------------------------------------
// The benchmark

/** The layers timed: batch 1, bias on, `padding` keeps 3x3 layers' size. */
const BENCH_LAYERS = [
  { name: '16 → 32 channels, 3x3, 64x64', xShape: [1, 16, 64, 64], wShape: [32, 16, 3, 3], options: { padding: 1 } },
  { name: '64 → 64 channels, 3x3, 28x28', xShape: [1, 64, 28, 28], wShape: [64, 64, 3, 3], options: { padding: 1 } },
  { name: '128 → 128 channels, 1x1, 32x32', xShape: [1, 128, 32, 32], wShape: [128, 128, 1, 1], options: {} },
  { name: 'depthwise 64 channels, 3x3, 56x56', xShape: [1, 64, 56, 56], wShape: [64, 1, 3, 3], options: { padding: 1, groups: 64 } },
];
const BENCH_RUNS = 3;

const product = (shape) => shape.reduce((a, b) => a * b, 1);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Lets the page paint between long synchronous CPU runs. */
const breathe = () => new Promise((resolve) => setTimeout(resolve, 16));

/** Milliseconds of `f()` (awaited): the median of `BENCH_RUNS` runs after one warm-up, and its last result. */
async function timeRuns(f) {
  let result = await f();
  const times = [];
  for (let i = 0; i < BENCH_RUNS; i++) {
    await breathe();
    const start = performance.now();
    result = await f();
    times.push(performance.now() - start);
  }
  return { ms: median(times), result };
}

function benchTable(rows) {
  const head = el('tr', {}, ...['layer', 'GFLOP', 'GPU ms', 'GPU GFLOP/s', 'CPU reference ms',
    'CPU reference GFLOP/s', 'GPU / CPU speed', 'max |GPU − CPU|'].map((h) => el('th', {}, h)));
  const table = el('table', { class: 'bench' }, el('thead', {}, head));
  const body = el('tbody');
  for (const r of rows) {
    body.append(el('tr', { class: r.ok ? 'ok' : 'bad' },
      el('td', {}, r.name),
      el('td', {}, (r.flops / 1e9).toFixed(3)),
      el('td', {}, r.gpuMs.toFixed(1)),
      el('td', {}, r.gpuGflops.toFixed(2)),
      el('td', {}, r.cpuMs.toFixed(1)),
      el('td', {}, r.cpuGflops.toFixed(2)),
      el('td', {}, `${r.speedup.toFixed(1)}x`),
      el('td', {}, `${r.ok ? '' : '✗ '}${r.maxAbsDiff.toExponential(1)}`)));
  }
  table.append(body);
  return table;
}

async function runBench(engine) {
  const status = $('bench-status');
  const button = $('bench-run');
  button.disabled = true;
  const rows = [];
  window.wgconvResults.bench = rows;
  $('bench').replaceChildren();
  try {
    for (const [i, layer] of BENCH_LAYERS.entries()) {
      status.textContent = `running ${layer.name} (${i + 1} of ${BENCH_LAYERS.length}; the page pauses while the CPU runs)…`;
      await breathe();
      const x = randomValues(product(layer.xShape), 1 + i);
      const w = randomValues(product(layer.wShape), 100 + i);
      const bias = randomValues(layer.wShape[0], 200 + i);
      const args = [x, layer.xShape, w, layer.wShape, bias, layer.options];
      const gpu = await timeRuns(() => engine.conv2d(...args));
      const cpu = await timeRuns(() => conv2dReference(...args));
      // 2 N O (C/groups) kh kw OH OW: one multiply and one add per weight per output element.
      const [, cg, kh, kw] = layer.wShape;
      const flops = 2 * product(cpu.result.shape) * cg * kh * kw;
      const maxAbs = maxAbsDiff(gpu.result, cpu.result);
      const scale = cpu.result.data.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
      rows.push({
        name: layer.name, flops,
        gpuMs: gpu.ms, cpuMs: cpu.ms,
        gpuGflops: flops / (gpu.ms * 1e6), cpuGflops: flops / (cpu.ms * 1e6),
        speedup: cpu.ms / gpu.ms,
        maxAbsDiff: maxAbs, ok: maxAbs <= 1e-4 * scale,
      });
      $('bench').replaceChildren(benchTable(rows));
    }
    const bad = rows.filter((r) => !r.ok);
    if (bad.length) throw new Error(`the GPU and the CPU reference disagree on ${bad.map((r) => r.name).join(', ')}`);
    status.textContent = 'done';
  } catch (e) {
    status.textContent = `error: ${message(e)}`;
    showError('benchmark', e);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Start-up: the module, the engine, then the walkthrough and the first filter.

async function main() {
  await init();
  let engine = null;
  try {
    engine = await Engine.create();
    $('adapter').textContent = engine.adapterInfo;
  } catch (e) {
    window.wgconvError = `no WebGPU: ${message(e)}`;
    $('adapter').textContent = `none: ${message(e)}`;
    $('filter-status').textContent = 'error: no GPU';
    showError('WebGPU (try a browser with WebGPU enabled)', e);
  }
  window.wgconv = { engine, conv2dReference, filterNames, sampleImage };
  // Without a GPU the walkthrough still shows the CPU reference, and says the GPU is missing.
  await runWalkthrough(engine);
  if (!engine) return;
  await setUpFilter(engine);
  const button = $('bench-run');
  button.addEventListener('click', () => runBench(engine));
  button.disabled = false;
  window.wgconvReady = true;
}

main().catch((e) => {
  window.wgconvError = message(e);
  showError('start-up', e);
});
