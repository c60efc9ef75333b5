"""Reads a TensorBoard log directory with TensorBoard's own event reader and
prints what it found as JSON:

    {"file_version": 2.0, "files": [...], "scalars": {tag: [[step, wall_time, value], ...]},
     "images": {tag: [[step, wall_time, width, height, sha256 of the encoded image], ...]},
     "hparams": {name: number or string, ...}, "hparams_start": start_time_secs,
     "texts": {tag: [[step, text], ...]}}

Usage: tb_read.py LOGDIR, with the test venv's python (scripts/setup-pyenv.sh);
package tfeventstest runs it for Go tests.
"""
import hashlib
import json
import math
import os
import sys

from tensorboard.backend.event_processing import event_accumulator, io_wrapper
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util

logdir = sys.argv[1]
acc = event_accumulator.EventAccumulator(
    logdir, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0}
)
acc.Reload()


def num(x):
    # JSON has no NaN or infinities: spell them as strings.
    return x if math.isfinite(x) else repr(x)


out = {
    "file_version": acc.file_version,
    # The files TensorBoard considers event files, in the order it reads them.
    "files": sorted(f for f in os.listdir(logdir) if io_wrapper.IsSummaryEventsFile(os.path.join(logdir, f))),
    "scalars": {tag: [[e.step, e.wall_time, num(e.value)] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]},
    "images": {
        tag: [[e.step, e.wall_time, e.width, e.height, hashlib.sha256(e.encoded_image_string).hexdigest()] for e in acc.Images(tag)]
        for tag in acc.Tags()["images"]
    },
}
# The text plugin's summaries: string tensors tagged with its metadata.
out["texts"] = {}
for tag in acc.Tags()["tensors"]:
    if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
        continue
    out["texts"][tag] = [
        [e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8")] for e in acc.Tensors(tag)
    ]
# The hparams plugin's session start, as its data provider reads it.
try:
    contents = acc.PluginTagToContent("hparams")
except KeyError:
    contents = {}
for content in contents.values():
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    if data.HasField("session_start_info"):
        info = data.session_start_info
        out["hparams"] = {
            k: (v.number_value if v.WhichOneof("kind") == "number_value" else v.string_value) for k, v in info.hparams.items()
        }
        out["hparams_start"] = info.start_time_secs
json.dump(out, sys.stdout)
