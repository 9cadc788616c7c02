#!/usr/bin/env python3
"""Golden data for shardcheck's C++ tokenizer and Qwen3 chat template.

The reference is HF `tokenizers` (Tokenizer.from_file(...).encode(s, add_special_tokens=False))
and transformers' AutoTokenizer.apply_chat_template. Neither is available on the developer
machines, so this runs on the GPU machine (python3 with tokenizers + transformers, no network),
with the tokenizer folder carried there:

    python3 tools/make_tokenizer_goldens.py --tokenizer-dir .deps/qwen3-tokenizer \
        --out "$OUT/qwen3_goldens.json"

    python3 tools/make_tokenizer_goldens.py --corpus-only --out /tmp/corpus.json   # no HF needed

The corpus (>= 1000 strings) is generated deterministically here: hand-written edge cases
(whitespace runs, CRLF, NBSP, contractions, NFC/NFD pairs, special tokens inside text, code,
URLs, many scripts, emoji with ZWJ and skin tones, long runs) plus seeded random mixes. The
strings are stored in the output, so the C++ test does not depend on this script.

Output (one JSON object, UTF-8, not ASCII-escaped):
  meta:    versions, tokenizer.json size and sha256, counts, any stage that failed
  encode:  [{text, ids, decoded?, decoded_skip?, pieces?}]  decoded is present only when
           decode(ids, skip_special_tokens=False) != text; decoded_skip only when
           decode(ids, skip_special_tokens=True) != that; pieces = [decode([id]) for id in ids]
           for a subset (byte-level fragments decode to U+FFFD)
  chat:    [{messages, add_generation_prompt, enable_thinking (absent = not passed), text, ids}]
  dataset: [{file, index, side, text, ids, read}] prompts built from fixtures/datasets/ with
           transformers' template (CAA: question, generation prompt, enable_thinking=False, then
           "(" + letter; JSONL: the text as a user turn), their ids, and `read`, the index of the
           token holding the prompt's last character (Encoding.char_to_token)
Every stage is wrapped so that one failure is recorded in meta.errors instead of losing the run.
"""
import argparse
import hashlib
import json
import os
import random
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from atomic_out import atomic_path  # noqa: E402
import unicodedata

SEED = 20240611


# ----------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------

def nfd(s):
    return unicodedata.normalize("NFD", s)


def nfc(s):
    return unicodedata.normalize("NFC", s)


CODE_SNIPPETS = [
    'def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n',
    'import numpy as np\nA = np.zeros((3, 4), dtype=np.float32)\nfor i in range(3):\n\tA[i] += i\n',
    '#include <vector>\nint main() {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) x *= 2;\n  return v[0] != 2;\n}\n',
    'template <typename T>\nT max(T a, T b) { return a > b ? a : b; }  // C++\r\n',
    'const add = (a, b) => a + b;\nconsole.log(`sum: ${add(1, 2)}`);\n',
    'fn main() {\n    let s: Vec<u8> = b"hi".to_vec();\n    println!("{:?}", s);\n}\n',
    'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hello, 世界")\n}\n',
    'SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%son\' ORDER BY id DESC;',
    '<!DOCTYPE html>\n<html><head><title>Test &amp; more</title></head>\n<body class="x">Hi</body></html>',
    '{"key": "value", "n": [1, 2.5, -3e-4], "nested": {"ok": true, "none": null}}',
    '#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo "$f" | wc -c; done 2>&1 | tee log\n',
    '\\begin{equation}\n  E = mc^2 \\quad \\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2}\n\\end{equation}',
    '| col A | col B |\n|------:|:------|\n| 1     | two   |\n',
    're.compile(r"(?P<year>\\d{4})-(?P<month>\\d{2})")',
    '    if (x != NULL && *x == \'\\0\') { return -1; }\n',
    'public static void main(String[] args) { System.out.println("Hi!"); }',
    'x = [i for i in range(10) if i % 2 == 0]  # even numbers\n',
    'SomeClass::someMethod(arg1, arg2)->chain()?.value ?? defaultValue;',
    '```python\nprint("fenced")\n```\n',
    'diff --git a/f.c b/f.c\n@@ -1,3 +1,4 @@\n-old line\n+new line\n',
    'CamelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case-id',
    'a+=1;b-=2;c*=3;d/=4;e%=5;f<<=1;g>>=2;h&=3;i|=4;j^=5;',
    '0xDEADBEEF 0b1010 0o777 1_000_000 3.0e-10f 42u64',
]

