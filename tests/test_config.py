"""Config validation and overrides: every problem as one `path.to.key: what is wrong` line."""

from __future__ import annotations

import pytest

from flows.config import ConfigError, apply_overrides, load_config, parse_config

BASE = {
    "flow": "table",
    "input": {"format": "synthetic", "rows": 100},
    "steps": [
        {"dedup": {"subset": ["price"], "by": "symbol"}},
        {"lookahead": {"horizon": "30s", "columns": ["price"], "features": ["change", "max"]}},
    ],
    "output": {"path": "out/x"},
}


def with_change(path: str, value) -> dict:
    return apply_overrides(BASE, {path: value})


def test_base_is_valid():
    cfg = parse_config(BASE)
    assert cfg.steps[1].lookahead.horizon == "30s"
    # the default LocalCluster: one worker in the run's process, a thread per core
    assert (cfg.cluster.n_workers, cfg.cluster.threads_per_worker, cfg.cluster.processes) == (1, None, False)


@pytest.mark.parametrize(
    "change, expected",
    [
        (("inptu", {}), "inptu: unknown key"),
        (("steps.0.dedup.subsett", ["x"]), "steps[0].dedup.subsett: unknown key"),
        (("cluster.n_workers", "two"), "cluster.n_workers: "),
        (("cluster.n_workers", 0), "cluster.n_workers: "),
        (("steps.1.lookahead.horizon", "30x"),
         "steps[1].lookahead.horizon: '30x' is not a row count or a time span like '30s'"),
        (("steps.1.lookahead.horizon", "1M"), "steps[1].lookahead.horizon: "),
        (("steps.1.lookahead.horizon", 0), "steps[1].lookahead.horizon: "),
        (("steps.1.lookahead.features", ["median"]), "steps[1].lookahead.features: unknown feature 'median'"),
        (("steps.0", {"dedupe": {}}), "steps[0]: not a step"),
        (("steps.0", {"map": {"function": "no_colon"}}), "steps[0].map.function: 'no_colon' is not of the form"),
        (("input.format", "excel"), "input.format: 'excel' is not one of"),
        (("output.overwrite", "maybe"), "output.overwrite: "),
        (("flow", "graph"), "flow: 'graph' is not one of"),
        (("cluster.kind", "tpu"), "cluster.kind: 'tpu' is not one of"),
    ],
)
def test_bad_config_names_the_key(change, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(with_change(*change))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_output_and_summary():
    raw = {k: v for k, v in BASE.items() if k != "output"}
    with pytest.raises(ConfigError, match="output: field required"):
        parse_config(raw)


def test_overrides_are_yaml_typed():
    raw = apply_overrides(BASE, ["steps.1.lookahead.horizon=60s", "cluster.n_workers=3", "output.overwrite=true"])
    cfg = parse_config(raw)
    assert (cfg.steps[1].lookahead.horizon, cfg.cluster.n_workers, cfg.output.overwrite) == ("60s", 3, True)
    assert BASE["steps"][1]["lookahead"]["horizon"] == "30s"  # the original is untouched


@pytest.mark.parametrize(
    "override, expected",
    [
        ("steps.7.lookahead.horizon=1", "--set steps.7.lookahead.horizon: steps.7: no list item"),
        ("novalue", "--set novalue: expected dotted.key=value"),
        ("output.path.deeper=1", "--set output.path.deeper: output.path.deeper: cannot set a key inside a str"),
    ],
)
def test_bad_override(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(BASE, [override])


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: table\ninput: {format: synthetic\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: malformed YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("flow: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(unsafe)


def test_shipped_configs_are_valid():
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].glob("configs/*.yaml")):
        load_config(path)


def test_cuda_settings_pass_through_and_need_kind_cuda():
    from flows.cluster import cuda_cluster_kwargs
    from flows.config import ClusterConfig

    config = ClusterConfig(kind="cuda", cuda={"rmm_pool_size": "20GB", "CUDA_VISIBLE_DEVICES": "0,1"})
    kwargs = cuda_cluster_kwargs(config)
    assert kwargs["rmm_pool_size"] == "20GB" and kwargs["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert kwargs["resources"] == {"GPU": 1}
    with pytest.raises(ConfigError, match=r"cluster\.cuda: .*need cluster\.kind: cuda"):
        parse_config({"flow": "table", "input": {"format": "synthetic"}, "output": {"path": "x"},
                      "cluster": {"cuda": {"rmm_pool_size": "1GB"}}})
