"""draw_net: the lecture's figure for the worked example, each value drawn once, deep nets top to
bottom, --values on a config's test data, labels of any net, weights, formats."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from net import GateworkError, Net
from net.tools.draw import digraph, dot_available, trace, write
from net.tools.trace import example_feed
from tests.helpers import CONFIGS, ROOT, needs_sklearn

pytest.importorskip("graphviz", reason="drawing needs the graphviz Python package "
                                       "(pip install -e '.[draw]')")

SEED = CONFIGS / "seed_example.yaml"
EDGE = re.compile(r'^\s*"(?P<tail>[^"]+)" -> "(?P<head>[^"]+)"(?: \[(?P<attrs>.*)\])?$')


def edges(source: str) -> list[tuple[str, str, str, bool]]:
    """(tail, head, label, is_gradient) for each edge line of a .dot source."""
    found = []
    for line in source.splitlines():
        match = EDGE.match(line)
        if match:
            attrs = match["attrs"] or ""
            label = re.search(r'label=(?:"([^"]*)"|(\S+))', attrs)
            found.append((match["tail"], match["head"], label and (label[1] or label[2]),
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
    # 1, 2, 0 in (in the input nodes, once); 3, 2, 6 forward
    assert node_label(source, "blob/x").startswith("x<br/>1<br/>")
    assert node_label(source, "blob/y").startswith("y<br/>2<br/>")
    assert node_label(source, "blob/z").startswith("z<br/>0<br/>")
    assert forward[("blob/x", "gate/add")] is None      # the value is in the node, not again here
    assert forward[("blob/y", "gate/add")] is forward[("blob/y", "gate/max")] is None
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
    assert 'dir=back' in source and "black: forward values" in source and "rankdir=LR" in source


def test_every_value_is_drawn_once():
    """A blob read by two gates gets one node holding its value and its summed gradient; the
    edges out of it carry only their own gradients."""
    net = Net.from_config({
        "inputs": {"x": {"shape": [], "value": 3}},
        "gates": [{"name": "sq", "type": "Multiply", "bottom": ["x", "x"], "top": "s"},
                  {"name": "e", "type": "Exp", "bottom": "s", "top": "t"},
                  {"name": "add", "type": "Add", "bottom": ["s", "t"], "top": "u"}]})
    source = digraph(net, trace(net)).source
    texts = [label for _, _, label, grad in edges(source) if not grad and label]
    assert texts == ["t = 8103.08", "u = 8112.08"]           # s = 9 is in its own node
    assert node_label(source, "blob/s").startswith("<b>s</b><br/>9<br/>")
    # du/ds = 1 (add) + e^9 (exp): the runner's sum, with the two products it added
    assert node_label(source, "blob/s").endswith('<font color="blue">8103.08 + 1 = 8104.08</font>')
    assert node_label(source, "blob/x").endswith('<font color="blue">24312.3 + 24312.3 = '
                                                 '48624.5</font>')


def test_deep_nets_are_drawn_top_to_bottom():
    assert "rankdir=TB" in digraph(Net.from_yaml(CONFIGS / "lenet_digits.yaml")).source
    assert "rankdir=LR" in digraph(Net.from_yaml(CONFIGS / "two_layer.yaml")).source
    assert "rankdir=LR" in digraph(Net.from_yaml(CONFIGS / "lenet_digits.yaml"),
                                   rankdir="LR").source


def test_plain_drawing_shows_types_shapes_and_parameters():
    net = Net.from_yaml(CONFIGS / "two_layer.yaml")
    source = digraph(net).source
    labels = {(t, h): label for t, h, label, _ in edges(source)}
    assert labels[("blob/x", "gate/fc1")] is None           # the shape is in the node, once
    assert node_label(source, "blob/x") == "x<br/>(N, 4)"
    assert node_label(source, "blob/fc1.W") == "fc1.W<br/>(8, 4)"
    assert labels[("gate/fc1", "gate/relu1")] == "hidden (N, 8)"
    assert labels[("gate/fc2", "out/scores")] == "scores (N, 3)"
    assert "<b>fc1</b><br/>InnerProduct" in node_label(source, "gate/fc1")
    assert "color=blue" not in source


def test_array_values_are_summarised(tmp_path):
    net = Net.from_yaml(CONFIGS / "two_layer.yaml")
    source = digraph(net, trace(net)).source
    hidden = [label for t, h, label, grad in edges(source) if (t, h) == ("gate/fc1", "gate/relu1")]
    assert re.fullmatch(r"hidden = \(2, 8\) min -?[\d.]+ mean -?[\d.]+ max -?[\d.]+", hidden[0])
    assert re.fullmatch(r"\(2, 8\) min -?[\d.]+ mean -?[\d.]+ max -?[\d.]+", hidden[1])


def test_weights_file_sets_the_drawn_values(tmp_path):
    draw = [sys.executable, str(ROOT / "scripts" / "draw_net.py"), str(CONFIGS / "affine.yaml"),
            str(tmp_path / "affine.dot"), "--values", "--weights"]
    np.savez(tmp_path / "w.npz", W=np.ones((2, 3)), b=np.zeros((2, 1)))
    done = subprocess.run(draw + [str(tmp_path / "w.npz")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    source = (tmp_path / "affine.dot").read_text()
    assert node_label(source, "blob/W").startswith("W<br/>(2, 3) min 1 mean 1 max 1")
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
    assert node_label(out.read_text(), "blob/x").startswith("x<br/>4<br/>")


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


def test_inputs_without_values_get_random_ones_and_the_picture_says_so():
    net = Net.from_config({
        "inputs": {"data": {"shape": [None, 6]}, "label": {"shape": [None], "dtype": "int"}},
        "gates": [{"name": "fc", "type": "InnerProduct", "bottom": "data", "top": "scores",
                   "num_output": 3},
                  {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["scores", "label"],
                   "top": "loss"}]})
    feed, notes = example_feed(net, {"label": [0, 2]}, batch_size=2)
    assert notes == ["data: random values (the config has no data section)"]
    assert feed["data"].shape == (2, 6) and feed["label"] == [0, 2]
    feed, notes = example_feed(net, {}, batch_size=5)
    assert notes == ["data, label: random values (the config has no data section)"]
    assert feed["data"].shape == (5, 6) and set(feed["label"]) <= {0, 1, 2}
    source = digraph(net, trace(net, feed), notes=notes).source
    assert ("gate/loss", "out/loss", "1", True) in edges(source)      # the loss is seeded with 1
    assert "label<br/>" in node_label(source, "blob/label") and "no gradient" in source
    assert "data, label: random values (the config has no data section)" in source


@pytest.mark.slow
@needs_sklearn
def test_values_come_from_the_test_data(tmp_path):
    out = tmp_path / "lenet.dot"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "draw_net.py"),
                           str(CONFIGS / "lenet_digits.yaml"), str(out), "--values",
                           "--batch-size", "3"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    note = "data, label: the first 3 samples of the test data (digits (built-in, test part))"
    assert note in done.stdout and note in out.read_text()
    assert node_label(out.read_text(), "blob/data").startswith("data<br/>(3, 1, 8, 8) min 0 ")
