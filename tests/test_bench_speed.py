"""`transferlab bench speed` on a tiny model: every row measured in its own process, ratios against eager from the
same run, our rows' accuracy beside eager's, a peer that cannot run said so (not silently dropped)."""

import json

import pytest

pytest.importorskip("onnxruntime")

from conftest import sentiment_data, write_csv  # noqa: E402


@pytest.mark.slow
def test_speed_bench_measures_every_runtime_side_by_side(tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli import app

    texts, labels = sentiment_data(80)
    data = write_csv(tmp_path / "data.csv", list(zip(texts, labels)))
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", str(data), "--encoder", "minilm", "--strategy", "finetune",
                              "--epochs", "1", "--max-length", "32", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    # without an export, the ONNX rows cannot run: said before any measuring
    res = runner.invoke(app, ["bench", "speed", "--model", str(tmp_path / "m"), "--data", str(data),
                              "--out", str(tmp_path / "speed")])
    assert res.exit_code == 2 and "no ONNX export" in res.output
    res = runner.invoke(app, ["export", str(tmp_path / "m"), "--quantize", "int8", "--max-drop", "100"])
    assert res.exit_code == 0, res.output
    from transferlab.bench import speed
    from transferlab.runtime.onnx import openvino_installed

    names = ["eager", "onnx-fp32", "onnx-int8", "openvino", "pipeline", "st-onnx"]
    kw = dict(model=str(tmp_path / "m"), data=str(data), text_col="text", label_col="label", split="stratified",
              lengths=(16, 32), n_speed=8, announce=lambda m: None)
    # an export without OpenVINO: that row says so and how to make it, the others run
    results = speed.run(tmp_path / "speed0", rows=["eager", "openvino"], **kw)
    row = {r["name"]: r for r in results["rows"]}["openvino"]
    assert row["status"] == "not run" and "--format onnx,openvino" in row["error"]
    if openvino_installed():
        res = runner.invoke(app, ["export", str(tmp_path / "m"), "--format", "onnx,openvino", "--quantize", "int8",
                                  "--max-drop", "100"])
        assert res.exit_code == 0, res.output
    results = speed.run(tmp_path / "speed", rows=names, **kw)
    rows = {r["name"]: r for r in results["rows"]}
    assert sorted(rows) == sorted(names)
    if openvino_installed():
        assert rows["openvino"]["status"] == "ok" and rows["openvino"]["accuracy"] is not None
    for name in ("eager", "onnx-fp32", "onnx-int8", "pipeline"):
        r = rows[name]
        assert r["status"] == "ok", r
        assert set(r["docs_per_second"]) == {"16", "32"} and all(v > 0 for v in r["docs_per_second"].values())
        assert r["speedup_vs_eager"]["32"] == pytest.approx(r["docs_per_second"]["32"]
                                                            / rows["eager"]["docs_per_second"]["32"])
        assert r["peak_mb"] > 100  # a process holding torch and a transformer: its own peak, not zero
    assert rows["eager"]["speedup_vs_eager"]["16"] == pytest.approx(1.0)
    # the float32 graph decides as eager does on the same texts; the pipeline has no accuracy of this model
    assert rows["onnx-fp32"]["accuracy"] == rows["eager"]["accuracy"]
    assert rows["onnx-fp32"]["accuracy_change_points"] == pytest.approx(0.0)
    assert rows["pipeline"]["accuracy"] is None
    assert rows["st-onnx"]["status"] == "not run" and "--peer-python" in rows["st-onnx"]["error"]
    md = (tmp_path / "speed" / "results.md").read_text()
    assert "| onnx-int8 |" in md and "n/a (not this model's head)" in md and "Export check" in md
    assert (tmp_path / "speed" / "speed.png").stat().st_size > 0
    assert json.loads((tmp_path / "speed" / "results.json").read_text())["threads"] >= 1
