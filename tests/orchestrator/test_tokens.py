from __future__ import annotations

import stat
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.tokens import Purpose, TokenSigner, load_or_create_secret

SIGNER = TokenSigner(b"k" * 32)


def test_tokens_are_per_purpose_and_subject() -> None:
    token = SIGNER.token(Purpose.SESSION, "s1")
    assert SIGNER.check(Purpose.SESSION, "s1", token)
    assert not SIGNER.check(Purpose.HOOK, "s1", token)
    assert not SIGNER.check(Purpose.ROOM, "s1", token)
    assert not SIGNER.check(Purpose.SESSION, "s2", token)
    assert not SIGNER.check(Purpose.SESSION, "s1", None)
    assert not TokenSigner(b"x" * 32).check(Purpose.SESSION, "s1", token)


@given(st.text(max_size=80))
def test_any_presented_token_is_just_invalid(presented: str) -> None:
    assert not SIGNER.check(Purpose.SESSION, "s1", presented)


def test_the_secret_is_made_once_with_mode_600(tmp_path: Path) -> None:
    path = tmp_path / "d" / "secret"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first
