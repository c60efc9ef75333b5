"""Test-only reference data for the tokenizer package's BPE loader.

    python gen_bpe.py generate   # (re)writes the checked-in files below
    python gen_bpe.py encode     # stdin {"tokenizer": path, "texts": [...]}
                                 # stdout [{"ids": [...], "decoded": "..."}]

`generate` trains two small byte-level BPE tokenizers with HuggingFace
`tokenizers` on a generated corpus (nothing is downloaded) and writes, next
to this script:

  qwen/tokenizer.json   Qwen2/Qwen3 settings: NFC, Qwen's split regex then
                        ByteLevel(use_regex=False), ByteLevel decoder, and
                        Qwen3's 26 added tokens in Qwen's order and flags
                        (<think> and </think> are added but not special).
  gpt2/tokenizer.json   GPT-2 settings: NFKC, ByteLevel(add_prefix_space=True,
                        use_regex=True), one added token marked normalized.
  bpe_golden.json       per tokenizer, ~200 texts with HF's ids and decode.
  chat_golden.json      prompts rendered by transformers' apply_chat_template
                        with Qwen3's chat template (enable_thinking True and
                        False) and with its thinking-only variant, which opens
                        "<think>\\n", plus their ids under the qwen tokenizer.

The Go tests compare against these files always, and call `encode` for a
live comparison on fresh strings when THINKGEN_PYTHON is set.
"""

import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))

# Qwen2's (and Qwen3's) pre-tokenizer split pattern, as in its tokenizer.json.
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen3's added tokens in id order: (content, special).
QWEN_ADDED = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True),
    ("<|box_start|>", True), ("<|box_end|>", True),
    ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True),
    ("<|vision_pad|>", True), ("<|image_pad|>", True), ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False),
    ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
]

# Qwen3's chat template (Qwen3-8B), reproduced here. The hybrid models'
# generation prompt closes an empty reasoning block when thinking is off.
QWEN3_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""

# The thinking-only models (Qwen3-*-Thinking-2507) open the block in the
# generation prompt instead; everything before it renders as above.
QWEN3_THINKING_TEMPLATE = QWEN3_TEMPLATE[: QWEN3_TEMPLATE.index("{%- if add_generation_prompt %}")] + (
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n<think>\\n' }}\n{%- endif %}"
)

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SHAPES = ["circle", "square", "triangle", "star", "hexagon"]
WORDS_UNICODE = [
    "café", "naïve", "über", "straße", "Ärger", "façade", "crème brûlée",
    "привет мир", "Ελληνικά", "日本語のテキスト", "中文字符", "한국어", "عربى",
    "emoji 🙂🚀", "µs ±5 °C", "—“quoted”—", "…", "ﬁne ﬂour", "Ⅻ ① ²",
]


SYLLABLES = ["ka", "ro", "mi", "sen", "tal", "vor", "qui", "pex", "lu", "dra", "ben", "zo",
             "ith", "ung", "ael", "schw", "tt", "ph", "ck", "ee"]


def pseudo_word(rng):
    w = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))
    return w.capitalize() if rng.random() < 0.2 else w


def corpus(rng):
    """Deterministic training text: ShapeWorld prompts, prose, code,
    numbers, whitespace runs and non-ASCII words."""
    lines = []
    for _ in range(6000):
        n = rng.randint(1, 4)
        c, s = rng.choice(COLOURS), rng.choice(SHAPES)
        kind = rng.randrange(9)
        if kind == 8:
            lines.append(" ".join(pseudo_word(rng) for _ in range(rng.randint(3, 10))))
        elif kind == 0:
            lines.append(f"Draw {n} {c} {s}s left of a {rng.choice(COLOURS)} {rng.choice(SHAPES)}.")
        elif kind == 1:
            lines.append(f'a sign that reads "{"".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(3))}"')
        elif kind == 2:
            lines.append(f"<think>\nThe user wants {n} {c} {s}s; {n} + 1 = {n + 1}.\n</think>\n\nOne more {s}.")
        elif kind == 3:
            lines.append(f"def f(x):\n    return x * {rng.randint(0, 9999)}  # it's {c}\n")
        elif kind == 4:
            lines.append(" ".join(rng.choice(WORDS_UNICODE) for _ in range(3)))
        elif kind == 5:
            lines.append(f"{rng.randint(0, 10**6)} items, {rng.random():.4f} ratio, ID-{rng.randint(100, 999)}")
        elif kind == 6:
            lines.append(f"  indented\ttab  {c}   spaced\n\n\nnewlines {s}  ")
        else:
            lines.append(f"We'll see; they're {c} and you've {n} {s}s, I'm sure it'd be OK.")
    return lines


def train_qwen(lines):
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=1000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    for content, special in QWEN_ADDED:
        t = AddedToken(content, single_word=False, lstrip=False, rstrip=False, normalized=False, special=special)
        if special:
            tok.add_special_tokens([t])
        else:
            tok.add_tokens([t])
    return tok


def train_gpt2(lines):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=600, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    tok.add_special_tokens([AddedToken("<|endoftext|>", normalized=False, special=True)])
    # A normalized added token: matched after NFKC, so "ﬁsh" (with the ﬁ
    # ligature) finds it too.
    tok.add_tokens([AddedToken("fish", normalized=True, special=False)])
    # …and one whose own content changes under NFKC ("ﬂag" → "flag").
    tok.add_tokens([AddedToken("\ufb02ag", normalized=True, special=False)])
    return tok