URLS = [
    "https://www.example.com/path/to/page?query=1&lang=en#section-2",
    "http://localhost:8080/api/v1/items/42",
    "ftp://files.example.org/pub/file.tar.gz",
    "mailto:someone@example.com",
    "user.name+tag@sub.example.co.uk",
    "https://例子.测试/路径?查询=值",
    "file:///home/user/My%20Documents/report.pdf",
    "C:\\Program Files\\App\\bin\\app.exe",
    "/usr/local/lib/python3.12/site-packages/",
    "git@github.com:owner/repo.git",
]

SCRIPTS = [
    "你好，世界！今天天气很好。",
    "日本語のテキストです。カタカナとひらがな。",
    "한국어 텍스트입니다. 안녕하세요!",
    "漢字かなカナ混じり文とEnglish words。",
    "中文English混合text测试123",
    "مرحبا بالعالم! كيف حالك؟",
    "שלום עולם, מה שלומך?",
    "नमस्ते दुनिया। आप कैसे हैं?",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่าง",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε! Ελληνικά.",
    "გამარჯობა მსოფლიო",
    "Բարեւ աշխարհ",
    "வணக்கம் உலகம்",
    "ওহে বিশ্ব",
    "ሰላም ልዑል",
    "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ",
    "བོད་ཡིག",
    "Xin chào thế giới! Tiếng Việt có dấu.",
    "Zażółć gęślą jaźń",
    "Ærøskøbing straße Œuvre ﬁnal",
    "İstanbul ısırgan ĞÜŞÖÇ",
    "ᚠᚢᚦᚨᚱᚲ runes",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝐛𝐨𝐥𝐝",
    "ʻOkina and ʼapostrophe",
    "Ελληνικά και русский и 中文 и العربية",
]

EMOJI = [
    "😀", "😂🤣", "👍", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "🇺🇸🇯🇵🇩🇪", "❤️", "❤",
    "1️⃣", "#️⃣", "🧑🏿‍💻", "👩🏼‍🚀", "🤷‍♂️", "🫶🏻", "🐈‍⬛", "🧔🏻‍♀️", "emoji😀in😀text",
    "I ❤️ 🍕 and 🍣!", "😀😀😀😀😀", "☃ ★ ☎ ✓ ✗ ♠ ♣ ♥ ♦",
]

CONTRACTIONS = [
    "I'm", "you're", "it's", "don't", "we've", "they'll", "she'd", "I'M", "YOU'RE", "It'S",
    "DON'T", "We'Ve", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL",
    "don\u2019t", "rock'n'roll", "'\u017f", "'K", "'\u212a", "can't't", "O'Neil's", "''s", "' s",
    "the dog's bone", "students' papers", "'tis", "y'all'd've",
]

NUMBERS = [
    "0", "7", "42", "123", "1234567890", "3.14159265358979", "1,000,000", "-42", "+7", "1e10",
    "6.022e23", "0x1F", "2024-06-11", "12:34:56", "v1.2.3", "١٢٣٤٥", "१२३४५", "௧௨௩", "²³",
    "ⅫⅣ", "½ ¼ ¾", "①②③", "9" * 60, "123456789" * 7, "1 2 3 4 5", "1\t2\n3", "$1,234.56",
    "€99,99", "50%", "#1", "3rd 21st 2nd", "10km/h", "٣.١٤",
]

WHITESPACE = [
    "", " ", "  ", "   ", "\t", "\n", "\r", "\r\n", "\n\n\n", " \n ", "\t\t\tindent",
    "a  b   c    d", "a \t b", "hello   world", "  leading spaces", "trailing spaces   ",
    "tab\tseparated\tvalues", "line1\nline2\r\nline3\rline4", "NBSP\u00a0here",
    "\u00a0\u00a0", "x\u00a0\u00a0y", "\u2003em space", "\u3000ideographic\u3000space",
    "zero\u200bwidth\u200cnon\u200djoiner", "\u180e mongolian vowel separator", "\u0085next line",
    "\u2028line sep\u2029para sep", "\ufeffBOM at start", "nul\x00in\x00text", "\x1f\x1c\x1d\x1e",
    "\x0b\x0c", "  \n  \n", "\r\r\n\n", " \r\n ", "end with space ", "word\n", "\nword",
    "a\n\n\nb", "a \n b", "a\t\n\tb", "   \t   ", " a", "  a", "   a", "a ", "a  ",
    "x \u00a0 y", "\u202f\u205f\u2000\u200a", "a\u2029b", "\t \t \t", "\n \n \n",
    "paragraph one.\n\nparagraph two.\n\n\nthree", "  - item\n  - item\n",
]

