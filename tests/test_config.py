"""The one dataclass-from-dict of every config loader (aemg._config): nesting, unknown keys at any
depth named by their key path, value kinds; and the loaders built on it."""
import json

import pytest

from aemg._config import dataclass_from_dict, read_table
from aemg.cli import main
from aemg.data.rectify import StandardSpace
from aemg.errors import ConfigError
from aemg.model.config import PretrainConfig, load_config, preset
from aemg.tokenizer.segment import SegmentParams
from aemg.tokenizer.tokens import TokenizerConfig


def test_nested_tables_update_the_defaults():
    cfg = dataclass_from_dict(TokenizerConfig, {"token_s": 0.5, "segment": {"on_factor": 5.0}})
    assert cfg.token_s == 0.5 and cfg.segment.on_factor == 5.0
    assert cfg.segment == SegmentParams(on_factor=5.0)  # the other detector settings keep their defaults
    assert TokenizerConfig.from_dict(cfg.to_dict()) == cfg
    want = TokenizerConfig(0.5, None, SegmentParams(on_factor=5.0), mode="windows")
    assert dataclass_from_dict(cfg, {"mode": "windows"}) == want


@pytest.mark.parametrize("load, where", [
    (lambda: TokenizerConfig.from_dict({"segment": {"on_factr": 3}}), r"tokenizer config\.segment\.on_factr"),
    (lambda: PretrainConfig.from_dict({"model": {"widht": 3}}), r"config\.model\.widht"),
    (lambda: PretrainConfig.from_dict({"optimiser": {}}), r"config\.optimiser"),
    (lambda: StandardSpace.from_dict({"rate": 500.0, "colour": 1}), r"standard space\.colour"),
])
def test_unknown_keys_at_any_depth_name_their_path(load, where):
    with pytest.raises(ConfigError, match=where + ": unknown key; known: .*"):
        load()


def test_value_kinds_are_checked():
    with pytest.raises(ConfigError, match=r"config\.train\.amp='yes': expected true/false"):
        PretrainConfig.from_dict({"train": {"amp": "yes"}})
    with pytest.raises(ConfigError, match=r"config\.model\.depth=2\.5: expected an integer"):
        PretrainConfig.from_dict({"model": {"depth": 2.5}})
    with pytest.raises(ConfigError, match=r"config\.model: expected a table, got int"):
        PretrainConfig.from_dict({"model": 3})
    with pytest.raises(ConfigError, match=r"config\.train\.lr='fast': expected float"):
        PretrainConfig.from_dict({"train": {"lr": "fast"}})
    # integral numbers convert; the dataclass's own checks still run
    assert PretrainConfig.from_dict({"model": {"depth": 3.0}}).model.depth == 3
    with pytest.raises(ConfigError, match="divisible"):
        PretrainConfig.from_dict({"model": {"d_model": 30, "heads": 4}})


def test_preset_then_overrides_and_file_key_paths(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('preset = "base"\n[train]\nstage1_steps = 7\n')
    cfg = load_config(p)
    assert cfg.model == preset("base").model and cfg.train.stage1_steps == 7
    (tmp_path / "bad.toml").write_text("[train]\nstage1_stepz = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: train\.stage1_stepz: unknown key"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a table at top level"):
        read_table(tmp_path / "list.json")
    (tmp_path / "broken.toml").write_text("[train\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        read_table(tmp_path / "broken.toml")


def test_tokenize_config_file_and_options_on_top(tmp_path, capsys):
    from aemg.cli import build_parser
    from aemg.cli.tokenize import tokenizer_config

    toml = tmp_path / "tok.toml"
    toml.write_text('token_s = 0.2\ncap = "energy"\n[segment]\non_factor = 5.0\n')
    args = build_parser().parse_args(["tokenize", "ARCH", "OUT", "--config", str(toml), "--max-len", "64"])
    cfg = tokenizer_config(args)
    assert (cfg.token_s, cfg.cap, cfg.max_sentence_len, cfg.segment.on_factor) == (0.2, "energy", 64, 5.0)
    args = build_parser().parse_args(["tokenize", "ARCH", "OUT", "--config", str(toml), "--token-s", "0.3"])
    assert tokenizer_config(args).token_s == 0.3
    # no option and no file: exactly the dataclass's defaults
    assert tokenizer_config(build_parser().parse_args(["tokenize", "A", "O"])) == TokenizerConfig()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"segment": {"onfactor": 4.0}}))
    assert main(["tokenize", str(tmp_path / "nothing"), str(tmp_path / "out"), "--config", str(bad)]) == 2
    assert "bad.json: segment.onfactor: unknown key" in capsys.readouterr().err


def test_cli_help_shows_the_dataclass_defaults(capsys):
    assert main(["tokenize", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    d = TokenizerConfig()
    assert f"default {d.token_s:g}" in text and f"default {d.max_sentence_len}" in text
