import pytest

from meshd.errors import InvalidInput
from meshd.replica.paths import encode_value, validate_path


@pytest.mark.parametrize(
    "path",
    [
        "profile/name",
        "capabilities/abc-1",
        "settings/conflict_resolution",
        "delegations/x.y",
    ],
)
def test_ordinary_passport_paths_are_accepted(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "Profile/name",
        "profile//name",
        "profile/../x",
        "secrets/x",
        "profile/a b",
        "profile/" + "a" * 65,
        "/".join(["profile"] * 9),
        "profile/x\n",
        "profile\n/x",
        "profile/\u0131",
    ],
)
def test_malformed_passport_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidInput):
        validate_path(path)


def test_values_are_canonical_and_bounded() -> None:
    assert encode_value({"b": 1, "a": [True, None]}) == '{"a":[true,null],"b":1}'
    with pytest.raises(InvalidInput):
        encode_value("x" * 70_000)
    with pytest.raises(InvalidInput):
        encode_value({1, 2})
