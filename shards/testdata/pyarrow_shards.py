"""Cross-language check of thinkgen shards with pyarrow (test-only).

  pyarrow_shards.py read FILE          print the shard's schema, metadata and rows as JSON
  pyarrow_shards.py write-rollout FILE write a rollout shard (two batches, zstd) and print its rows as JSON

Rows are printed with bytes as base64, timestamps as Unix milliseconds and
maps as objects, so the Go test can decode them into its own row types.
"""
import base64
import datetime
import json
import sys

import pyarrow as pa
import pyarrow.ipc as ipc


def jsonable(v):
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, datetime.datetime):
        return int(v.timestamp() * 1000)
    if isinstance(v, list):
        if v and isinstance(v[0], tuple):  # a map: list of (key, value)
            return {k: jsonable(x) for k, x in v}
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    return v


def read(path):
    with pa.memory_map(path) as src:
        reader = ipc.open_file(src)
        batches = reader.num_record_batches
        table = reader.read_all()
    md = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    out = {
        "columns": [[f.name, str(f.type)] for f in table.schema],
        "metadata": md,
        "batches": batches,
        "rows": [{k: jsonable(v) for k, v in row.items()} for row in table.to_pylist()],
    }
    print(json.dumps(out))


ROLLOUT = pa.schema(
    [
        ("run", pa.string()),
        ("step", pa.int64()),
        ("phase", pa.string()),
        ("task", pa.string()),
        ("attempt", pa.int32()),
        ("group_id", pa.int64()),
        ("sample_index", pa.int32()),
        ("scenario", pa.string()),
        ("prompt", pa.string()),
        ("row_id", pa.string()),
        ("answer", pa.string()),
        ("spec", pa.string()),
        ("cot", pa.string()),
        ("instruction", pa.string()),
        ("token_ids", pa.list_(pa.int32())),
        ("token_logprobs", pa.list_(pa.float32())),
        ("image_png", pa.binary()),
        ("reference_png", pa.binary()),
        ("latent_shape", pa.list_(pa.int32())),
        ("sde_latents", pa.list_(pa.list_(pa.float32()))),
        ("sde_means", pa.list_(pa.list_(pa.float32()))),
        ("sde_logprobs", pa.list_(pa.float32())),
        ("noise_seed", pa.int64()),
        ("policy_version", pa.int64()),
    ],
    metadata={"thinkgen.schema": "rollout", "thinkgen.schema_version": "2"},
)


def f32(x):
    # The float32 nearest x, as a Python float, so the JSON matches the file.
    return pa.array([x], pa.float32()).to_pylist()[0]


def rollout_rows(n):
    rows = []
    for i in range(n):
        dit = i % 2 == 1
        rows.append(
            {
                "run": "py-run",
                "step": 10 + i,
                "phase": "dit-grpo" if dit else "mllm-grpo",
                "task": "t%d" % (i % 3),
                "attempt": 1,
                "group_id": i // 2,
                "sample_index": i % 2,
                "scenario": "reasoning",
                "prompt": "a blue circle \u00e9 %d" % i,
                "row_id": "train-%07d" % (i // 2),
                "answer": "a large blue circle at middle centre.",
                "spec": '{"scene": {"objects": []}}',
                "cot": "because " * i,
                "instruction": "blue circle",
                "token_ids": None if dit else [i, i + 1, 151643],
                "token_logprobs": None if dit else [f32(-0.1 * i), f32(-1.5), f32(-2.25)],
                "image_png": b"\x89PNG" + bytes([i]) * 5 if dit else None,
                "reference_png": None,
                "latent_shape": [1, 2, 2] if dit else None,
                "sde_latents": [[f32(0.5 * k + i) for k in range(4)] for _ in range(2)] if dit else None,
                "sde_means": [[f32(-0.25 * k) for k in range(4)] for _ in range(2)] if dit else None,
                "sde_logprobs": [f32(-3.5), f32(-4.0 - i)] if dit else None,
                "noise_seed": 1234567890123 + i,
                "policy_version": 2,
            }
        )
    return rows


def write_rollout(path):
    rows = rollout_rows(7)
    opts = ipc.IpcWriteOptions(compression="zstd")
    with pa.OSFile(path, "wb") as sink, ipc.new_file(sink, ROLLOUT, options=opts) as w:
        for chunk in (rows[:4], rows[4:]):
            w.write_batch(pa.RecordBatch.from_pylist(chunk, schema=ROLLOUT))
    print(json.dumps({"rows": [{k: jsonable(v) for k, v in r.items()} for r in rows]}))


if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    {"read": read, "write-rollout": write_rollout}[cmd](path)