SPECIAL_IN_TEXT = [
    "<|im_start|>user\nhi<|im_end|>\n",
    "<|endoftext|>",
    "a<|endoftext|>b",
    "<think>x</think>",
    "<think>\n\n</think>\n\n",
    "<|im_start|><|im_end|>",
    "<|im_start",
    "<|im_start|",
    "<<|im_end|>>",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
    " <|im_end|> ",
    "  <|im_end|>  ",
    "<|fim_prefix|>def f(<|fim_suffix|>):<|fim_middle|>",
    "<|IM_START|>",
    "<|im_start|>" * 3,
    "text <|endoftext|> more text",
    "<|vision_start|><|image_pad|><|vision_end|>",
    "<tool_response>ok</tool_response>",
    "<|box_start|>(1,2),(3,4)<|box_end|>",
    "<|object_ref_start|>cat<|object_ref_end|>",
    "<|repo_name|>x<|file_sep|>y",
    "< |im_start| >",
    "<|im_start|>assistant\n<think>\nreasoning\n</think>\n\nanswer<|im_end|>",
    "\n<|im_end|>\n",
    "<|endoftext|><|endoftext|>",
    "x</think>y",
    "<|quad_start|><|quad_end|><|video_pad|><|vision_pad|>",
    "<|fim_pad|>",
]

COMBINING = [
    "e\u0301", "\u00e9", "n\u0303", "\u00c5", "A\u030a", "\u212b", "\u1e9b\u0323",
    "q\u0307\u0323", "\u1100\u1161\u11a8", "\u1100\u1161", "\uac00\u11a8", "\ufb01",
    "\u2126", "a\u0300\u0301\u0302\u0303\u0304", "Z\u0351\u036b\u0343\u036a\u0302\u036b",
    "\u0915\u094d\u0937", "\u0e01\u0e34\u0e4a", "\u05e9\u05c1\u05b8",
    "o\u0308\u0304", "\u00f6\u0304", "\u0041\u0328\u0301", "\u1e0b\u0323", "\u0064\u0323\u0307",
    "\u212b\u2126\u212a", "\u0340\u0341", "\u0344", "\u2000\u2001", "\u2329\u232a",
    "\u0f73", "\u0958", "\ufa10", "\U0002f800",
]

NFC_WORDS = ["café", "naïve", "résumé", "Ångström", "Pokémon", "Việt Nam", "São Paulo",
             "Ελλάδα", "ąčęėįšųūž", "Crème brûlée", "façade", "coöperate", "Müller", "한글",
             "가각간", "ぱぴぷぺぽ", "ガギグゲゴ"]

LONG = [
    "a" * 3000, "ab" * 1500, " " * 2000, "\n" * 500, "1" * 1000, "!" * 1000, "中" * 1000,
    "😀" * 300, "Pneumonoultramicroscopicsilicovolcanoconiosis" * 20,
    "supercalifragilisticexpialidocious", "x" + " " * 500 + "y", "\t" * 300 + "z",
    "-" * 800, "=" * 80 + "\n" + "=" * 80, "é" * 500, "e\u0301" * 300, "ab " * 700,
    "https://example.com/" + "a/b/c/" * 100, "The quick brown fox jumps over the lazy dog. " * 40,
    "".join(chr(0x4e00 + (i * 37) % 2000) for i in range(1500)),
]

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world!",
    "Hello world",
    "a",
    "A",
    "It was the best of times, it was the worst of times.",
    "Q: What is 2+2?\nA: 4.",
    "Question: Which do you prefer?\n\nChoices:\n (A) Metric units\n (B) Imperial units",
    "(A", "(B", "(A)", " (A)", "Answer: (B) Imperial",
    "She said, \"Don't go!\" — and left…",
    "Em—dash, en–dash, ellipsis… «guillemets» „quotes“ ‘single’",
    "ALL CAPS SENTENCE WITH NUMBERS 123 AND SYMBOLS !@#$%^&*()",
    "mIxEd CaSe wOrDs",
    "e.g. i.e. etc. U.S.A. Ph.D.",
    "Mr. Smith's car isn't here; it's at O'Hare.",
    "#hashtag @mention $TICKER ~tilde `backtick`",
    "(parentheses) [brackets] {braces} <angles>",
    "...", "!!!", "???", "?!", "a.b.c", "a,b,c", "a;b:c",
    "¿Dónde está la biblioteca? ¡Aquí!",
    "Ça va? Très bien, merci.",
    "Größenordnung der Fußgängerübergänge",
    "© 2024 ® ™ § ¶ † ‡ • ° ± × ÷ ≠ ≤ ≥ ∞ √ ∑ ∏ ∫",
    "→ ← ↑ ↓ ⇒ ⇔ ∀ ∃ ∈ ∉ ∅ ∧ ∨ ¬",
    "\"quoted\" 'single' `code`",
    "snake_case and __dunder__",
    "C++ and C# and F#",
    "1/2 + 3/4 = 5/4",
    "H₂O and CO₂, x² + y² = z²",
]


