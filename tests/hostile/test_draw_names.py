"""Hostile names in drawings (issue 12, item 18): a gate, input or blob name ending in a backslash
used to escape the closing quote of its DOT string, so `dot` rejected the file; `\\N` or `\\l`
inside a name would have been read as Graphviz escapes."""
from __future__ import annotations

import re
import subprocess

import pytest

from net import Net
from net.tools.draw import digraph, dot_available, trace

pytest.importorskip("graphviz", reason="drawing needs the graphviz Python package")

HOSTILE = {
    "inputs": {"x\\": {"shape": [], "value": 2}, "y\\N": {"shape": [], "value": 3}},
    "gates": [{"name": "add\\", "type": "Add", "bottom": ["x\\", "y\\N"], "top": "s\\"},
              {"name": "e\\l", "type": "Exp", "bottom": "s\\", "top": "out\\"}],
}
# a DOT double-quoted string: no bare quote inside, a backslash always escaping what follows
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def source(traced: bool) -> str:
    net = Net.from_config(HOSTILE)
    return digraph(net, trace(net) if traced else None).source


@pytest.mark.parametrize("traced", [False, True], ids=["plain", "traced"])
def test_backslashes_stay_inside_their_strings(traced):
    text = source(traced)
    for line in text.splitlines()[1:-1]:
        outside = QUOTED.sub("", re.sub(r"<.*>", "", line))   # drop strings and HTML labels
        assert '"' not in outside and "\\" not in outside, line
    assert '"blob/x\\\\" -> "gate/add\\\\"' in text       # the name's backslash, doubled
    assert 'label="out\\\\ ' in text


@pytest.mark.skipif(not dot_available(), reason="Graphviz's dot program is not installed")
@pytest.mark.parametrize("traced", [False, True], ids=["plain", "traced"])
def test_dot_reads_the_file(traced):
    done = subprocess.run(["dot", "-Tsvg"], input=source(traced), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "out\\" in done.stdout and "add\\" in done.stdout
