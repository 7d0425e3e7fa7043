"""Hostile and mistaken configs (issue 12): each gets one located ConfigError, never a traceback,
a silent wrong result, or an allocation its content does not justify."""
from __future__ import annotations

import math
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from net import ConfigError, DataError, Net, Solver
from net.core.config import load_config, parse_config
from net.core.yaml import load_yaml
from tests.helpers import CONFIGS, ROOT

FC = "  - {name: fc1, type: InnerProduct, bottom: x, top: y, num_output: 2}\n"


def build(tmp_path, text: str, name: str = "bad.yaml") -> Net:
    path = tmp_path / name
    path.write_text(text)
    return Net.from_yaml(path)


def error_of(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        build(tmp_path, text)
    return str(info.value)


# -- item 2: YAML alias bombs and deep nesting ----------------------------------------------------
BILLION_LAUGHS = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10) if i else ', '.join(['lol'] * 10)}]\n"
    for i in range(9))


def test_an_alias_bomb_is_refused_before_anything_expands_it(tmp_path):
    start = time.perf_counter()
    message = error_of(tmp_path, BILLION_LAUGHS + "gates: *l8\n")
    assert "aliases expand to more than 1,000,000 values" in message
    assert message.startswith(f"{tmp_path / 'bad.yaml'}:")
    assert time.perf_counter() - start < 5


def test_a_modest_alias_is_fine():
    data = load_yaml("a: &a [1, 2, 3]\nb: *a\n")
    assert data["b"] == [1, 2, 3]


@pytest.mark.parametrize("depth", [150, 3000])
def test_deep_nesting_is_one_located_error(tmp_path, depth):
    message = error_of(tmp_path, "inputs: " + "[" * depth + "]" * depth + "\n")
    assert "nested too deeply" in message


def test_an_unbounded_value_is_never_printed_whole(tmp_path):
    huge = "x" * 100_000
    message = error_of(tmp_path, f"inputs:\n  x: {{shape: [2]}}\ngates:\n  - {{name: g, type: "
                                 f"InnerProduct, bottom: x, top: y, num_output: '{huge}'}}\n")
    assert len(message) < 400 and "num_output" in message


# -- item 7: tracebacks that are one line now -----------------------------------------------------
@pytest.mark.parametrize("text, fragment", [
    ("name: a\x07b\n", "cannot read character U+0007"),
    ("inputs:\n  x: {shape: [2], value: !!set {1, 2}}\n" + "gates:\n" + FC, "value must be"),
    ("inputs:\n  x: {shape: [2], value: 2024-01-01}\n" + "gates:\n" + FC, "value must be"),
    ("inputs:\n  x: {shape: [2]}\ngates:\n  - {name: fc1, type: InnerProduct, bottom: x, "
     "top: y, num_output: " + "9" * 400 + "}\n", "400-digit number"),
    ("inputs:\n  x: {shape: [" + "9" * 400 + "]}\ngates:\n" + FC, "shape must be"),
    ("inputs:\n  x: {shape: [2]}\ngates:\n" + FC + "solver: {base_lr: 0.1, random_seed: 1e30}\n",
     "random_seed must be an integer"),
    ("name: [1, 2]\ngates:\n" + FC, "name must be text"),
])
def test_what_used_to_be_a_traceback_is_one_located_line(tmp_path, text, fragment):
    message = error_of(tmp_path, text)
    assert fragment in message and "\n" not in message


def test_from_config_of_nothing_is_a_config_error():
    with pytest.raises(ConfigError, match="must be a mapping"):
        Net.from_config(None)


