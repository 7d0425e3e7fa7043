"""The explorer without a browser: its layout, the walk it sends the page, its HTTP API (on
127.0.0.1, port chosen by the system) and its self-contained page."""
from __future__ import annotations

import http.client
import json
import re
import threading
import urllib.error
import urllib.request

import pytest

from net import Net
from net.tools.explore import Explorer, FeedError, layout, make_server
from net.tools.explore.server import is_loopback, local_name
from tests.helpers import CONFIGS

SEED = CONFIGS / "seed_example.yaml"


def boxes_overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and \
        a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def test_seed_example_is_laid_out_left_to_right_in_layers():
    drawn = layout(Net.from_yaml(SEED))
    nodes = {n["id"]: n for n in drawn["nodes"]}
    assert drawn["direction"] == "LR"
    layers = {n["id"]: n["layer"] for n in drawn["nodes"]}
    assert layers == {"blob:x": 0, "blob:y": 0, "blob:z": 0, "gate:add": 1, "gate:max": 1,
                      "blob:a": 2, "blob:b": 2, "gate:mul": 3, "blob:f": 4}
    assert nodes["blob:x"]["y"] < nodes["blob:y"]["y"] < nodes["blob:z"]["y"]
    assert nodes["gate:add"]["y"] < nodes["gate:max"]["y"]           # no crossing
    assert [n["kind"] for n in drawn["nodes"] if n["kind"] != "gate"] == \
        ["input", "input", "input", "blob", "blob", "output"]
    assert {(e["source"], e["target"], e["index"]) for e in drawn["edges"]} >= {
        ("blob:y", "gate:add", 1), ("blob:y", "gate:max", 0), ("gate:mul", "blob:f", 0)}


def test_deep_nets_run_top_to_bottom_with_weights_beside_their_gate():
    drawn = layout(Net.from_yaml(CONFIGS / "lenet_digits.yaml"))
    nodes = {n["id"]: n for n in drawn["nodes"]}
    assert drawn["direction"] == "TB"
    for gate in ("conv1", "conv2", "ip1", "ip2"):
        assert nodes[f"blob:{gate}.W"]["layer"] == nodes[f"gate:{gate}"]["layer"] - 1
    assert nodes["blob:label"]["layer"] == nodes["gate:loss"]["layer"] - 1
    every = list(nodes.values())
    assert not any(boxes_overlap(a, b) for i, a in enumerate(every) for b in every[i + 1:])
    assert all(0 <= n["x"] and n["x"] + n["w"] <= drawn["width"] and
               n["y"] + n["h"] <= drawn["height"] for n in every)


def test_walk_json_holds_each_step_value_and_gradient():
    walk = Explorer(Net.from_yaml(SEED)).run()
    assert [s["gate"] for s in walk["forward"]] == ["add", "max", "mul"]
    assert walk["forward"][2]["text"] == "a = 3, b = 2 -> f = 6"
    assert [s["gate"] for s in walk["backward"]] == ["mul", "max", "add"]
    assert [e["text"] for e in walk["backward"][0]["edges"]] == ["df/da = 1 x 2 = 2",
                                                                 "df/db = 1 x 3 = 3"]
    assert walk["backward"][2]["sums"] == ["y fans out to add, max: df/dy = 2 + 3 = 5"]
    assert {k: v["json"] for k, v in walk["values"].items()} == \
        {"x": 1, "y": 2, "z": 0, "a": 3, "b": 2, "f": 6}
    assert {k: v["json"] for k, v in walk["grads"].items()} == \
        {"x": 2, "y": 5, "z": 0, "a": 2, "b": 3, "f": 1}
    assert walk["grads"]["y"]["text"] == "2 + 3 = 5"
    # y's gradient is final after the last step; 3 arrives first (from max), then 2 (from add)
    assert walk["grad_after"] == {"f": 0, "a": 0, "b": 0, "y": 2, "z": 1, "x": 2}
    assert walk["arrivals"] == {"y": [[1, "3"], [2, "2"]]}
    assert walk["feed"] == {"x": 1, "y": 2, "z": 0}


@pytest.mark.parametrize("feed, message", [
    ({"x": [1, 2]}, "input 'x' has shape (2,) but the config declares ()"),
    ({"x": "abc"}, "input 'x': expected a number or a list of numbers, got \"abc\""),
    ({"x": True}, "input 'x': expected a number or a list of numbers, got true"),
    ({"w": 1}, "'w' is not an input of net 'seed_example' (inputs: x, y, z)"),
    ({"x": [[1], [2, 3]]}, "input 'x': the lists are ragged"),
])
def test_feeds_that_do_not_fit_are_refused(feed, message):
    with pytest.raises(FeedError, match=re.escape(message)):
        Explorer(Net.from_yaml(SEED)).run(feed)


