"""Reads back what thinkgen train logged to an MLflow tracking server,
with MLflow's own client, and prints it as JSON for the Go test
(cmd/thinkgen/mlflow_test.go); metric values as Python's repr, which
round-trips a float and spells NaN and the infinities.

usage: python mlflow_readback.py TRACKING_URI EXPERIMENT RUN
"""
import json
import sys

from mlflow.tracking import MlflowClient


def artifacts(client, run_id, path=None):
    out = {}
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            out.update(artifacts(client, run_id, f.path))
        else:
            out[f.path] = f.file_size
    return out


def main():
    uri, experiment, run = sys.argv[1:4]
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`thinkgen.run` = '%s'" % run)
    out = {"runs": len(runs)}
    if runs:
        r = runs[0]
        out["status"] = r.info.status
        out["params"] = r.data.params
        out["tags"] = {k: v for k, v in r.data.tags.items() if k.startswith("thinkgen.")}
        out["metrics"] = {
            key: [[m.step, repr(float(m.value)), m.timestamp] for m in client.get_metric_history(r.info.run_id, key)]
            for key in r.data.metrics
        }
        out["artifacts"] = artifacts(client, r.info.run_id)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