def test_a_device_file_is_refused_at_once(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config("/dev/zero")


# -- item 13: Caffe's exponent spelling ------------------------------------------------------------
def test_floats_without_a_dot_are_numbers(tmp_path):
    net = build(tmp_path, "inputs:\n  x: {shape: [null, 2]}\n  y: {shape: [null, 2]}\ngates:\n"
                "  - {name: loss, type: EuclideanLoss, bottom: [x, y], top: loss}\n"
                "solver: {base_lr: 1e-3, weight_decay: 5e-4, delta: 1E-8}\n")
    config = Solver.from_config(net).config
    assert (config.base_lr, config.weight_decay, config.delta) == (1e-3, 5e-4, 1e-8)


# -- item 4: one namespace --------------------------------------------------------------------------
@pytest.mark.parametrize("text, fragment", [
    ("inputs:\n  x: {shape: [null, 3]}\ngates:\n" + FC.replace("top: y", "top: fc1.W"),
     "the blob written by gate 'fc1' (InnerProduct) is named 'fc1.W', like the parameter of "
     "gate 'fc1'"),
    ("inputs:\n  x: {shape: [null, 3]}\n  fc1.W: {shape: [2, 3]}\ngates:\n" + FC,
     "is named 'fc1.W', like input 'fc1.W'"),
    ("inputs:\n  x: {shape: [null, 3, 2, 2]}\nparams:\n  bn.mean: {shape: [3]}\ngates:\n"
     "  - {name: bn, type: BatchNorm, bottom: x, top: y}\n",
     "the buffer of gate 'bn' (BatchNorm) is named 'bn.mean', like param 'bn.mean'"),
])
def test_names_that_collide_name_both_definitions(tmp_path, text, fragment):
    message = error_of(tmp_path, text)
    assert fragment in message and "one namespace" in message


# -- item 5: resource bombs ------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "inputs:\n  x: {shape: [null, 3]}\ngates:\n" + FC.replace("num_output: 2",
                                                              "num_output: 200000000000"),
    "inputs:\n  x: {shape: [null, 1, 8, 8]}\ngates:\n  - {name: c, type: Convolution, bottom: x, "
    "top: y, num_output: 4, kernel_size: 1000000}\n",
    "params:\n  W: {shape: [100000, 100000]}\ninputs:\n  x: {shape: [2]}\ngates:\n"
    "  - {name: r, type: ReLU, bottom: x, top: y}\n",
    "inputs:\n  data: {shape: [null, 64]}\n  label: {shape: [null], dtype: int}\ngates:\n"
    "  - {name: fc, type: InnerProduct, bottom: data, top: s, num_output: 10}\n"
    "  - {name: loss, type: SoftmaxWithLoss, bottom: [s, label], top: loss}\n"
    "data:\n  train: {source: digits, batch_size: 1000000000000}\nsolver: {base_lr: 0.1}\n",
])
def test_what_cannot_fit_in_memory_is_refused_at_build_with_the_figure(tmp_path, text):
    message = error_of(tmp_path, text)
    assert re.search(r"\d+\.\d (GiB|MiB)", message), message
    assert "fit" in message or "more than" in message


def test_num_output_zero_is_refused(tmp_path):
    assert "must be a positive integer, got 0" in error_of(
        tmp_path, "inputs:\n  x: {shape: [null, 3]}\ngates:\n" + FC.replace("num_output: 2",
                                                                           "num_output: 0"))


def test_iter_size_does_not_materialise_its_feeds():
    net = Net.from_yaml(CONFIGS / "digits_mlp.yaml")
    solver = Solver.from_config(net, iter_size=2)
    x, y = np.zeros((2, 64)), np.zeros(2, int)
    feeds = iter([{"data": x, "label": y}] * 2)
    assert math.isfinite(solver.step(feeds))
    with pytest.raises(ValueError, match="needs 2 feed"):
        solver.step(iter([{"data": x, "label": y}]))


# -- item 6: non-finite numbers ---------------------------------------------------------------------
@pytest.mark.parametrize("fragment, text", [
    ("lr_mult", FC.replace("num_output: 2", "num_output: 2, param: [{lr_mult: .nan}]")),
    ("decay_mult", FC.replace("num_output: 2", "num_output: 2, param: [{decay_mult: .inf}]")),
    ("loss_weight", FC.replace("num_output: 2", "num_output: 2, loss_weight: .nan")),
    ("std", FC.replace("num_output: 2",
                       "num_output: 2, weight_filler: {type: gaussian, std: .inf}")),
])
def test_non_finite_settings_are_refused(tmp_path, fragment, text):
    message = error_of(tmp_path, "inputs:\n  x: {shape: [null, 3]}\ngates:\n" + text)
    assert fragment in message and "finite" in message