@pytest.fixture(scope="module")
def server():
    explorer = Explorer(Net.from_yaml(SEED))
    httpd = make_server(explorer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def post(server, body: bytes | str, path: str = "/api/run") -> tuple[int, dict]:
    host, port = server.server_address[:2]
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(f"http://{host}:{port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_server_listens_on_localhost_only(server):
    assert server.server_address[0] == "127.0.0.1"


def test_api_runs_a_feed(server):
    status, walk = post(server, json.dumps({"feed": {"z": 4, "x": -1}}))
    assert status == 200
    assert walk["values"]["f"]["json"] == 4
    assert {k: walk["grads"][k]["json"] for k in "xyz"} == {"x": 4, "y": 4, "z": 1}
    assert walk["feed"] == {"x": -1, "y": 2, "z": 4}


@pytest.mark.parametrize("body, status, message", [
    ('{"feed": {"x": [1, 2]}}', 400, "input 'x' has shape (2,) but the config declares ()"),
    ('{"feed": {"x": "one"}}', 400, "input 'x': expected a number or a list of numbers"),
    ('{"feed": {"x": NaN}}', 400, "NaN is not a number the explorer accepts"),
    ('{"feed": [1]}', 400, 'the request body must be {"feed"'),
    ("not json", 400, "the request body is not JSON"),
    (b"\xff", 400, "the request body is not JSON"),
])
def test_api_refuses_bad_feeds_with_a_clear_message(server, body, status, message):
    got, payload = post(server, body)
    assert got == status and message in payload["error"]


def test_api_unknown_paths_and_huge_bodies(server):
    assert post(server, "{}", "/api/nothing")[0] == 404
    host, port = server.server_address[:2]
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=10) as response:
        page = response.read().decode()
    assert response.status == 200 and '<button id="forward-step"' in page
    assert '"static": false' in page
    connection = http.client.HTTPConnection(host, port, timeout=10)   # announces 2 MB, sends none
    connection.putrequest("POST", "/api/run")
    connection.putheader("Content-Length", str(2 << 20))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and "at most" in json.loads(response.read())["error"]
    connection.close()


def request(server, method: str, headers: dict, body: bytes | None = None) -> tuple[int, str]:
    """Status and body of one request with exactly these headers (http.client adds no Host
    when one is given)."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    path = "/api/run" if method == "POST" else "/"
    connection.putrequest(method, path, skip_host="Host" in headers)
    for key, value in {**headers, "Content-Length": str(len(body or b""))}.items():
        connection.putheader(key, value)
    connection.endheaders(body)
    response = connection.getresponse()
    try:
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_only_requests_addressed_to_this_machine_are_answered(server):
    # a page under another name that resolves to 127.0.0.1 (DNS rebinding) must not read the
    # explorer; the names a browser uses for this machine are answered, on any port (an SSH
    # tunnel or an editor's port forwarding brings localhost:9000 to the server's port)
    port = server.server_address[1]
    status, body = request(server, "GET", {"Host": f"attacker.example:{port}"})
    assert status == 403 and "addressed to localhost or a loopback address" in body
    assert "attacker.example" in body and '<button id="forward-step"' not in body
    status, body = request(server, "POST", {"Host": f"attacker.example:{port}",
                                            "Content-Type": "application/json"}, b"{}")
    assert status == 403 and '"values"' not in body
    for name in ("127.0.0.1", "localhost", "LOCALHOST", "[::1]", "127.0.0.2"):
        assert request(server, "GET", {"Host": f"{name}:{port}"})[0] == 200
    assert request(server, "GET", {"Host": "localhost:9000"})[0] == 200
    assert request(server, "GET", {"Host": "localhost"})[0] == 200
    assert request(server, "GET", {"Host": "127.0.0.1.attacker.example"})[0] == 403
    status, body = request(server, "GET", {"Host": ""})
    assert status == 403 and "names no Host" in body


def test_posts_must_be_json_from_the_page_itself(server):
    # a cross-site page may send text/plain without asking (no preflight); JSON it may not
    port = server.server_address[1]
    body = json.dumps({"feed": {"x": -1}}).encode()
    status, text = request(server, "POST", {"Content-Type": "text/plain"}, body)
    assert status == 415 and "application/json" in text
    json_from = {"Content-Type": "application/json; charset=utf-8"}
    status, text = request(server, "POST", {**json_from, "Origin": "http://attacker.example"},
                           body)
    assert status == 403 and "attacker.example" in text
    status, text = request(server, "POST", {**json_from, "Origin": f"http://127.0.0.1:{port}"},
                           body)
    assert status == 200 and json.loads(text)["values"]["f"]["json"] == 2   # (-1+2) max(2, 0)


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True),
                                            ("::1", True), ("127.0.0.2", True),
                                            ("0.0.0.0", False), ("192.168.1.5", False),
                                            ("example.org", False)])
def test_only_a_loopback_bind_address_checks_the_host(host, loopback):
    assert is_loopback(host) is loopback
    header = f"[{host}]:8000" if ":" in host else f"{host}:8000"
    assert local_name(header) is loopback


def test_page_is_self_contained_and_escapes_names():
    net = Net.from_config({"name": "</script><script>alert(1)</script>",
                           "inputs": {"x": {"shape": [], "value": 1}},
                           "gates": [{"name": "</script>", "type": "Exp", "bottom": "x",
                                      "top": "y"}]})
    page = Explorer(net).page(static=True)
    assert page.count("</script>") == 2 and "<script>alert" not in page    # ours only
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)      # nothing fetched
    data = json.loads(re.search(r'id="gatework-data">(.*?)</script>', page, re.S)[1])
    assert data["static"] is True
    assert data["walk"]["values"]["y"]["json"] == pytest.approx(2.718281828)


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_makes_a_page(config):
    explorer = Explorer(Net.from_yaml(config), batch_size=2)
    data = json.loads(re.search(r'id="gatework-data">(.*?)</script>',
                                explorer.page(static=True), re.S)[1])
    walk, drawn = data["walk"], data["layout"]
    blobs = {n["name"] for n in drawn["nodes"] if n["kind"] != "gate"}
    assert blobs <= set(walk["values"]) and len(walk["forward"]) == len(explorer.net.runner.steps)
    assert set(walk["grad_after"]) == set(walk["grads"])
    assert all(0 <= index < len(walk["backward"]) for index in walk["grad_after"].values())