def golden_texts(rng):
    """~200 varied texts: fixed edge cases plus seeded random mixtures."""
    fixed = [
        "", " ", "  ", "\n", "\n\n", " \n ", "\t", "a", "A", "hello world", "Hello World!",
        "two red circles left of a blue square", "Draw 3 yellow stars.",
        'a sign that reads "K7Q"', "K7Q", "12345", "3.14159", "1,000,000", "x=1+2*3",
        "I'm", "IT'S", "they'll've", "don't", "We'LL", "'s'S'", "''", "it's  fine",
        "trailing space ", "  leading", "a  b   c", "line1\nline2", "a\r\nb", "\r\r\n",
        "tabs\tand\t\ttabs", "   \n   \n", "x \n", "end.\n\n\n", "mixed \t\n spaces",
        "!!!", "...", "?!?!", "(a)[b]{c}", "<html>", "a@b.com", "#hashtag", "$100", "50%",
        "C++ && Go || Rust", "path/to/file.go", "snake_case_name", "camelCaseName",
        "café", "cafe\u0301", "e\u0301\u0301", "naïve façade", "straße", "ÅNGSTRÖM",
        "привет", "日本語", "中文字符测试", "한국어", "عربى", "🙂", "👍🏽", "🚀 launch",
        "µ", "ﬁne", "Ⅻ①²", "\u00a0nbsp", "zero\u200bwidth", "\u3000ideographic space",
        "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|endoftext|>",
        "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>",
        "<|im_start|>user\nDraw a red circle.<|im_end|>\n<|im_start|>assistant\n<think>\n",
        "<think>\n\n</think>\n\n", "text<think>inside</think>text", " <think> ", "<<think>>",
        "<|im_start", "<think", "</think", "<|im_end|><|im_end|>", "<tool_call>x</tool_call>",
        "fish ﬁsh FISH", "a fish", "fishing", "flag ﬂag", "flagfish",
        # Long pieces: BPE must merge them in O(n log n).
        " " * 3000 + "x", "!" * 2000, "ab" * 1000, "\n" * 500 + "y", "e\u0301" * 300,
    ]
    pieces = (["red", "Blue", " circle", "  ", " ", "\n", "\n\n", "\t", "7", "42", "'s", "'LL",
               "!", "...", ",", "\"", "(x)", "é", "e\u0301", "日本", "🙂", "ÅB", "\u00a0",
               "<think>", "</think>", "<|im_end|>", "<|image_pad|>", "\r\n", "  \n", "ﬁ", "fish", "ﬂag"]
              + WORDS_UNICODE[:6])
    out = list(fixed)
    while len(out) < 200:
        out.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))))
    return out


def chat_cases():
    return [
        ("", "Draw two red circles."),
        ("You are a helpful assistant.", "Draw two red circles."),
        ("You draw pictures.", "a sign that reads \"K7Q\""),
        ("", "<|vision_start|><|image_pad|><|image_pad|><|image_pad|><|vision_end|>Remove the blue square."),
        ("Think first.", "Line one\nline two\n"),
    ]


def render_chats(qwen):
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=qwen)
    out = []
    for system, user in chat_cases():
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        renders = {
            "free": hf.apply_chat_template(messages, chat_template=QWEN3_TEMPLATE, tokenize=False,
                                           add_generation_prompt=True, enable_thinking=True),
            "skip": hf.apply_chat_template(messages, chat_template=QWEN3_TEMPLATE, tokenize=False,
                                           add_generation_prompt=True, enable_thinking=False),
            "open": hf.apply_chat_template(messages, chat_template=QWEN3_THINKING_TEMPLATE, tokenize=False,
                                           add_generation_prompt=True),
        }
        for mode, text in renders.items():
            out.append({"system": system, "user": user, "mode": mode, "text": text,
                        "ids": qwen.encode(text).ids})
    return out


def write_json(path, obj):
    """Writes a list of records, or a dict of such lists, one record a line."""
    def records(rs):
        return "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rs) + "\n]"

    if isinstance(obj, dict):
        text = "{\n" + ",\n".join(f"{json.dumps(k)}: {records(v)}" for k, v in obj.items()) + "\n}"
    else:
        text = records(obj)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def generate():
    rng = random.Random(20251127)
    lines = corpus(rng)
    toks = {"qwen": train_qwen(lines), "gpt2": train_gpt2(lines)}
    texts = golden_texts(random.Random(7))
    golden = {}
    for name, tok in toks.items():
        os.makedirs(os.path.join(HERE, name), exist_ok=True)
        tok.save(os.path.join(HERE, name, "tokenizer.json"))
        # Encode with the saved file, as the Go side reads it.
        tok = Tokenizer.from_file(os.path.join(HERE, name, "tokenizer.json"))
        golden[name] = [encode_one(tok, t) | {"text": t} for t in texts]
    write_json(os.path.join(HERE, "bpe_golden.json"), golden)
    write_json(os.path.join(HERE, "chat_golden.json"),
               render_chats(Tokenizer.from_file(os.path.join(HERE, "qwen", "tokenizer.json"))))


def encode_one(tok, text):
    ids = tok.encode(text).ids
    return {"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)}


def encode():
    req = json.load(sys.stdin)
    tok = Tokenizer.from_file(req["tokenizer"])
    json.dump([encode_one(tok, t) for t in req["texts"]], sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    {"generate": generate, "encode": encode}[sys.argv[1]]()
