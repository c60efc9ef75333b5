"""Drives `thinkgen serve` with the official OpenAI Python client
(scripts/setup-toolenv.sh openai); cmd/thinkgen/serve_test.go runs it against
a running server. Arguments: base URL, API key, model id, image size.
Prints one JSON object of what it saw; any failed check raises."""
import base64
import json
import struct
import sys
import zlib

import openai
from openai import OpenAI

base_url, key, model, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def png_pixels(data):
    """Decodes a non-interlaced 8-bit PNG far enough to check it: the
    signature, IHDR, the inflated IDAT size against width and height."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    assert depth == 8 and interlace == 0, (depth, interlace)
    raw = zlib.decompress(idat)
    assert len(raw) == h * (1 + w * channels), (len(raw), w, h, channels)
    return w, h


client = OpenAI(base_url=base_url, api_key=key, max_retries=0)
seen = {"models": [m.id for m in client.models.list().data]}

img = client.images.generate(
    model=model,
    prompt="how many sides has a triangle? draw that many green dots",
    n=2,
    size=f"{size}x{size}",
    response_format="b64_json",
    extra_body={"seed": 11},
)
seen["images"] = []
for d in img.data:
    w, h = png_pixels(base64.b64decode(d.b64_json))
    extra = d.model_extra or {}
    seen["images"].append({"width": w, "height": h, "revised_prompt": d.revised_prompt,
                           "thinking": extra.get("thinking"), "mode": extra.get("mode"), "seed": extra.get("seed")})

chat = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "how many sides has a triangle?"}],
    max_tokens=40,
    seed=3,
)
msg = chat.choices[0].message
seen["chat"] = {"content": msg.content, "reasoning": (msg.model_extra or {}).get("reasoning_content"),
                "finish_reason": chat.choices[0].finish_reason,
                "usage": [chat.usage.prompt_tokens, chat.usage.completion_tokens, chat.usage.total_tokens]}

try:
    OpenAI(base_url=base_url, api_key="not-the-token-0123456789", max_retries=0).models.list()
    seen["wrong_key"] = "accepted"
except openai.AuthenticationError as e:
    seen["wrong_key"] = e.status_code

seen["refused"] = {}
for name, call in {
    "n": lambda: client.images.generate(model=model, prompt="a red circle", n=1000),
    "size": lambda: client.images.generate(model=model, prompt="a red circle", size="1024x1024"),
    "max_tokens": lambda: client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=100000),
}.items():
    try:
        call()
        seen["refused"][name] = "accepted"
    except openai.APIStatusError as e:
        seen["refused"][name] = {"status": e.status_code, "param": getattr(e, "param", None), "code": getattr(e, "code", None)}

print(json.dumps(seen))
