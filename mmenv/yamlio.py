"""The one YAML reader of the package: compare configs, bench presets and instance sets.

PyYAML's ``safe_load`` is safe (no code runs) but reads YAML 1.1, which surprises users of
every other reader, and it trusts its input in three ways this reader does not:

* **Numbers as in YAML 1.2** (the core schema): ``1e-3`` and ``5E+2`` are floats (YAML 1.1
  wants a dot, so ``lr: 1e-3`` was the *string* ``"1e-3"``), ``012`` is the int 12 (not
  octal 10), ``0o17`` / ``0x1F`` are octal / hex, ``1:20`` and ``1_000`` are strings (not
  sexagesimal 80 and 1000). Booleans and ``null`` are unchanged.
* **Duplicate keys are refused** (PyYAML keeps the last value silently), naming the key
  and both lines.
* **Alias expansion is bounded**: a document whose tree, with every alias expanded, has
  more than :data:`MAX_NODES` nodes is refused before anything walks it (a 1 KB "billion
  laughs" document expands to 10**9 nodes; the check counts in time linear in the file).

Undecodable bytes (not UTF-8/16/32), characters YAML forbids, syntax errors and nesting
too deep for Python's stack are one :class:`~mmenv.errors.MMEnvError` too. The caller picks
the error class (``ConfigError``, ``BenchConfigError``, ``InstanceSetError``), so the error
says which kind of file was wrong; the message names the file, the line and the fix.

Example::

    from mmenv.yamlio import load_yaml
    data = load_yaml("experiments/configs/tiny.yaml", error=ConfigError, what="config")
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import MMEnvError

__all__ = ["load_yaml", "parse_yaml", "MAX_NODES", "MAX_BYTES"]

#: The most nodes a document may have with its aliases expanded (a config has hundreds).
MAX_NODES = 100_000
#: The largest file read (a preset or instance set is a few KB).
MAX_BYTES = 4 * 1024 * 1024

_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _DuplicateKey(ConstructorError):
    """A mapping repeats a key (a YAMLError, so it is reported like the others)."""


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` with YAML 1.2 core-schema numbers and no duplicate keys."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            # the keys written in this mapping (a "<<" merge may be overridden, as YAML intends)
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:   # an unhashable key: PyYAML's own error below names it
                    continue
                if first is not None:
                    raise _DuplicateKey("while reading a mapping", node.start_mark,
                                        f"found duplicate key {key!r} (first at line {first.start_mark.line + 1}); "
                                        "a key may appear once, remove one of them", key_node.start_mark)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: _Loader, node: ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: _Loader, node: ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)


_Loader.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))
_Loader.add_constructor(_INT_TAG, _construct_int)
_Loader.add_constructor(_FLOAT_TAG, _construct_float)


def _expanded_size(root: Node, limit: int) -> int:
    """Nodes of ``root``'s tree with every alias expanded (stops counting past ``limit``).

    An alias is the same node object used again, so sizes are memoised per node: the
    count costs one visit per distinct node however large the expansion is.
    """
    sizes: dict[int, int] = {}
    # iterative post-order walk: deeply nested documents must not exhaust Python's stack
    stack: list[tuple[Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        if not expanded:
            if key in active:   # a recursive alias (PyYAML refuses them later; count it as huge)
                return limit + 1
            active.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        active.discard(key)
        sizes[key] = min(limit + 1, 1 + sum(sizes.get(id(c), limit + 1) for c in children))
    return sizes[id(root)]


def _decode(data: bytes, source: str, error: type[MMEnvError], what: str) -> str:
    boms = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
            (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
    codec = next((name for bom, name in boms if data.startswith(bom)), "utf-8")
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise error(f"{what} {source}: not a text file ({codec} cannot decode byte {exc.start}); "
                    "a YAML file is UTF-8 text") from None


def parse_yaml(text: str | bytes, *, source: str = "<string>", error: type[MMEnvError] = MMEnvError,
               what: str = "YAML file") -> Any:
    """Parse one YAML document with the rules of the module docstring.

    Args:
        text: the document, as text or as the file's bytes.
        source: the file name, for messages.
        error: the :class:`~mmenv.errors.MMEnvError` subclass raised for any problem.
        what: what the file is, in words (``"config"``, ``"bench preset"``).
    """
    if isinstance(text, (bytes, bytearray)):
        text = _decode(bytes(text), source, error, what)
    if "\x00" in text:
        raise error(f"{what} {source}: contains NUL characters; a YAML file is text")
    loader: _Loader | None = None
    try:
        loader = _Loader(text)      # reads the stream: forbidden characters fail here
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_NODES) > MAX_NODES:
            raise error(f"{what} {source}: its aliases (*name) expand to more than {MAX_NODES:,} values; "
                        "write the repeated parts out or use fewer nested aliases")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        text_ = " ".join(str(exc).split())
        raise error(f"{what} {source}: not valid YAML: {text_}") from None
    except RecursionError:
        raise error(f"{what} {source}: nested too deeply to read") from None
    except (ValueError, OverflowError) as exc:   # a number our constructors cannot read
        raise error(f"{what} {source}: unreadable value: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml(path: str | os.PathLike, *, error: type[MMEnvError] = MMEnvError, what: str = "YAML file") -> Any:
    """Read and parse the YAML file ``path`` (see :func:`parse_yaml`); a missing, unreadable
    or oversized file is ``error`` too."""
    source = os.fspath(path)
    try:
        size = os.path.getsize(source)
        if size > MAX_BYTES:
            raise error(f"{what} {source}: {size:,} bytes is too large for a {what} (at most {MAX_BYTES:,})")
        with open(source, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except IsADirectoryError:
        raise error(f"{what} {source} is a directory, not a YAML file") from None
    except FileNotFoundError:
        raise error(f"{what} {source} does not exist") from None
    except OSError as exc:
        raise error(f"{what} {source} cannot be read: {exc.strerror or exc}") from None
    return parse_yaml(data, source=source, error=error, what=what)
