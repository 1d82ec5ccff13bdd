// hf_ref.js - reference ids from Hugging Face tokenizers (the Rust library via its
// Node binding). For line k of LISTFILE (a path), writes OUTDIR/k.ids (special
// tokens parsed) and OUTDIR/k.nsids (special tokens as plain text: the same
// tokenizer.json with its special added tokens removed), ids one per line. Input
// bytes are read as UTF-8 with U+FFFD for invalid sequences (WHATWG decoding).
// Also writes NDEC random id sequences: OUTDIR/dec_k.ids and HF's decode of them
// with skip_special false / true in dec_k.txt / dec_k.skip.txt.
// Usage: node hf_ref.js TOKENIZER_JSON LISTFILE OUTDIR [NDEC]
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('@anush008/tokenizers');
const [tokPath, listFile, outDir, ndecArg] = process.argv.slice(2);
const json = fs.readFileSync(tokPath, 'utf8');
const tj = JSON.parse(json);
const tokSpecial = Tokenizer.fromString(json);
const specials = tj.added_tokens.filter((t) => t.special).map((t) => t.content);
tj.added_tokens = tj.added_tokens.filter((t) => !t.special);
const tokPlain = Tokenizer.fromString(JSON.stringify(tj));
fs.mkdirSync(outDir, { recursive: true });
const dec = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }); // keep a BOM, as HF would see it
(async () => {
  const files = fs.readFileSync(listFile, 'utf8').split('\n').filter((l) => l.length);
  for (let k = 0; k < files.length; k++) {
    const text = dec.decode(fs.readFileSync(files[k]));
    const a = await tokSpecial.encode(text, null, { addSpecialTokens: false });
    fs.writeFileSync(path.join(outDir, k + '.ids'), a.getIds().join('\n') + '\n');
    // Without any special-token string in the text both tokenizers agree; skip the work.
    const ids = specials.some((sp) => text.includes(sp))
      ? (await tokPlain.encode(text, null, { addSpecialTokens: false })).getIds() : a.getIds();
    fs.writeFileSync(path.join(outDir, k + '.nsids'), ids.join('\n') + '\n');
  }
  const ndec = Number(ndecArg || 0);
  let x = 987654321;
  const rnd = (n) => { x = (x * 1103515245 + 12345) >>> 0; return Math.floor((x / 4294967296) * n); };
  const vocabN = tokSpecial.getVocabSize(true);
  for (let k = 0; k < ndec; k++) {
    const ids = [];
    const len = 1 + rnd(40);
    for (let i = 0; i < len; i++) {
      const r = rnd(10);
      if (r < 4) ids.push(rnd(vocabN));             // anything
      else if (r < 7) ids.push(rnd(256) + (rnd(2) ? 0 : 0)); // low ids: bytes and short pieces
      else if (r < 8) ids.push(128000 + rnd(20));   // special tokens
      else ids.push(100 + rnd(156));                // single-byte tokens of UTF-8 tails/leads
    }
    fs.writeFileSync(path.join(outDir, `dec_${k}.ids`), ids.join('\n') + '\n');
    fs.writeFileSync(path.join(outDir, `dec_${k}.txt`), await tokSpecial.decode(ids, false));
    fs.writeFileSync(path.join(outDir, `dec_${k}.skip.txt`), await tokSpecial.decode(ids, true));
  }
  console.log(`hf_ref: ${files.length} inputs, ${ndec} decode cases -> ${outDir}`);
})().catch((e) => { console.error(e); process.exit(1); });
