#!/usr/bin/env node
// ONNX Runtime latency of one model, batch 1, on given .npy inputs (onnxruntime-node from
// bench/node_modules, installed by `scripts/install-deps --bench`).
//
//   node bench/ort_bench.js MODEL.onnx [--threads N] [--input NAME=FILE.npy ...]
//        [--warmup 20] [--min-runs 100] [--min-seconds 1] [--max-runs 100000]
//        [--output-dir DIR] [--no-spin] [--seed S]
//
// Session: graphOptimizationLevel 'all', intraOpNumThreads N, interOpNumThreads 1, executionMode
// 'sequential', CPU execution provider, everything else ORT's default (intra-op spinning on unless
// --no-spin). Inputs not given are filled with seeded random data of the declared dtype (dynamic
// dimensions bound to 1).
//
// Latency = wall time (process.hrtime) of one `await session.run(feeds)` from JavaScript, so it
// includes onnxruntime-node's per-call cost (N-API, tensor wrapping, a setImmediate hop): measure
// that floor by running this script on a trivial model (bench/compare uses a 1x16 Relu).
// After --warmup untimed runs it times runs until at least --min-runs runs AND --min-seconds of
// timed work, then prints one JSON object on stdout:
//   {p50_us, p90_us, p99_us, min_us, max_us, mean_us, runs, warmup, threads, session_ms,
//    first_run_us, cpu_per_run_us (process CPU time, all threads, over the timed runs / runs),
//    ort_version, outputs: [{name, dtype, shape, file?}]}
// With --output-dir it writes every output of the last run as DIR/<name>.npy (characters other
// than letters, digits, '.', '_' and '-' become '_', as `kiln run` does).
'use strict';

const fs = require('fs');
const path = require('path');

function die(msg) {
  process.stderr.write(`ort_bench: ${msg}\n`);
  process.exit(2);
}

let ort;
try {
  ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));
} catch (e) {
  die(`cannot load onnxruntime-node from ${path.join(__dirname, 'node_modules')} (run scripts/install-deps --bench): ${e.message}`);
}

// ---------------------------------------------------------------------------------------------
// .npy (format 1.0/2.0/3.0, C order, little-endian) — just what the benchmark needs.
// ---------------------------------------------------------------------------------------------
const NPY_TYPES = {
  '<f4': ['float32', Float32Array], '<f8': ['float64', Float64Array],
  '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array], '<i2': ['int16', Int16Array],
  '|i1': ['int8', Int8Array], '|u1': ['uint8', Uint8Array], '<u2': ['uint16', Uint16Array],
  '<u4': ['uint32', Uint32Array], '<u8': ['uint64', BigUint64Array], '|b1': ['bool', Uint8Array],
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') die(`${file}: not a .npy file`);
  const major = buf[6];
  let hlen, hstart;
  if (major === 1) { hlen = buf.readUInt16LE(8); hstart = 10; } else { hlen = buf.readUInt32LE(8); hstart = 12; }
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) die(`${file}: cannot parse the .npy header ${JSON.stringify(header)}`);
  if (fortran[1] === 'True') die(`${file}: Fortran-order arrays are not supported`);
  let d = descr[1];
  if (d === '<b1' || d === '=b1') d = '|b1';
  if (d === '<i1') d = '|i1';
  if (d === '<u1') d = '|u1';
  const t = NPY_TYPES[d];
  if (!t) die(`${file}: dtype '${descr[1]}' is not supported (supported: ${Object.keys(NPY_TYPES).join(' ')})`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const off = hstart + hlen;
  const bytes = n * t[1].BYTES_PER_ELEMENT;
  if (buf.length - off < bytes) die(`${file}: holds ${buf.length - off} data bytes, shape ${JSON.stringify(dims)} needs ${bytes}`);
  const copy = new ArrayBuffer(bytes); // aligned copy
  new Uint8Array(copy).set(buf.subarray(off, off + bytes));
  let data = new t[1](copy);
  if (t[0] === 'bool') data = Uint8Array.from(data, (v) => (v ? 1 : 0));
  return { dtype: t[0], dims, data: t[0] === 'bool' ? Array.from(data, (v) => v !== 0) : data };
}