# -- items 16 and 18: what a new user trips over ------------------------------------------------------
def test_a_wrong_bottom_name_gets_a_suggestion(tmp_path):
    message = error_of(tmp_path, "inputs:\n  x: {shape: [null, 3]}\ngates:\n" + FC +
                       "  - {name: r, type: ReLU, bottom: yy, top: z}\n")
    assert "did you mean 'y'?" in message


def test_an_indentation_mistake_gets_a_hint(tmp_path):
    message = error_of(tmp_path, "inputs:\n  x: {shape: [null, 3]}\n gates:\n" + FC)
    assert "check the indentation" in message


def test_merge_keys_are_not_duplicate_keys(tmp_path):
    net = build(tmp_path, "defaults: &fc {type: InnerProduct, num_output: 2}\n"[0:0] +
                "inputs:\n  x: {shape: [null, 3]}\ngates:\n"
                "  - &fc {name: fc1, type: InnerProduct, bottom: x, top: y, num_output: 2}\n"
                "  - {<<: *fc, name: fc2, bottom: y, top: z, num_output: 4}\n")
    assert net.params["fc2.W"].shape == (4, 2)


@pytest.mark.parametrize("batch", [32, 64])
def test_an_input_the_data_feeds_has_an_open_batch_dimension(tmp_path, batch):
    # even one equal to batch_size: the last batch of a test pass (360 digits) is smaller
    text = (CONFIGS / "digits_mlp.yaml").read_text().replace("shape: [null, 64]",
                                                            f"shape: [{batch}, 64]")
    message = error_of(tmp_path, text)
    assert f"fixed batch dimension of {batch}" in message and "null (open)" in message


def test_the_cycle_search_is_linear_and_its_message_bounded():
    n = 20_000
    gates = [{"name": f"g{i}", "type": "ReLU", "bottom": f"b{(i - 1) % n}", "top": f"b{i}"}
             for i in range(n)]
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"a cycle: g0 -> g1 .* \.\.\. \(20000 gates\)") as info:
        Net.from_config({"gates": gates})
    assert time.perf_counter() - start < 10 and len(str(info.value)) < 300


