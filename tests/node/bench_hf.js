// bench_hf.js - times Hugging Face tokenizers (Rust, Node binding) encoding a file:
// median wall and process-CPU milliseconds over N runs after one warm-up, printed
// as one JSON line. The binding also builds offsets and JS arrays per call, which
// counts against it. Usage: node bench_hf.js TOKENIZER_JSON FILE N
'use strict';
const fs = require('fs');
const { Tokenizer } = require('@anush008/tokenizers');
const [tokPath, file, nArg] = process.argv.slice(2);
const tok = Tokenizer.fromFile(tokPath);
const text = fs.readFileSync(file, 'utf8');
const bytes = Buffer.byteLength(text, 'utf8');
const median = (a) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
(async () => {
  const warm = await tok.encode(text, null, { addSpecialTokens: false });
  const walls = [], cpus = [];
  for (let i = 0; i < Number(nArg || 11); i++) {
    const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
    await tok.encode(text, null, { addSpecialTokens: false });
    const t1 = process.hrtime.bigint(), c1 = process.cpuUsage(c0);
    walls.push(Number(t1 - t0) / 1e6);
    cpus.push((c1.user + c1.system) / 1e3);
  }
  const w = median(walls), c = median(cpus);
  console.log(JSON.stringify({ bytes, tokens: warm.getIds().length, wall_ms: w, cpu_ms: c,
    wall_mbs: bytes / w / 1e3, cpu_mbs: bytes / c / 1e3 }));
})();
