"""Writes golden.tfevents with TensorBoard's own record writer and protobufs.

The Go tests read it back and check that package tfevents writes the same
bytes. Regenerate with the test venv's python (scripts/setup-pyenv.sh):

    $(bash scripts/setup-pyenv.sh) internal/tfevents/testdata/golden.py internal/tfevents/testdata/golden.tfevents
"""
import sys

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

# Keep in step with golden in tfevents_test.go.
EVENTS = [
    dict(wall_time=1764265780.125, step=0, file_version="brain.Event:2"),
    dict(wall_time=1764265781.5, step=1, values=[("reward/mean", 0.25), ("loss/kl", 0.0012), ("reward/composition/mean", 0.0)]),
    dict(wall_time=1764265790.0, step=2, values=[("reward/mean", -1.5), ("time/step_s", 12.75)]),
    dict(wall_time=1764265800.0, step=1234567890123, values=[("eval/think/text", 1.0)]),
]

with open(sys.argv[1], "wb") as f:
    w = RecordWriter(f)
    for e in EVENTS:
        ev = event_pb2.Event(wall_time=e["wall_time"], step=e["step"])
        if "file_version" in e:
            ev.file_version = e["file_version"]
        for tag, v in e.get("values", []):
            ev.summary.value.add(tag=tag, simple_value=v)
        w.write(ev.SerializeToString())
    w.flush()