def fixed_strings():
    out = []
    for group in (PROSE, WHITESPACE, CONTRACTIONS, NUMBERS, SCRIPTS, EMOJI, COMBINING,
                  SPECIAL_IN_TEXT, CODE_SNIPPETS, URLS, LONG):
        out.extend(group)
    for w in NFC_WORDS:
        out.extend([nfc(w), nfd(w), "The word " + nfd(w) + " decomposed."])
    # Each script and code snippet again with a leading space and inside a sentence.
    for s in SCRIPTS + CODE_SNIPPETS[:8]:
        out.append(" " + s)
        out.append("Text: " + s + "\n")
    return out


# Random mixing: fragments of many kinds joined by varied separators.
FRAGMENTS = (PROSE[:30] + SCRIPTS + EMOJI + CONTRACTIONS + NUMBERS[:30] + COMBINING + NFC_WORDS
             + [nfd(w) for w in NFC_WORDS] + URLS + ["<|im_start|>", "<|im_end|>", "<|endoftext|>",
                                                    "<think>", "</think>", "<tool_call>"])
SEPARATORS = ["", " ", "  ", "\n", "\t", "\r\n", "\u00a0", ", ", ". ", " - ", "\n\n", "   ", "/",
              ":", "'", "\"", "(", ")"]
# Code point ranges for random strings (long-assigned blocks; unassigned points are skipped).
RANGES = [
    (0x20, 0x7e), (0xa0, 0x24f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x5ff),
    (0x600, 0x6ff), (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f),
    (0x2100, 0x214f), (0x2190, 0x21ff), (0x2200, 0x22ff), (0x2500, 0x257f), (0x3000, 0x30ff),
    (0x4e00, 0x9fa5), (0xac00, 0xd7a3), (0xff00, 0xffef), (0x1f300, 0x1f5ff), (0x1f600, 0x1f64f),
    (0x1d400, 0x1d4ff), (0x1f900, 0x1f9ff),
]


def random_codepoint_string(rng, n):
    chars = []
    while len(chars) < n:
        lo, hi = rng.choice(RANGES)
        c = chr(rng.randint(lo, hi))
        if unicodedata.category(c) in ("Cn", "Cs", "Co"):
            continue
        chars.append(c)
    return "".join(chars)


def random_mix(rng):
    k = rng.randint(1, 12)
    parts = []
    for _ in range(k):
        r = rng.random()
        if r < 0.6:
            parts.append(rng.choice(FRAGMENTS))
        elif r < 0.8:
            parts.append(random_codepoint_string(rng, rng.randint(1, 12)))
        elif r < 0.9:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 15))))
        else:
            parts.append(rng.choice(CODE_SNIPPETS)[: rng.randint(5, 60)])
        parts.append(rng.choice(SEPARATORS))
    s = "".join(parts)
    if rng.random() < 0.3:
        s = s.strip()
    return s


def build_corpus(n_random=900):
    rng = random.Random(SEED)
    corpus = fixed_strings()
    for _ in range(n_random):
        corpus.append(random_mix(rng))
    # Whitespace-only random runs, which stress the \s alternatives of the split regex.
    ws = [" ", "\t", "\n", "\r", "\u00a0", "\u3000", "\r\n"]
    for _ in range(60):
        corpus.append("".join(rng.choice(ws) for _ in range(rng.randint(1, 12))) +
                      rng.choice(["", "x", "1", "!", "中", " y"]))
    # De-duplicate, keeping order.
    seen, out = set(), []
    for s in corpus:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


