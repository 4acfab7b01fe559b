"""Bearer tokens: the SECRET=ACTOR[:GROUP,GROUP] syntax, tokens files, digests only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pausepoint import TokenFormatError
from pausepoint._tokens import (
    Tokens,
    TokensFile,
    parse_token,
    parse_tokens_text,
    token_digest,
)
from pausepoint.durable.people import Actor


@pytest.mark.parametrize(
    ("text", "secret", "actor"),
    [
        ("s3cret=kim", "s3cret", Actor("kim")),
        ("s3cret=kim:managers,finance", "s3cret", Actor("kim", ["managers", "finance"])),
        ("  s3cret=kim:managers , finance ", "s3cret", Actor("kim", ["managers", "finance"])),
        ("YWJj==kim:admin", "YWJj=", Actor("kim", ["admin"])),  # base64 padding in the secret
        ("a#b=lee", "a#b", Actor("lee")),
    ],
)
def test_a_token_is_secret_actor_and_groups(text: str, secret: str, actor: Actor) -> None:
    assert parse_token(text) == (secret, actor)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("no-actor", "SECRET=ACTOR"),
        ("=kim", "SECRET=ACTOR"),
        ("hush=", "actor after '='"),
        ("hush=kim lee", "actor after '='"),
        ("hush=:managers", "actor after '='"),
        ("hush=kim:", "groups of 'kim'"),
        ("hush=kim:managers,,finance", "groups of 'kim'"),
        ("hush=kim:man agers", "groups of 'kim'"),
        ("two words=kim", "white space"),
    ],
)
def test_a_malformed_token_says_what_and_never_repeats_the_secret(text: str, problem: str) -> None:
    with pytest.raises(TokenFormatError, match="--token: ") as caught:
        parse_token(text)
    assert problem in str(caught.value)
    assert caught.value.source == "--token"
    assert caught.value.line is None
    for secret in ("hush", "no-actor", "words"):
        assert secret not in str(caught.value)


def test_a_tokens_file_skips_blank_lines_and_comments() -> None:
    text = "# the reviewers\n\nk1=kim:managers\n   # indented comment\nl1=lee:finance\n\n"
    assert parse_tokens_text(text, source="tokens.txt") == {
        "k1": Actor("kim", ["managers"]),
        "l1": Actor("lee", ["finance"]),
    }


def test_a_malformed_line_is_an_error_with_its_number() -> None:
    text = "# header\nk1=kim\n\nbroken-line\n"
    with pytest.raises(TokenFormatError) as caught:
        parse_tokens_text(text, source="tokens.txt")
    assert str(caught.value).startswith("tokens.txt, line 4: ")
    assert (caught.value.source, caught.value.line) == ("tokens.txt", 4)
    assert "broken-line" not in str(caught.value)


def test_a_secret_given_twice_is_an_error() -> None:
    with pytest.raises(TokenFormatError, match="line 2: this secret is given twice"):
        parse_tokens_text("k1=kim\nk1=lee\n", source="tokens.txt")


def test_tokens_keep_digests_and_take_names_groups_or_actors() -> None:
    tokens = Tokens({"a": "kim", "b": "lee:finance", "c": Actor("ana", ["admin"])})
    assert tokens.digests() == {token_digest(s) for s in "abc"}
    assert tokens.actor_for("b") == Actor("lee", ["finance"])
    assert tokens.actor_for("nope") is None
    assert tokens.actor_for("") is None
    assert tokens.principals() == {"kim", "lee", "finance", "ana", "admin"}
    assert "a" in tokens
    assert "a" not in repr(tokens)
    del tokens["a"]
    tokens.discard("zzz")
    tokens["d"] = "bo"
    assert tokens.actor_for("a") is None
    assert tokens.actor_for("d") == Actor("bo")
    assert len(tokens) == 3
    with pytest.raises(TypeError, match="actor name or an Actor"):
        tokens["e"] = 42  # type: ignore[assignment]
    with pytest.raises(TokenFormatError, match="non-empty"):
        tokens[""] = "kim"


def _write(path: Path, text: str) -> None:
    """Replace the file as an operator should: a new file renamed over the old one."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def test_a_tokens_file_is_read_again_when_it_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.txt"
    _write(path, "k1=kim:managers\nl1=lee\n")
    tokens = TokensFile(path, extra={"x1": "ops"})
    assert tokens.actor_for("k1") == Actor("kim", ["managers"])
    assert tokens.actor_for("x1") == Actor("ops")
    _write(path, "k1=kim:managers\n")  # lee's line deleted: revoked on the next lookup
    assert tokens.actor_for("l1") is None
    assert tokens.actor_for("k1") is not None
    _write(path, "k1=kim:managers\nthis line is wrong\n")  # a bad edit refuses the file's tokens
    assert tokens.actor_for("k1") is None
    assert tokens.actor_for("x1") == Actor("ops")  # --token ones stay
    assert "line 2" in caplog.text
    _write(path, "k2=kim:directors\n")
    assert tokens.actor_for("k2") == Actor("kim", ["directors"])
    path.unlink()  # a missing file refuses its tokens too
    assert tokens.actor_for("k2") is None
    with pytest.raises(TypeError, match="edit the file"):
        del tokens["x1"]


def test_a_bad_tokens_file_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text("k1=kim\nk2\n")
    with pytest.raises(TokenFormatError, match=r"tokens.txt, line 2: "):
        TokensFile(path)
    with pytest.raises(TokenFormatError, match="cannot read the tokens file"):
        TokensFile(tmp_path / "missing.txt")
