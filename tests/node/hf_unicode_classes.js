// hf_unicode_classes.js - prints, for each of \p{L}, \p{N} and \s, the code points
// that Hugging Face tokenizers' own regex engine (Oniguruma, via the Rust binding)
// puts in that class, as "CLASS hex hex ...". Used by gen_tok_unicode.py.
'use strict';
const tk = require('@anush008/tokenizers');
const SENT = '\u0001'; // U+0001 is in none of the three classes
function classify(pat) {
  const j = {
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: { type: 'Split', pattern: { Regex: pat }, behavior: 'Isolated', invert: false },
    post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: {}, merges: [] },
  };
  const pt = tk.Tokenizer.fromString(JSON.stringify(j)).getPreTokenizer();
  const out = [];
  for (let base = 0; base < 0x110000; base += 0x10000) {
    // SENT c SENT c ... : a matched c becomes a piece of its own; an unmatched c
    // merges with the sentinels around it.
    const parts = [];
    for (let c = base; c < base + 0x10000; c++) {
      if ((c >= 0xD800 && c <= 0xDFFF) || c === 1) continue;
      parts.push(SENT, String.fromCodePoint(c));
    }
    parts.push(SENT);
    for (const [p] of pt.preTokenizeString(parts.join(''))) {
      if (p !== SENT && [...p].length === 1) out.push(p.codePointAt(0));
    }
  }
  return out;
}
for (const [name, pat] of [['L', '\\p{L}'], ['N', '\\p{N}'], ['S', '\\s']]) {
  process.stdout.write(name + ' ' + classify(pat).map((c) => c.toString(16)).join(' ') + '\n');
}