# ----------------------------------------------------------------------------------------------
# Chat cases
# ----------------------------------------------------------------------------------------------

CAA_Q = ("Which units would you use to describe the height of a mountain?\n\nChoices:\n"
         " (A) Meters\n (B) Feet")


def chat_cases():
    u = lambda c: {"role": "user", "content": c}
    a = lambda c: {"role": "assistant", "content": c}
    s = lambda c: {"role": "system", "content": c}
    t = lambda c: {"role": "tool", "content": c}
    cases = []

    def add(msgs, gen, think):
        cases.append({"messages": msgs, "add_generation_prompt": gen, "enable_thinking": think})

    add([u("Hello")], True, False)
    add([u("Hello")], True, True)
    add([u("Hello")], True, None)
    add([u("Hello")], False, None)
    add([u(CAA_Q)], True, False)
    add([s("You are a helpful assistant."), u("Hi there!")], True, False)
    add([s("Be brief."), u("What is 2+2?")], True, None)
    add([u("What is 2+2?"), a("4")], False, None)
    add([u("What is 2+2?"), a("4")], True, False)
    add([u("What is 2+2?"), a("4"), u("And 3+3?")], True, False)
    add([s("sys"), u("q1"), a("a1"), u("q2"), a("a2")], False, False)
    add([u("q"), a("<think>\nLet me think.\n</think>\n\nThe answer.")], False, None)
    add([u("q"), a("<think>\nhidden\n</think>\n\nold answer"), u("q2")], True, False)
    add([u("q"), {"role": "assistant", "content": "final", "reasoning_content": "because"}], False, None)
    add([u("q"), a("no think here"), u("q2"), a("\n\nleading newlines")], False, None)
    add([u("call a tool"), a("Calling."), t("{\"result\": 1}"), t("{\"result\": 2}"), a("Done.")], False, None)
    add([u("call"), a(""), t("r1"), a("ok")], True, False)
    add([u("<tool_response>\nx\n</tool_response>"), a("y")], False, None)
    add([u("a"), s("mid-conversation system"), u("b")], True, False)
    add([u("你好，世界！😀"), a("Привет\nмир")], True, False)
    add([u("")], True, False)
    add([s(""), u("x")], True, False)
    add([u("multi\nline\n\ncontent with <|im_end|> inside")], True, False)
    add([u("q"), a("<think>a</think><think>b</think>tail")], False, None)
    add([u("q"), a("pre<think>\n\nr\n\n</think>\n\n\npost")], True, True)
    return cases


# ----------------------------------------------------------------------------------------------
# Reference runs
# ----------------------------------------------------------------------------------------------

