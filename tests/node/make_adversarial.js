// make_adversarial.js - writes the adversarial tokenizer inputs (one file per case,
// raw bytes, some deliberately not valid UTF-8) into OUTDIR.
// Usage: node make_adversarial.js OUTDIR
'use strict';
const fs = require('fs');
const path = require('path');
const out = process.argv[2];
fs.mkdirSync(out, { recursive: true });
const cases = [];
const add = (name, s) => cases.push([name, Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8')]);

add('empty', '');
// Contractions in every case, at word starts, ends and inside words.
const con = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];
let cs = '';
for (const c of con) {
  const variants = new Set([c, c.toUpperCase()]);
  if (c.length === 3) { variants.add("'" + c[1].toUpperCase() + c[2]); variants.add("'" + c[1] + c[2].toUpperCase()); }
  for (const v of variants) cs += `it${v} he${v}x THE${v} ${v} ${v}${v} x${v}1 '${v}\n`;
}
add('contractions', cs + "don't I'M we'Re they'VE you'lL she'D 'sup ''s ' s 'ſ 'ſt ’s rock'n'roll '\n");
add('contractions_edge', "'"); add('contractions_edge2', "x'"); add('contractions_edge3', "'l");
// Digit runs of 1..7 in various contexts.
let ds = '';
for (let k = 1; k <= 7; k++) { const d = '1234567'.slice(0, k); ds += `${d} a${d} ${d}b (${d}) ${d}.${d} -${d}\n`; }
add('digits', ds + '٣٤٥٦ ²³ ½¾ Ⅻ 10,000,000 3.14159 0x1F 1e-9');
// Newline mixtures and whitespace runs.
add('newlines', 'a\r\nb\rc\nd\r\n\r\ne\n\n\nf\r\r\ng \n h  \r\n  i\t\n\tj \r \n k\n');
add('trailing_spaces', 'word   ');
add('trailing_mixed', 'word \t \n \t ');
add('only_spaces', '     ');
add('only_newlines', '\n\n\r\n');
add('tabs', '\tindented\n\t\tdouble\t \tmixed\ttabs\t');
add('nbsp', 'a\u00a0b \u00a0c\u00a0\u00a0d\u2009e\u3000f\u202fg\u205f\u1680 h\u0085i\u2028j\u2029k\u000bl\u000cm\u200bn\ufeffo');
add('spaces_before_punct', 'a  ... b   !!! c \n ?? \r\n:) ;-) <tag> </b>');
add('emoji', 'Family: 👨‍👩‍👧‍👦 flag: 🇫🇷 skin: 👍🏽 heart: ❤️ kiss:💏 text👨‍💻code 🙂🙂🙂');
add('cjk', '日本語のテキストです。中文文本，包括标点。한국어 텍스트입니다. 混合mixed日本');
add('arabic', 'مرحبا بالعالم، هذا نص عربي. ١٢٣٤ العربية\u200fRTL שלום עולם');
add('combining', 'e\u0301 a\u0308\u0304 n\u0303o Z\u0351\u0352\u0353a\u0300l\u0301g\u0302o \u0301start ि क्षि');
add('mixed_scripts', 'Ελληνικά Кириллица Latin ไทย हिन्दी ქართული Ꭰꭰ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚');
add('controls', 'a\u0000b\u0001c\u001fd\u007fe\u0080f\u009fg');
add('special_strings', '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\nok<|im_end|>' +
    ' <|begin_of_text|><|end_of_text|> <tool_call>{"a":1}</tool_call> <code>x</code> <|im_start|<|im_end|>> <<think>> ' +
    '<|reserved_special_token_200|> <|reserved_special_token_999|> <|im_end|<|im_end|>');
add('special_adjacent', 'a<|im_end|>b<think>c</think>d<tool_response>e</tool_response>');
add('urls_code', 'https://example.com/path?q=1&r=2#x foo_bar(baz[0], {"k": "v"});\n\tif (x != y) { return -1; }\n// comment');
add('long_word', 'Pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious ' + 'abc'.repeat(200));
add('repeated_1mb', 'a'.repeat(1 << 20));
add('repeated_spaces', ' '.repeat(5000) + 'x' + '\n'.repeat(3000));
add('repeated_punct', '='.repeat(20000) + '\n' + '-'.repeat(777));
add('repeated_digits', '9'.repeat(10001));
// Not valid UTF-8: handled as a lossy UTF-8 decoder (U+FFFD per maximal subpart).
add('invalid_lone', Buffer.from([0x61, 0xff, 0x62, 0x80, 0x63, 0xc0, 0xaf, 0x64]));
add('invalid_truncated', Buffer.concat([Buffer.from('abc '), Buffer.from([0xe2, 0x82]), Buffer.from(' x '), Buffer.from([0xf0, 0x9f, 0x98])]));
add('invalid_surrogate', Buffer.from([0xed, 0xa0, 0x80, 0x20, 0xed, 0xbf, 0xbf, 0x41, 0xf4, 0x90, 0x80, 0x80, 0xf5, 0x41]));
add('invalid_overlong', Buffer.from([0xe0, 0x80, 0xaf, 0x20, 0xf0, 0x80, 0x80, 0xaf, 0x20, 0xc1, 0xbf, 0x20, 0xe0, 0xa0]));
{ // a mixture of valid text and random bytes, fixed seed
  let x = 12345; const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) & 255;
  const b = []; for (let i = 0; i < 4000; i++) b.push(i % 5 ? 'The quick brown fox '.charCodeAt(i % 20) : rnd());
  add('invalid_random', Buffer.from(b));
}
// Code points in a context whose pre-token split differs for each regex class
// (letter, number, space, other): all of U+0000-U+2FFF, every 7th one up to
// U+3FFFF, and the tag/variation-selector plane-14 range.
{
  const parts = [];
  const put = (c) => {
    if (c >= 0xd800 && c <= 0xdfff) return;
    const ch = String.fromCodePoint(c);
    parts.push('a' + ch + ch + 'x1' + ch + 'x\n');
  };
  for (let c = 0; c < 0x3000; c++) put(c);
  for (let c = 0x3000; c < 0x40000; c += 7) put(c);
  for (let c = 0xe0000; c < 0xe0200; c += 3) put(c);
  add('codepoints', parts.join(''));
}
cases.forEach(([name, buf], i) => {
  fs.writeFileSync(path.join(out, String(i).padStart(3, '0') + '_' + name + '.txt'), buf);
});
console.log(`make_adversarial: ${cases.length} cases in ${out}`);
