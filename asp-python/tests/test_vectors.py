"""SPEC.md §14's frame vectors through the Rust core: the decoder Python
runs is asp-proto's, byte for byte."""

import json
from pathlib import Path

import pytest

from agent_socket import FrameError, decode_frames, error_name

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "asp-proto" / "tests" / "vectors" / "frames.json").read_text())


def test_every_valid_vector_decodes_to_its_type_flags_and_id_and_encodes_canonically():
    assert len(VECTORS["valid"]) >= 30
    for case in VECTORS["valid"]:
        frames = decode_frames(bytes.fromhex(case["hex"]), 1 << 20)
        assert len(frames) == 1, case["name"]
        frame = frames[0]
        expected = case["frame"]
        assert (frame["type"], frame["flags"], frame["request_id"]) == (expected["type"], expected["flags"], expected["request_id"]), case["name"]
        assert frame["canonical"].hex() == case.get("canonical_hex", case["hex"]), case["name"]


def test_every_invalid_vector_fails_with_its_spec_code():
    assert len(VECTORS["invalid"]) >= 40
    for case in VECTORS["invalid"]:
        with pytest.raises(FrameError) as caught:
            decode_frames(bytes.fromhex(case["hex"]), case["max_payload"])
        assert caught.value.code == case["code"], f"{case['name']}: {caught.value}"
        assert caught.value.name == case["error"], case["name"]
        assert error_name(case["code"]) == case["error"]
