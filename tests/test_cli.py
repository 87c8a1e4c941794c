"""The command line, through a subprocess as a user runs it."""
import json
import os
import subprocess
import sys

import pytest

from conftest import EXAMPLES, MODEL, ROOT


def cnnrt(*args):
    return subprocess.run([sys.executable, "-m", "cnnrt.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_run_prints_the_right_digit_for_every_shipped_image():
    images = [os.path.join(EXAMPLES, f"digit-{d}.png") for d in range(10)]
    r = cnnrt("run", MODEL, *images, "--top-k", "3")
    assert r.returncode == 0, r.stderr
    heads = [l for l in r.stdout.splitlines() if not l.startswith(" ")]
    assert len(heads) == 10
    for d, line in enumerate(heads):
        assert line.startswith(images[d] + f": {d} ("), line


def test_json_output():
    img = os.path.join(EXAMPLES, "digit-7.png")
    r = cnnrt("run", MODEL, img, "--json", "--top-k", "2", "--threads", "1")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["image"] == img
    assert [t["label"] for t in obj["top"]][0] == "7"
    assert len(obj["top"]) == 2
    assert 0.5 < obj["top"][0]["probability"] <= 1.0


@pytest.mark.parametrize("case", ["missing_image", "not_an_image", "missing_model", "not_a_model", "bad_topk"])
def test_errors_are_one_line_without_traceback(tmp_path, case):
    img = os.path.join(EXAMPLES, "digit-1.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png")
    if case == "missing_image":
        r = cnnrt("run", MODEL, str(tmp_path / "nope.png"))
    elif case == "not_an_image":
        r = cnnrt("run", MODEL, str(junk))
    elif case == "missing_model":
        r = cnnrt("run", str(tmp_path / "nope.onnx"), img)
    elif case == "not_a_model":
        r = cnnrt("run", str(junk), img)
    else:
        r = cnnrt("run", MODEL, img, "--top-k", "0")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("cnnrt: error:"), r.stderr


def test_flags_override_preprocessing():
    # a deliberately wrong mean shifts the input: the run still works and reports probabilities
    img = os.path.join(EXAMPLES, "digit-3.png")
    r = cnnrt("run", MODEL, img, "--json", "--mean", "0.5", "--std", "0.5")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["top"]) == 5


def test_info():
    r = cnnrt("info")
    assert r.returncode == 0
    assert "isa:" in r.stdout


def test_closed_stdout_stops_quietly(capsys, monkeypatch):
    """`cnnrt profile m.onnx | head`: when the reader closes the pipe, the CLI stops with the SIGPIPE status (141) and
    no error message, instead of 'cnnrt: error: [Errno 32] Broken pipe'."""
    from cnnrt import cli

    class ClosedPipe:
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["info"]) == 141
    assert capsys.readouterr().err == ""