def test_set_naming_an_input_with_text_names_it():
    result = subprocess.run([sys.executable, "scripts/run.py", "configs/seed_example.yaml",
                             "--set", "x=abc"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: input 'x' takes numbers, got 'abc'"


def test_a_closed_pipe_ends_a_script_quietly():
    command = f"{sys.executable} scripts/gradcheck.py --all | head -n 1"
    result = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert "Broken pipe" not in result.stderr and "Traceback" not in result.stderr


# -- item 17: threads ----------------------------------------------------------------------------
def test_two_threads_on_one_net_fail_loudly_instead_of_corrupting_it():
    net = Net.from_yaml(CONFIGS / "digits_mlp.yaml")
    feed = {"data": np.random.default_rng(0).random((512, 64)), "label": np.zeros(512, int)}
    errors = []

    def work():
        try:
            for _ in range(30):
                net.forward(feed)
                net.backward()
        except RuntimeError as err:
            errors.append(str(err))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors and all("not thread-safe" in e for e in errors)


def test_mutated_yaml_keys_never_crash(tmp_path):
    base = yaml.safe_load((CONFIGS / "digits_mlp.yaml").read_text())
    for key in ("gates", "inputs", "solver", "data"):
        for value in (None, 7, "x", [], {}, [[]], {"a": {"b": []}}):
            mutated = dict(base, **{key: value})
            try:
                Net(parse_config(load_yaml(yaml.safe_dump(mutated), "m.yaml"), file="m.yaml"))
            except ConfigError as err:
                assert str(err).startswith("m.yaml")


# -- item 14: notebooks and edited plugin files ------------------------------------------------------
PLUGIN = '''
import numpy as np
from gates import Gate, register_gate


@register_gate
class TimesGate(Gate):
    def forward(self, x):
        return x * {factor}

    def backward(self, dout):
        return (dout * {factor},)
'''


def test_an_edited_plugin_file_is_loaded_again(tmp_path, clean_registry):
    plugin = tmp_path / "times_plugin.py"
    config = tmp_path / "net.yaml"
    config.write_text("plugins: [times_plugin.py]\ninputs:\n  x: {shape: [], value: 2.0}\n"
                      "gates:\n  - {name: t, type: Times, bottom: x, top: y}\n")
    plugin.write_text(PLUGIN.format(factor=3))
    assert float(Net.from_yaml(config).forward()["y"]) == 6.0
    plugin.write_text(PLUGIN.format(factor=5) + "\n# edited\n")
    assert float(Net.from_yaml(config).forward()["y"]) == 10.0


def test_a_plugin_file_never_shadows_an_installed_package(tmp_path, clean_registry):
    (tmp_path / "yaml.py").write_text(PLUGIN.format(factor=2))
    config = tmp_path / "net.yaml"
    config.write_text("plugins: [yaml.py]\ninputs:\n  x: {shape: [], value: 1.0}\n"
                      "gates:\n  - {name: t, type: Times, bottom: x, top: y}\n")
    assert float(Net.from_yaml(config).forward()["y"]) == 2.0
    assert hasattr(sys.modules["yaml"], "safe_load")        # PyYAML is still PyYAML


def test_the_checker_names_the_first_nan_instead_of_calling_backward_inconsistent():
    from gates import Gate
    from net.gradcheck import check_gate

    class SqrtGate(Gate):
        def forward(self, x):
            with np.errstate(invalid="ignore"):                 # the nan is the point
                self.out = np.sqrt(x)
            return self.out

        def backward(self, dout):
            return (dout / (2 * self.out),)

    report = check_gate(SqrtGate, [np.array([4.0, -1.0, 9.0])])
    assert not report.ok
    assert "forward produced nan at element [1]" in report.error
    assert "backward run twice" not in str(report)


def test_a_closed_pipe_with_much_output_ends_quietly(tmp_path):
    config = tmp_path / "wide.yaml"
    config.write_text(f"inputs:\n  x: {{shape: [20000], value: {[0.5] * 20000}}}\n"
                      "gates:\n  - {name: r, type: ReLU, bottom: x, top: y}\n")
    command = (f"{sys.executable} {ROOT}/scripts/run.py {config} --json "     # ~300 kB, more
               "| head -c 100 > /dev/null")                                  # than a pipe holds
    result = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.stderr == "", result.stderr


# -- found by review ---------------------------------------------------------------------------------
def test_floats_with_a_dot_and_an_unsigned_exponent_are_numbers():
    assert load_yaml("a: 5.0e4\nb: .5e3\n") == {"a": 50000.0, "b": 500.0}


@pytest.mark.parametrize("suffix", [".prototxt", ".onnx", ".yaml"])
def test_a_device_file_is_refused_whatever_its_suffix(tmp_path, suffix):
    link = tmp_path / f"zero{suffix}"
    link.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(link)
    weights = tmp_path / ("weights" + {".yaml": ".npz", ".prototxt": ".caffemodel"}.get(suffix,
                                                                                    suffix))
    weights.symlink_to("/dev/zero")
    with pytest.raises(DataError, match="not a regular file"):
        Net.from_yaml(CONFIGS / "two_layer.yaml").load_weights(weights)


def test_feeds_must_be_named_when_the_net_has_no_data_input(tmp_path):
    message = error_of(tmp_path, "inputs:\n  x: {shape: [null, 4]}\n  y: {shape: [null]}\n"
                       "gates:\n  - {name: fc, type: InnerProduct, bottom: x, top: s, "
                       "num_output: 2}\n  - {name: loss, type: SoftmaxWithLoss, bottom: [s, y], "
                       "top: loss}\ndata:\n  train: {source: iris, feeds: [x, y]}\n"
                       "  test: {source: iris}\nsolver: {base_lr: 0.1}\n")
    assert "data.test: name the inputs this source feeds with `feeds:`" in message


def test_overrides_are_the_callers_mistakes_not_the_configs():
    net = Net.from_yaml(CONFIGS / "digits_mlp.yaml")
    with pytest.raises(ValueError) as info:
        Solver.from_config(net, max_iter=-5)
    assert str(info.value).startswith("solver.max_iter must be a non-negative integer, got -5")
    assert "digits_mlp.yaml" not in str(info.value)


def test_backward_wrt_an_unknown_blob_is_an_error_with_a_suggestion():
    net = Net.from_yaml(CONFIGS / "seed_example.yaml")
    net.forward()
    with pytest.raises(KeyError, match="'aa' is not a blob .*did you mean 'a'"):
        net.backward(wrt=["aa"])