function writeNpy(file, tensor) {
  const descr = { float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', int16: '<i2', int8: '|i1', uint8: '|u1',
    uint16: '<u2', uint32: '<u4', uint64: '<u8', bool: '|b1' }[tensor.type];
  if (!descr) die(`cannot write output of type ${tensor.type} as .npy`);
  const shape = tensor.dims.length === 1 ? `(${tensor.dims[0]},)` : `(${tensor.dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  let body;
  if (tensor.type === 'bool') body = Buffer.from(Array.from(tensor.data, (v) => (v ? 1 : 0)));
  else body = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------
function parseArgs(argv) {
  const a = { model: null, threads: 1, inputs: [], warmup: 20, minRuns: 100, minSeconds: 1, maxRuns: 100000,
    outputDir: null, spin: true, seed: 42 };
  const num = (i, name) => {
    const v = Number(argv[i]);
    if (argv[i] === undefined || !Number.isFinite(v) || v < 0) die(`${name} needs a non-negative number, got '${argv[i]}'`);
    return v;
  };
  for (let i = 0; i < argv.length; ++i) {
    const s = argv[i];
    if (s === '--threads') a.threads = num(++i, s);
    else if (s === '--input') a.inputs.push(argv[++i]);
    else if (s === '--warmup') a.warmup = num(++i, s);
    else if (s === '--min-runs') a.minRuns = num(++i, s);
    else if (s === '--min-seconds') a.minSeconds = num(++i, s);
    else if (s === '--max-runs') a.maxRuns = num(++i, s);
    else if (s === '--output-dir') a.outputDir = argv[++i];
    else if (s === '--seed') a.seed = num(++i, s);
    else if (s === '--no-spin') a.spin = false;
    else if (s === '-h' || s === '--help') {
      process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, 22).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
      process.exit(0);
    } else if (s.startsWith('--')) die(`unknown option '${s}'`);
    else if (a.model === null) a.model = s;
    else die(`unexpected argument '${s}'`);
  }
  if (!a.model) die('usage: ort_bench.js MODEL.onnx [--threads N] [--input NAME=FILE.npy ...] (--help for more)');
  if (!Number.isInteger(a.threads) || a.threads < 1) die(`--threads must be a positive integer, got ${a.threads}`);
  if (a.maxRuns < a.minRuns) a.maxRuns = a.minRuns;
  return a;
}

// Small seeded PRNG (mulberry32) + Box-Muller, for inputs that were not given.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6D2B79F5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomTensor(meta, next) {
  const dims = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : 1));
  const n = dims.reduce((a, b) => a * b, 1);
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  switch (meta.type) {
    case 'float32': return new ort.Tensor('float32', Float32Array.from({ length: n }, normal), dims);
    case 'float64': return new ort.Tensor('float64', Float64Array.from({ length: n }, normal), dims);
    case 'int64': return new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(Math.floor(next() * 4))), dims);
    case 'int32': return new ort.Tensor('int32', Int32Array.from({ length: n }, () => Math.floor(next() * 4)), dims);
    case 'int8': return new ort.Tensor('int8', Int8Array.from({ length: n }, () => Math.floor(next() * 4)), dims);
    case 'uint8': return new ort.Tensor('uint8', Uint8Array.from({ length: n }, () => Math.floor(next() * 4)), dims);
    case 'bool': return new ort.Tensor('bool', Array.from({ length: n }, () => next() < 0.5), dims);
    default: die(`input '${meta.name}' has type ${meta.type}; pass it with --input NAME=FILE.npy`);
  }
  return null;
}

function percentile(sorted, p) {
  if (!sorted.length) return 0;
  const idx = p * (sorted.length - 1);
  const lo = Math.floor(idx);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (idx - lo);
}

// The file name `kiln run` uses for an output (apps/kiln/cli_common.cc safe_file_name).
function safeName(name) {
  const s = (name === '' ? 'output' : name).replace(/[^A-Za-z0-9._-]/g, '_');
  return s[0] === '.' ? `_${s.slice(1)}` : s;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(a.model)) die(`${a.model}: no such file`);
  const opts = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  if (!a.spin) opts.extra = { session: { intra_op: { allow_spinning: '0' } } };
  const t0 = process.hrtime.bigint();
  let session;
  try {
    session = await ort.InferenceSession.create(a.model, opts);
  } catch (e) {
    die(`${a.model}: onnxruntime cannot load the model: ${e.message}`);
  }
  const sessionMs = Number(process.hrtime.bigint() - t0) / 1e6;

  const given = {};
  for (const spec of a.inputs) {
    const eq = spec.indexOf('=');
    if (eq <= 0) die(`--input needs NAME=FILE.npy, got '${spec}'`);
    const name = spec.slice(0, eq);
    if (!session.inputNames.includes(name)) die(`the model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
    const t = readNpy(spec.slice(eq + 1));
    given[name] = new ort.Tensor(t.dtype, t.data, t.dims);
  }
  const next = rng(a.seed);
  const feeds = {};
  for (let i = 0; i < session.inputNames.length; ++i) {
    const name = session.inputNames[i];
    feeds[name] = given[name] || randomTensor(session.inputMetadata[i], next);
  }

  let out;
  let t = process.hrtime.bigint();
  try {
    out = await session.run(feeds);
  } catch (e) {
    die(`${a.model}: run failed: ${e.message}`);
  }
  const firstRunUs = Number(process.hrtime.bigint() - t) / 1e3;
  for (let i = 1; i < a.warmup; ++i) out = await session.run(feeds);

  const us = [];
  let timed = 0;
  const cpu0 = process.cpuUsage();
  while ((us.length < a.minRuns || timed < a.minSeconds * 1e6) && us.length < a.maxRuns) {
    t = process.hrtime.bigint();
    out = await session.run(feeds);
    const dt = Number(process.hrtime.bigint() - t) / 1e3;
    us.push(dt);
    timed += dt;
  }
  const cpu = process.cpuUsage(cpu0);
  us.sort((x, y) => x - y);

  const outputs = [];
  if (a.outputDir) fs.mkdirSync(a.outputDir, { recursive: true });
  for (const name of session.outputNames) {
    const o = { name, dtype: out[name].type, shape: out[name].dims };
    if (a.outputDir) {
      o.file = path.join(a.outputDir, `${safeName(name)}.npy`);
      writeNpy(o.file, out[name]);
    }
    outputs.push(o);
  }
  const res = {
    model: a.model, engine: 'onnxruntime-node', ort_version: require(path.join(__dirname, 'node_modules', 'onnxruntime-node', 'package.json')).version,
    threads: a.threads, spin: a.spin, warmup: a.warmup, runs: us.length,
    min_us: us[0], p50_us: percentile(us, 0.5), p90_us: percentile(us, 0.9), p99_us: percentile(us, 0.99),
    max_us: us[us.length - 1], mean_us: timed / us.length,
    cpu_per_run_us: (cpu.user + cpu.system) / us.length, session_ms: sessionMs, first_run_us: firstRunUs, outputs,
  };
  process.stdout.write(JSON.stringify(res) + '\n');
  await session.release();
}

main().catch((e) => die(e.stack || String(e)));
