"""Exercise 3 with a standard MLflow client: no trainer package, no S3 credentials, only the server URL."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.services.tracking import clean_env
from trainer import data, training
from trainer.candidates import custom_model

EXERCISE_3 = r'''
import json, sys
sys.modules["trainer"] = None  # prove the trainer package is not needed
import mlflow, pandas as pd
name = sys.argv[1]
client = mlflow.MlflowClient()
model = mlflow.pyfunc.load_model(f"models:/{name}/1")
run = client.get_run(client.get_model_version(name, "1").run_id)
frames = {}
for dataset_input in run.inputs.dataset_inputs:
    context = {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"]
    frames[context] = pd.read_parquet(mlflow.data.get_source(dataset_input.dataset).load())
# The documented alternative, reading the source URI directly:
uri = json.loads(run.inputs.dataset_inputs[0].dataset.source)["uri"]
alternative = pd.read_parquet(mlflow.artifacts.download_artifacts(artifact_uri=uri))
holdout = frames["evaluation"]
predictions = model.predict(holdout[["x0", "x1"]])
print(json.dumps({"contexts": sorted(frames), "train_rows": len(frames["training"]),
                  "holdout_rows": len(holdout), "predictions": len(predictions),
                  "alternative_rows": len(alternative),
                  "mse": float(((holdout["y"] - predictions) ** 2).mean())}))
'''


def test_standard_client_loads_model_and_rebuilds_logged_data(client, tracking_server, names, tmp_path):
    name = names("custom")
    dataset = data.generated()
    report = training.train(client, dataset, [custom_model(0.0, name)], experiment=names("exp"))
    env = clean_env(MLFLOW_TRACKING_URI=tracking_server.url)
    env.pop("PYTHONPATH")
    proc = subprocess.run([sys.executable, "-c", EXERCISE_3, name], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["contexts"] == ["evaluation", "training"]
    assert (out["train_rows"], out["holdout_rows"], out["predictions"]) == (80, 20, 20)
    assert out["alternative_rows"] in (80, 20)
    assert abs(out["mse"] - report.results[0].mse) < 1e-9