def dataset_goldens(at, tk, datasets_dir, errors):
    """Steering prompts of the fixture datasets, rendered by transformers' template."""
    rows = []

    def add(file, index, side, text):
        enc = tk.encode(text, add_special_tokens=False)
        rows.append({"file": file, "index": index, "side": side, "text": text, "ids": enc.ids,
                     "read": enc.char_to_token(len(text) - 1)})

    def prompt(user):
        return at.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                      add_generation_prompt=True, enable_thinking=False)
    for name in sorted(os.listdir(datasets_dir)):
        path = os.path.join(datasets_dir, name)
        try:
            if name.endswith(".json"):
                for i, item in enumerate(json.load(open(path, encoding="utf-8"))):
                    base = prompt(item["question"]) + "("
                    add(name, i, "positive", base + item["answer_matching_behavior"].strip()[1])
                    add(name, i, "negative", base + item["answer_not_matching_behavior"].strip()[1])
            elif name.endswith(".jsonl"):
                with open(path, encoding="utf-8") as f:
                    for line_no, line in enumerate(f, 1):
                        if not line.strip():
                            continue
                        pair = json.loads(line)
                        add(name, line_no, "positive", prompt(pair["positive"]))
                        add(name, line_no, "negative", prompt(pair["negative"]))
        except Exception as ex:  # noqa: BLE001
            errors.append(f"dataset {name}: {ex!r}")
    return rows


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer-dir", default=".deps/qwen3-tokenizer")
    ap.add_argument("--out", required=True)
    ap.add_argument("--datasets-dir", default="fixtures/datasets")
    ap.add_argument("--corpus-only", action="store_true")
    args = ap.parse_args()

    corpus = build_corpus()
    cases = chat_cases()
    if args.corpus_only:
        with atomic_path(args.out) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump({"corpus": corpus, "chat": cases}, f, ensure_ascii=False)
        print(f"corpus: {len(corpus)} strings, {len(cases)} chat cases -> {args.out}")
        return 0

    errors = []
    tok_json = os.path.join(args.tokenizer_dir, "tokenizer.json")
    meta = {"generator": "tools/make_tokenizer_goldens.py", "seed": SEED,
            "python": sys.version.split()[0], "unicodedata": unicodedata.unidata_version,
            "tokenizer_json_size": os.path.getsize(tok_json),
            "tokenizer_json_sha256": sha256_file(tok_json)}
    out = {"meta": meta, "encode": [], "chat": []}

    import tokenizers
    meta["tokenizers"] = tokenizers.__version__
    tk = tokenizers.Tokenizer.from_file(tok_json)

    # 1) Encode / decode goldens.
    for i, s in enumerate(corpus):
        try:
            ids = tk.encode(s, add_special_tokens=False).ids
            e = {"text": s, "ids": ids}
            dec = tk.decode(ids, skip_special_tokens=False)
            dec_skip = tk.decode(ids, skip_special_tokens=True)
            if dec != s:
                e["decoded"] = dec
            if dec_skip != dec:
                e["decoded_skip"] = dec_skip
            # Per-token decode for a subset with multi-byte text: exercises partial UTF-8.
            if i % 5 == 0 and len(ids) <= 64 and any(ord(c) > 0x7f for c in s):
                e["pieces"] = [tk.decode([t], skip_special_tokens=False) for t in ids]
            out["encode"].append(e)
        except Exception as ex:  # noqa: BLE001 - recorded, not fatal
            errors.append(f"encode[{i}]: {ex!r}")

    # 2) Chat template goldens from transformers.
    try:
        import transformers
        meta["transformers"] = transformers.__version__
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer
        at = AutoTokenizer.from_pretrained(args.tokenizer_dir)
        meta["auto_tokenizer_class"] = type(at).__name__
        for k, c in enumerate(cases):
            try:
                kw = {}
                if c["enable_thinking"] is not None:
                    kw["enable_thinking"] = c["enable_thinking"]
                text = at.apply_chat_template(c["messages"], tokenize=False,
                                              add_generation_prompt=c["add_generation_prompt"], **kw)
                entry = {"messages": c["messages"], "add_generation_prompt": c["add_generation_prompt"],
                         "text": text, "ids": tk.encode(text, add_special_tokens=False).ids}
                if c["enable_thinking"] is not None:
                    entry["enable_thinking"] = c["enable_thinking"]
                out["chat"].append(entry)
            except Exception as ex:  # noqa: BLE001
                errors.append(f"chat[{k}]: {ex!r}")
        # Cross-check: transformers' fast tokenizer gives the same ids as tokenizers.
        mism = 0
        for e in out["encode"]:
            got = at(e["text"], add_special_tokens=False)["input_ids"]
            if got != e["ids"]:
                mism += 1
        meta["transformers_vs_tokenizers_mismatches"] = mism
        out["dataset"] = dataset_goldens(at, tk, args.datasets_dir, errors)
    except Exception:  # noqa: BLE001
        errors.append("transformers: " + traceback.format_exc(limit=3))

    # 3) Reference speed of HF tokenizers on this corpus (device CPU; context for the C++ bench).
    try:
        import time
        texts = [e["text"] for e in out["encode"]]
        n_tok = sum(len(e["ids"]) for e in out["encode"])
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
        reps = 5
        t0 = time.perf_counter()
        for _ in range(reps):
            for t in texts:
                tk.encode(t, add_special_tokens=False)
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(reps):
            tk.encode_batch(texts, add_special_tokens=False)
        dtb = time.perf_counter() - t0
        meta["hf_speed"] = {"corpus_tokens": n_tok, "corpus_bytes": n_bytes, "cpus": os.cpu_count(),
                            "encode_loop_tokens_per_s": round(reps * n_tok / dt),
                            "encode_loop_mb_per_s": round(reps * n_bytes / dt / 1e6, 2),
                            "encode_batch_tokens_per_s": round(reps * n_tok / dtb)}
    except Exception as ex:  # noqa: BLE001
        errors.append(f"timing: {ex!r}")

    meta["n_encode"] = len(out["encode"])
    meta["n_chat"] = len(out["chat"])
    meta["errors"] = errors
    with atomic_path(args.out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(json.dumps(meta, indent=1))
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
