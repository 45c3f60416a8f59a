"""JSON from outside, parsed with a depth limit: nesting comes back as JSONDecodeError, never as
a RecursionError traceback."""
import json

import pytest

from trainer import safe_json
from trainer.config import ConfigError, TrainConfig

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text", [DEEP, "[" * 65 + "]" * 65, '{"a": ' * 70 + "1" + "}" * 70])
def test_nesting_past_the_limit_is_a_decode_error(text):
    with pytest.raises(json.JSONDecodeError, match="nested more than 64 levels deep"):
        safe_json.loads(text)


def test_ordinary_json_passes_and_depth_counts_levels():
    value = safe_json.loads('{"a": [1, {"b": [2]}], "c": "x"}')
    assert value == {"a": [1, {"b": [2]}], "c": "x"} and safe_json.depth(value) == 4
    assert safe_json.loads(b"[1, 2]") == [1, 2] and safe_json.depth(3) == 0


def test_a_config_file_nested_too_deep_is_a_one_line_config_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text(DEEP)
    with pytest.raises(ConfigError, match="not valid JSON: nested more than 64 levels deep"):
        TrainConfig.load(path)
