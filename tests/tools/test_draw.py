"""draw_net: the lecture's figure for the worked example, labels of any net, weights, formats."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from net import GateworkError, Net
from net.tools.draw import digraph, dot_available, trace, values_feed, write
from tests.helpers import CONFIGS, ROOT

pytest.importorskip("graphviz", reason="drawing needs the graphviz Python package "
                                       "(pip install -e '.[draw]')")

SEED = CONFIGS / "seed_example.yaml"
EDGE = re.compile(r'^\s*"(?P<tail>[^"]+)" -> "(?P<head>[^"]+)" \[(?P<attrs>.*)\]$')


def edges(source: str) -> list[tuple[str, str, str, bool]]:
    """(tail, head, label, is_gradient) for each edge line of a .dot source."""
    found = []
    for line in source.splitlines():
        match = EDGE.match(line)
        if match:
            attrs = match["attrs"]
            label = re.search(r'label=(?:"([^"]*)"|(\S+))', attrs)
            found.append((match["tail"], match["head"], label[1] or label[2],
                          "color=blue" in attrs))
    return found


def node_label(source: str, node: str) -> str:
    return re.search(rf'^\s*"{re.escape(node)}" \[label=<(.*)> ', source, re.M)[1]


def test_seed_example_reproduces_the_lecture_figure():
    net = Net.from_yaml(SEED)
    source = digraph(net, trace(net)).source
    found = edges(source)
    forward = {(t, h): label for t, h, label, grad in found if not grad}
    backward = {(t, h): label for t, h, label, grad in found if grad}
    # 1, 2, 0 in; 3, 2, 6 forward
    assert forward[("blob/x", "gate/add")] == "1"
    assert forward[("blob/y", "gate/add")] == forward[("blob/y", "gate/max")] == "2"
    assert forward[("blob/z", "gate/max")] == "0"
    assert forward[("gate/add", "gate/mul")] == "a = 3"
    assert forward[("gate/max", "gate/mul")] == "b = 2"
    assert forward[("gate/mul", "out/f")] == "f = 6"
    # 1 seeded; 2, 3 back from the multiply; then 2, 5 (= 2 + 3), 0
    assert backward[("gate/mul", "out/f")] == "1"
    assert backward[("gate/add", "gate/mul")] == "2"
    assert backward[("gate/max", "gate/mul")] == "3"
    assert backward[("blob/x", "gate/add")] == "2"
    assert backward[("blob/y", "gate/add")] == "2"   # each edge from y carries its own share
    assert backward[("blob/y", "gate/max")] == "3"
    assert backward[("blob/z", "gate/max")] == "0"
    assert node_label(source, "blob/y").endswith('<font color="blue">2 + 3 = 5</font>')
    assert node_label(source, "blob/x").endswith('<font color="blue">2</font>')
    assert node_label(source, "blob/z").endswith('<font color="blue">0</font>')
    assert 'dir=back' in source and "black: forward values" in source


def test_values_follow_set_inputs():
    net = Net.from_yaml(SEED)
    source = digraph(net, trace(net, {"y": -1, "z": 0.5})).source  # max picks z now
    backward = {(t, h): label for t, h, label, grad in edges(source) if grad}
    assert backward[("blob/y", "gate/max")] == "0"
    assert backward[("blob/z", "gate/max")] == "0"     # df/db = a = x + y = 0
    assert node_label(source, "blob/y").endswith('<font color="blue">0.5 + 0 = 0.5</font>')


def test_plain_drawing_shows_types_shapes_and_parameters():
    net = Net.from_yaml(CONFIGS / "two_layer.yaml")
    source = digraph(net).source
    labels = {(t, h): label for t, h, label, _ in edges(source)}
    assert labels[("blob/x", "gate/fc1")] == "x (N, 4)"
    assert labels[("blob/fc1.W", "gate/fc1")] == "fc1.W (8, 4)"
    assert labels[("gate/fc1", "gate/relu1")] == "hidden (N, 8)"
    assert labels[("gate/fc2", "out/scores")] == "scores (N, 3)"
    assert "<b>fc1</b><br/>InnerProduct" in node_label(source, "gate/fc1")
    assert "color=blue" not in source


def test_array_values_are_summarised(tmp_path):
    net = Net.from_yaml(CONFIGS / "two_layer.yaml")
    source = digraph(net, trace(net)).source
    hidden = [label for t, h, label, grad in edges(source) if (t, h) == ("gate/fc1", "gate/relu1")]
    assert hidden[0].startswith("hidden = (2, 8) mean ") and " norm " in hidden[0]
    assert hidden[1].startswith("(2, 8) mean ")


def test_weights_file_sets_the_drawn_values(tmp_path):
    draw = [sys.executable, str(ROOT / "scripts" / "draw_net.py"), str(CONFIGS / "affine.yaml"),
            str(tmp_path / "affine.dot"), "--values", "--weights"]
    np.savez(tmp_path / "w.npz", W=np.ones((2, 3)), b=np.zeros((2, 1)))
    done = subprocess.run(draw + [str(tmp_path / "w.npz")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    source = (tmp_path / "affine.dot").read_text()
    assert node_label(source, "blob/W").startswith("W<br/>(2, 3) mean 1 norm 2.449")
    assert ("gate/add", "out/z", "z = [2, 2.5, 2, 2.5] (2, 2)", False) in edges(source)
    np.savez(tmp_path / "bad.npz", W=np.ones((3, 2)))
    done = subprocess.run(draw + [str(tmp_path / "bad.npz")], capture_output=True, text=True)
    assert done.returncode == 2 and "bad.npz" in done.stderr and "(3, 2)" in done.stderr


def test_unknown_format_is_an_error(tmp_path):
    with pytest.raises(GateworkError, match="unknown output format '.jpg'"):
        write(digraph(Net.from_yaml(SEED)), tmp_path / "x.jpg")


def test_script_writes_dot_without_the_binary(tmp_path):
    out = tmp_path / "seed.dot"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "draw_net.py"), str(SEED),
                           str(out), "--values", "--set", "x=4"],
                          capture_output=True, text=True, env={"PATH": ""})
    assert done.returncode == 0, done.stderr
    assert ("blob/x", "gate/add", "4", False) in edges(out.read_text())


def test_missing_dot_binary_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(GateworkError, match="apt-get install graphviz"):
        write(digraph(Net.from_yaml(SEED)), tmp_path / "seed.png")


@pytest.mark.skipif(not dot_available(), reason="Graphviz's dot program is not installed")
def test_png_is_rendered(tmp_path):
    out = tmp_path / "seed.png"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "draw_net.py"), str(SEED),
                           str(out), "--values"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inputs_without_values_get_random_ones():
    net = Net.from_config({
        "inputs": {"data": {"shape": [None, 6]}, "label": {"shape": [None], "dtype": "int"}},
        "gates": [{"name": "fc", "type": "InnerProduct", "bottom": "data", "top": "scores",
                   "num_output": 3},
                  {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["scores", "label"],
                   "top": "loss"}]})
    feed, randomised = values_feed(net, {"label": [0, 2]}, batch_size=2)
    assert randomised == ["data"] and feed["data"].shape == (2, 6) and feed["label"] == [0, 2]
    feed, randomised = values_feed(net, {}, batch_size=5)
    assert randomised == ["data", "label"] and feed["data"].shape == (5, 6)
    assert set(feed["label"]) <= {0, 1, 2}
    source = digraph(net, trace(net, feed)).source
    assert ("gate/loss", "out/loss", "1", True) in edges(source)      # the loss is seeded with 1
    assert "label<br/>" in node_label(source, "blob/label") and "no gradient" in source
