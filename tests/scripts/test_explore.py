"""scripts/explore.py: the saved page, and the server on 127.0.0.1 serving the page and the API."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

from tests.helpers import ROOT


def test_html_writes_one_self_contained_page(tmp_path):
    out = tmp_path / "seed.html"
    done = subprocess.run([sys.executable, "scripts/explore.py", "configs/seed_example.yaml",
                           "--html", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert "<style>" in page and 'id="gatework-data"' in page and "function build()" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    data = json.loads(re.search(r'id="gatework-data">(.*?)</script>', page, re.S)[1])
    assert data["static"] and data["walk"]["values"]["f"]["json"] == 6


def test_server_binds_to_localhost_and_serves(tmp_path):
    process = subprocess.Popen([sys.executable, "scripts/explore.py", "configs/seed_example.yaml",
                                "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line + process.stderr.read() if process.poll() is not None else line
        with urllib.request.urlopen(url[0], timeout=10) as response:
            assert b'id="run-all"' in response.read()
        request = urllib.request.Request(url[0] + "api/run", data=b'{"feed": {"y": 10}}',
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["values"]["f"]["json"] == 110
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_bad_config_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "scripts/explore.py", str(tmp_path / "none.yaml"),
                           "--html", str(tmp_path / "x.html")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "none.yaml" in done.stderr
    assert "Traceback" not in done.stderr
