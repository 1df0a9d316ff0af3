"""One registry idiom for everything the package builds by name.

Data sets, learners, encoders, rewards, sample orders, policies and SB3 algorithms each
live in a :class:`Registry`::

    from mmenv.learners import LEARNERS            # a Registry
    LEARNERS.register("my-learner", MyLearner)     # or mmenv.register_learner(...)
    learner = LEARNERS.make("My-Learner", lr=0.01) # names are case-insensitive
    LEARNERS.names()                               # for --help and error messages

What every registry does the same way:

* ``register(name, factory, overwrite=False)``: ``factory`` is a callable (class or
  function) or a ``"module:attribute"`` reference imported on first use. Registering a
  name twice is an error unless ``overwrite=True``.
* ``make(name_or_object, **kwargs)``: looks the name up and calls the factory with
  ``kwargs``; an object of the registry's type passes through unchanged (kwargs are then
  an error). Keywords are checked against the factory's signature first, so a typo is
  an :class:`~mmenv.errors.ArgumentError` naming the keyword, the closest valid one and
  all valid ones, not a ``TypeError`` from deep inside a constructor. Values of keywords
  annotated ``int`` / ``float`` / ``bool`` / ``str`` are type-checked too
  (:func:`mmenv.validation.check_keyword_types`: ``lr="fast"`` is an
  :class:`~mmenv.errors.InvalidArgumentError` naming ``lr``).
* An unknown name is an :class:`~mmenv.errors.UnknownNameError` with a "did you mean"
  hint (:func:`difflib.get_close_matches`) and the valid names.
* **Entry points.** An installed distribution can add names without any import by the
  user: it declares them in the registry's entry-point group (``mmenv.datasets``,
  ``mmenv.learners``, ``mmenv.encoders``, ``mmenv.rewards``, ``mmenv.sample_orders``,
  ``mmenv.policies``, ``mmenv.sb3_algorithms``, ``mmenv.trainers``), e.g. in its ``pyproject.toml``::

      [project.entry-points."mmenv.learners"]
      my-learner = "my_package.learners:MyLearner"

  The groups are read lazily: when the names are listed and when a name is not
  registered in code (a few milliseconds); the object behind an entry point is imported
  only when that name is used. Every process does the same, so ``mmenv compare``'s worker processes (and
  Ray workers with the package installed) resolve ``my-learner`` by themselves. A name
  registered in code wins over an entry point of the same name (a warning says so).

**Plugin modules.** For code that is not an installed package, the environment variable
``MMENV_PLUGINS`` (comma-separated module names; ``mmenv --plugin MODULE`` sets it) names
modules that register their names in code (``register_learner(...)`` at import time).
They are imported at the same moments the entry-point groups are read, once per process;
worker processes inherit the variable, so they import the modules too (the modules must be
importable there: installed, or on ``PYTHONPATH``). Entry points stay the way to ship names
with a package.

A registry is also a read-only-style :class:`~collections.abc.Mapping` from name to
factory (``"mla" in LEARNERS``, ``sorted(LEARNERS)``, ``LEARNERS["mla"]``), so code that
used the earlier plain dicts keeps working; ``LEARNERS[name] = cls`` registers with
``overwrite=True``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from .errors import ArgumentError, RegistryError, UnknownNameError
from .validation import check_keyword_types

__all__ = ["Registry", "GROUPS", "PLUGINS_ENV", "load_plugins"]

#: environment variable naming modules that register names in code (comma-separated)
PLUGINS_ENV = "MMENV_PLUGINS"
_plugins_imported: set[str] = set()


def load_plugins() -> list[str]:
    """Import the modules named in ``MMENV_PLUGINS`` that this process has not imported yet.

    Called whenever a registry reads its entry-point group (listings, unknown names), so a
    worker process that meets a plugin's name imports the plugin by itself. Returns the
    modules imported now. A module that cannot be imported is a :class:`RegistryError`
    naming it and the variable.
    """
    import os

    imported = []
    for name in (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",")):
        if not name or name in _plugins_imported:
            continue
        _plugins_imported.add(name)    # first: a plugin that lists names does not import itself again
        try:
            importlib.import_module(name)
        except Exception as exc:
            _plugins_imported.discard(name)
            raise RegistryError(f"cannot import plugin module {name!r} (named in {PLUGINS_ENV} or by --plugin): "
                                f"{type(exc).__name__}: {exc}; install it or put its folder on PYTHONPATH") from exc
        imported.append(name)
    return imported

#: entry-point group of each registry, by registry kind
GROUPS = {
    "dataset": "mmenv.datasets",
    "learner": "mmenv.learners",
    "encoder": "mmenv.encoders",
    "reward": "mmenv.rewards",
    "sample order": "mmenv.sample_orders",
    "policy": "mmenv.policies",
    "SB3 algorithm": "mmenv.sb3_algorithms",
    "across-run trainer": "mmenv.trainers",
}


@dataclass
class _Entry:
    """One registered name: the loaded object, or where to import it from."""

    name: str                       # as registered (for listings)
    obj: Any = None
    ref: str | None = None          # "module:attribute", imported on first use
    entry_point: Any = None         # an importlib.metadata.EntryPoint, loaded on first use
    origin: str = "registered in code"

    @property
    def loaded(self) -> bool:
        return self.ref is None and self.entry_point is None


def _import_ref(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def _keyword_names(factory: Callable[..., Any]) -> tuple[list[str], bool]:
    """The keyword names ``factory`` takes, and whether it also takes ``**kwargs``.

    A class whose ``__init__`` takes ``**kwargs`` and has a base class with its own
    ``__init__`` is taken to forward them there (``super().__init__(**kwargs)``): the base's
    keywords count too, so a subclass of a built-in learner still gets its keywords
    checked. When no base defines ``__init__`` (the ``**kwargs`` are the class's own
    options, like REINFORCE's), any keyword is accepted here and the class checks them.
    """
    names: list[str] = []
    targets: list[Any] = []
    if inspect.isclass(factory):
        targets = [vars(klass)["__init__"] for klass in factory.__mro__ if "__init__" in vars(klass)]
    else:
        targets = [factory]
    for i, target in enumerate(targets):
        if target is object.__init__:
            # reached only after a **kwargs __init__ (or for a class without any): its own options
            return names, i > 0
        try:
            params = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):     # a builtin without a signature: do not guess
            return names, True
        var_kw = False
        for p in params:
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                var_kw = True
            elif p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY) \
                    and p.name != "self" and p.name not in names:
                names.append(p.name)
        if not var_kw:
            return names, False
        if not inspect.isclass(factory):
            return names, True
    return names, True


class Registry(Mapping[str, Any]):
    """Names -> factories, with entry-point discovery, keyword checks and helpful errors.

    Args:
        kind: what the registry holds, in words (``"learner"``), used in messages.
        group: the entry-point group read for installed names (``"mmenv.learners"``).
        instance_of: objects of these types pass through :meth:`make` unchanged.
        construct: ``True`` (default): :meth:`make` calls the factory with the keywords.
            ``False``: the registered object *is* the thing (a reward function, an SB3
            algorithm class) and :meth:`make` returns it.
        alternative: appended to the unknown-name error, e.g. ``"or pass a Learner object"``.
        param: the argument that takes these names in the package's API, for messages
            (default: ``kind`` with underscores, e.g. ``"sample_order"``).
        unknown_error: the class of the unknown-name error, a subclass of
            :class:`~mmenv.errors.UnknownNameError` that can also derive from the domain's
            own error (``PolicyError`` for policies).
    """

    def __init__(self, kind: str, group: str | None = None, *, instance_of: type | tuple[type, ...] | None = None,
                 construct: bool = True, alternative: str = "", param: str | None = None,
                 unknown_error: type[UnknownNameError] = UnknownNameError) -> None:
        self.kind = kind
        self.param = param or kind.replace(" ", "_").lower()
        self.unknown_error = unknown_error
        self.group = group if group is not None else GROUPS.get(kind, f"mmenv.{kind.replace(' ', '_')}s")
        self.instance_of = instance_of
        self.construct = construct
        self.alternative = alternative
        self._entries: dict[str, _Entry] = {}
        self._shadowed: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ registering
    @staticmethod
    def key(name: str) -> str:
        """The lookup key of ``name``: names are case-insensitive and ignore outer spaces."""
        if not isinstance(name, str) or not name.strip():
            raise RegistryError(f"a registered name must be a non-empty string, got {name!r}")
        return name.strip().lower()

    def register(self, name: str, factory: Callable[..., Any] | str, overwrite: bool = False) -> Any:
        """Register ``factory`` (a callable, or ``"module:attribute"`` imported on first use) as ``name``.

        Returns ``factory``. A name already registered (in code, or as an entry point
        found so far) is an error unless ``overwrite=True``.
        """
        key = self.key(name)
        if isinstance(factory, str):
            if ":" not in factory:
                raise RegistryError(f"{self.kind} {name!r}: a reference must look like 'package.module:attribute', "
                                    f"got {factory!r}")
            entry = _Entry(name.strip(), ref=factory)
        elif callable(factory):
            entry = _Entry(name.strip(), obj=factory)
        else:
            raise RegistryError(f"{self.kind} {name!r}: expected a callable or a 'module:attribute' reference, "
                                f"got {type(factory).__name__}")
        old = self._entries.get(key)
        if old is not None and not overwrite:
            raise RegistryError(f"{self.kind} {name!r} is already registered ({old.origin}); "
                                "pass overwrite=True to replace it, or choose another name")
        self._entries[key] = entry
        return factory

    def unregister(self, name: str) -> None:
        """Remove ``name`` (an unknown name is an error)."""
        key = self.key(name)
        if key not in self._entries:
            raise self._unknown(name)
        del self._entries[key]

    # ------------------------------------------------------------------ entry points
    def _scan(self) -> None:
        # Reading a group takes milliseconds, so it is done on every listing and every name
        # not found: a package installed while this process runs is found too.
        load_plugins()
        try:
            found = metadata.entry_points(group=self.group)
        except Exception as exc:  # noqa: BLE001 - broken metadata must not break the built-ins
            warnings.warn(f"could not read entry points of group {self.group!r}: {exc}", stacklevel=3)
            return
        for ep in found:
            key = self.key(ep.name)
            dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
            old = self._entries.get(key)
            if old is not None:
                if old.origin.startswith("entry point"):
                    continue
                if (key, ep.value) not in self._shadowed:
                    self._shadowed.add((key, ep.value))
                    warnings.warn(f"entry point {ep.name!r} = {ep.value!r} of {dist} (group {self.group}) is "
                                  f"ignored: the {self.kind} {old.name!r} is already {old.origin}", stacklevel=3)
                continue
            self._entries[key] = _Entry(ep.name, entry_point=ep, origin=f"entry point of {dist}")

    def _load(self, key: str) -> Any:
        entry = self._entries[key]
        if entry.loaded:
            return entry.obj
        source = entry.ref if entry.ref is not None else f"{entry.entry_point.value} ({entry.origin}, " \
                                                         f"group {self.group})"
        try:
            obj = _import_ref(entry.ref) if entry.ref is not None else entry.entry_point.load()
        except Exception as exc:
            raise RegistryError(f"{self.kind} {entry.name!r}: cannot import {source}: "
                                f"{type(exc).__name__}: {exc}") from exc
        if not callable(obj):
            raise RegistryError(f"{self.kind} {entry.name!r}: {source} is a {type(obj).__name__}, not a callable")
        entry.obj, entry.ref, entry.entry_point = obj, None, None
        return obj

    # ------------------------------------------------------------------ lookup
    def names(self) -> list[str]:
        """Every name: built-in and registered ones in registration order, then entry points."""
        self._scan()
        return [e.name for e in self._entries.values()]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not name.strip():
            return False
        key = name.strip().lower()
        if key not in self._entries:
            self._scan()
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get_factory(self, name: str) -> Any:
        """The callable registered as ``name`` (imported now if it was a reference)."""
        if not isinstance(name, str) or not name.strip():  # looked up, not registered: name the kind
            raise self._unknown(name)
        key = self.key(name)
        if key not in self._entries:
            self._scan()
        if key not in self._entries:
            raise self._unknown(name)
        return self._load(key)

    def is_loaded(self, name: str) -> bool:
        """Whether ``name``'s factory is imported already (``False`` for an entry point or a
        ``"module:attribute"`` reference not used yet, and for an unknown name)."""
        key = self.key(name)
        if key not in self._entries:
            self._scan()
        entry = self._entries.get(key)
        return entry is not None and entry.loaded

    def __getitem__(self, name: str) -> Any:
        return self.get_factory(name)

    def __setitem__(self, name: str, factory: Callable[..., Any] | str) -> None:
        self.register(name, factory, overwrite=True)

    def __delitem__(self, name: str) -> None:
        self.unregister(name)

    def canonical(self, name: str) -> str:
        """``name`` as it was registered (``"MLA"`` -> ``"mla"``); unknown names are an error."""
        if not isinstance(name, str) or not name.strip():
            raise self._unknown(name)
        key = self.key(name)
        if key not in self:
            raise self._unknown(name)
        return self._entries[key].name

    def _unknown(self, name: Any) -> UnknownNameError:
        valid = self.names()
        close = difflib.get_close_matches(str(name).strip().lower(), [v.lower() for v in valid], n=1)
        hint = ""
        if close:
            hint = f" (did you mean {self._entries[close[0]].name!r}?)"
        tail = f" ({self.alternative})" if self.alternative else ""
        return self.unknown_error(f"unknown {self.kind} {name!r}{hint}; valid names: {', '.join(sorted(valid))}{tail}")

    # ------------------------------------------------------------------ building
    def check_arguments(self, name: str, factory: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> None:
        """Raise :class:`ArgumentError` when ``factory(*args, **kwargs)`` cannot bind.

        An unknown keyword names the closest valid one and lists them all; a missing
        required argument is named too.
        """
        valid, open_ended = _keyword_names(factory)
        if not open_ended:
            unknown = [k for k in kwargs if k not in valid]
            if unknown:
                close = difflib.get_close_matches(unknown[0], valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ArgumentError(
                    f"{self.kind} {name!r} got unknown keyword argument(s) {', '.join(map(repr, unknown))}{hint}; "
                    f"valid: {', '.join(valid) if valid else '(none)'}")
        try:
            inspect.signature(factory).bind(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"{self.kind} {name!r}: {exc}") from None
        except ValueError:   # no signature to check against
            pass
        # Values of simply annotated keywords (int / float / bool / str): lr="fast" fails here.
        check_keyword_types(self.kind, name, factory, kwargs)

    def make(self, name_or_object: Any, *args: Any, **kwargs: Any) -> Any:
        """Build the ``name``'d object with ``kwargs`` (or pass an object of the right type through)."""
        if not isinstance(name_or_object, str):
            if self.instance_of is not None and isinstance(name_or_object, self.instance_of):
                if args or kwargs:
                    raise RegistryError(f"{self.param}_kwargs only apply when {self.param} is given by name; "
                                        f"configure the {type(name_or_object).__name__} object directly instead")
                return name_or_object
            expected = "a registered name" if self.instance_of is None else \
                f"a registered name or a {_type_names(self.instance_of)}"
            raise RegistryError(f"{self.kind}: expected {expected}, got {type(name_or_object).__name__}")
        factory = self.get_factory(name_or_object)
        if not self.construct:
            if args or kwargs:
                raise ArgumentError(f"{self.kind} {name_or_object!r} takes no keyword arguments "
                                    f"(got {', '.join(kwargs)})")
            return factory
        self.check_arguments(name_or_object, factory, args, kwargs)
        return factory(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, names={self.names()})"


def _type_names(types: type | tuple[type, ...]) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__
