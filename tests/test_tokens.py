"""API tokens from TQ_API_TOKENS: parsed strictly, checked exactly, never echoed."""
import pytest

from tq import audit, tokens
from tq.config import ConfigError, environment_secrets, mask_secrets

GOOD = "0123456789abcdef-secret"


def test_tokens_name_role_and_check():
    found = tokens.load({"TQ_API_TOKENS": f"alice:{GOOD}:operate, bob:{GOOD[::-1]}:read"})
    assert found.bearer(f"Bearer {GOOD}") == tokens.Token("alice", "operate")
    assert found.bearer(f"bearer  {GOOD[::-1]} ").name == "bob"
    assert found.check(GOOD[::-1]).may("read") and not found.check(GOOD[::-1]).may("operate")
    assert found.check(GOOD).may("operate")


@pytest.mark.parametrize("presented", [
    None, "", GOOD[:-1], GOOD + "x", GOOD.upper(), " " + GOOD, "\x00" + GOOD, "\ud800",
    "Basic " + GOOD, GOOD, "Bearer", "Bearer " + "A" * 100_000,
])
def test_hostile_header_is_no_token(presented):
    found = tokens.load({"TQ_API_TOKENS": f"alice:{GOOD}:operate"})
    # A bare token (no "Bearer ") is not a header; every other forgery fails too.
    assert found.bearer(presented) is None


def test_unset_means_no_tokens():
    assert not tokens.load({})
    assert not tokens.load({"TQ_API_TOKENS": "  "})


@pytest.mark.parametrize("value, says", [
    ("alice", "entry 1 is not name:token:role"),
    (f"alice:{GOOD}", "entry 1 is not name:token:role"),
    (f"alice:{GOOD}:read:x", "entry 1 is not name:token:role"),
    (f"alice:{GOOD}:admin", "role must be read or operate"),
    (f"[red]x:{GOOD}:read", "the name must be"),
    (f"a\x1bb:{GOOD}:read", "the name must be"),
    (f"{'n' * 33}:{GOOD}:read", "the name must be"),
    ("alice:short:read", "shorter than 16"),
    (f"alice:{GOOD}:read,alice:{GOOD}x:read", "the name alice is used twice"),
    (f"alice:{GOOD}:read,,", "entry 2 is not"),
])
def test_malformed_tokens_refused_by_position_never_echoed(value, says):
    with pytest.raises(ConfigError) as caught:
        tokens.load({"TQ_API_TOKENS": value})
    assert says in str(caught.value)
    assert GOOD not in str(caught.value) and "short" not in str(caught.value).replace(
        "shorter", "")


def test_token_text_is_a_secret_masked_in_messages():
    env = {"TQ_API_TOKENS": f"alice:{GOOD}:operate,bob:p@ss:w0rd{'%'}!!x:read"}
    secrets = environment_secrets(env)
    assert GOOD in secrets
    assert GOOD not in mask_secrets(f"failed with {GOOD} inside", secrets)


def test_actions_are_audited_as_the_token():
    assert audit.who() != "api:alice"
    with audit.acting_as("api:alice"):
        assert audit.records("pause", "q", 0)[0]["user"] == "api:alice"
    assert audit.records("pause", "q", 0)[0]["user"] == audit.who() != "api:alice"
