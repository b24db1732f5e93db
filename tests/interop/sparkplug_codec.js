// An independent Sparkplug B codec for the interop tests: npm `sparkplug-payload` (the Eclipse
// Tahu JavaScript implementation), driven one JSON line at a time over stdin/stdout.
//   {"op":"decode","hex":"0a..."}                     -> {"timestamp":..,"seq":..,"metrics":[{name,alias,type,value}]}
//   {"op":"encode","payload":{"metrics":[{"name":"Node Control/Rebirth","type":"Boolean","value":true}]}} -> {"hex":"..."}
const readline = require('readline');
const sp = require('sparkplug-payload').get('spBv1.0');

function plain(v) {
  if (v === null || v === undefined) return v;
  if (typeof v === 'object' && typeof v.toNumber === 'function') return v.toNumber();  // Long
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = plain(v[k]);
    return o;
  }
  return v;
}

const rl = readline.createInterface({input: process.stdin});
rl.on('line', (line) => {
  let out;
  try {
    const req = JSON.parse(line);
    if (req.op === 'decode') out = plain(sp.decodePayload(Buffer.from(req.hex, 'hex')));
    else if (req.op === 'encode') out = {hex: Buffer.from(sp.encodePayload(req.payload)).toString('hex')};
    else out = {error: 'unknown op ' + req.op};
  } catch (e) {
    out = {error: String(e)};
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});
