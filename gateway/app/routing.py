# Path patterns for routes and mounts: Express 5 syntax (path-to-regexp 8: `:id`, `:"quoted"`,
# `{optional}`, `*splat`, `\` escapes), the Express 4 / EdgerOS forms still in the wild (`:id?`,
# unnamed `*` -> params[0]), and compiled regex routes. A pattern is compiled once into one regex
# built as path-to-regexp 8.4 builds it (so ambiguous paths split as in Express 5: tested against
# the real package); match() is one regex call plus percent-decoding of captures (skipped when
# there is no '%'). Kept on purpose, unlike path-to-regexp 8: the Express 4 forms above (it
# refuses them), and an escaped trailing slash (`/a\/`) stays literal when not strict (Express's
# loosen() strips the slash and the dangling `\` is then a compile error).
# Pure: no I/O, no trio, no request objects; dispatch (methods, mounting) is the router's job.
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, TypeAlias

from gateway.errors import BadRequest
from gateway.http.target import percent_decode

__all__ = ["PathPattern", "Params", "ParamDecodeError"]

Params: TypeAlias = dict[str | int, str | list[str]]

# How a capture becomes a param value.
_STRING: Final = 0  # one decoded string (`:name`, unnamed `*`, regex groups)
_SEGMENTS: Final = 1  # decoded segments (`*name`): "a/b%20c" -> ["a", "b c"]

# path-to-regexp 8 reserves these; an unescaped one is an error, never a silent literal.
_RESERVED: Final = "()[]+?!"
# Optional groups expand into alternatives (as path-to-regexp 8 flattens them); cap the blow-up.
_MAX_ALTERNATIVES: Final = 256


@dataclass(frozen=True, slots=True)
class _Text:
    value: str


@dataclass(frozen=True, slots=True)
class _Param:
    name: str


@dataclass(frozen=True, slots=True)
class _Wildcard:
    name: str | int  # int: an Express 4 unnamed `*`, numbered from 0


@dataclass(frozen=True, slots=True)
class _Group:
    nodes: tuple[_Node, ...]


_Node: TypeAlias = "_Text | _Param | _Wildcard | _Group"


def _is_id_start(ch: str) -> bool:
    # JavaScript identifier rules, as path-to-regexp 8 uses: [$_\p{ID_Start}].
    return ch == "$" or ch.isidentifier()


def _is_id_continue(ch: str) -> bool:
    return ch in "$\u200c\u200d" or ("_" + ch).isidentifier()


class _Parser:
    """Recursive-descent parser from pattern text to a node tree. Compile time only."""

    __slots__ = ("src", "i", "unnamed")

    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0
        self.unnamed = 0

    def error(self, message: str) -> ValueError:
        return ValueError(f"{message} in path pattern {self.src!r}")

    def parse(self) -> list[_Node]:
        return self._sequence(None)

    def _sequence(self, opened_at: int | None) -> list[_Node]:
        src, n = self.src, len(self.src)
        nodes: list[_Node] = []
        text: list[str] = []

        def flush() -> None:
            if text:
                nodes.append(_Text("".join(text)))
                text.clear()

        while self.i < n:
            at = self.i
            ch = src[at]
            self.i += 1
            if ch == "\\":
                if self.i >= n:
                    raise self.error(f"Trailing backslash at index {at}")
                text.append(src[self.i])
                self.i += 1
            elif ch == "{":
                flush()
                nodes.append(_Group(tuple(self._sequence(at))))
            elif ch == "}":
                if opened_at is None:
                    raise self.error(f"Unexpected '}}' at index {at} (no '{{' to close)")
                flush()
                return nodes
            elif ch == ":":
                flush()
                nodes.append(_Param(self._name(at, ":")))
                self._param_suffix(nodes)
            elif ch == "*":
                flush()
                if self.i < n and (src[self.i] == '"' or _is_id_start(src[self.i])):
                    nodes.append(_Wildcard(self._name(at, "*")))
                else:
                    nodes.append(_Wildcard(self.unnamed))
                    self.unnamed += 1
            elif ch in _RESERVED:
                raise self.error(
                    f"Unexpected {ch!r} at index {at}: escape it with a backslash, use "
                    "'{...}' for optional parts, or pass a compiled regex"
                )
            else:
                text.append(ch)
        if opened_at is not None:
            raise self.error(f"Unterminated group: '{{' at index {opened_at} is never closed")
        flush()
        return nodes

    def _name(self, at: int, sigil: str) -> str:
        src, n = self.src, len(self.src)
        start = i = self.i
        if i < n and _is_id_start(src[i]):
            i += 1
            while i < n and _is_id_continue(src[i]):
                i += 1
            self.i = i
            return src[start:i]
        if i < n and src[i] == '"':
            chars: list[str] = []
            i += 1
            while i < n and src[i] != '"':
                if src[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(src[i])
                i += 1
            if i >= n:
                raise self.error(f"Unterminated quote in the name after {sigil!r} at index {at}")
            self.i = i + 1
            if chars:
                return "".join(chars)
        raise self.error(f"Missing parameter name after {sigil!r} at index {at}")

    def _param_suffix(self, nodes: list[_Node]) -> None:
        # Express 4 modifiers right after `:name`. Only `?` survives (as an optional group, with
        # the '/' or '.' before it, which is what Express 4 made optional too).
        src = self.src
        if self.i >= len(src):
            return
        ch = src[self.i]
        if ch == "?":
            self.i += 1
            param = nodes.pop()
            prev = nodes[-1] if nodes else None
            if isinstance(prev, _Text) and prev.value[-1] in "/.":
                nodes.pop()
                if len(prev.value) > 1:
                    nodes.append(_Text(prev.value[:-1]))
                nodes.append(_Group((_Text(prev.value[-1]), param)))
            else:
                nodes.append(_Group((param,)))
        elif ch in "*+":
            raise self.error(
                f"Express 4 repeat modifier {ch!r} after a parameter at index {self.i} is not "
                "supported: use '/*name' (one or more segments) or '{/*name}' (zero or more)"
            )
        elif ch == "(":
            raise self.error(
                f"Custom parameter regex at index {self.i} is not supported (path-to-regexp 8 "
                "dropped it): pass a compiled regex route instead"
            )


_Leaf: TypeAlias = "_Text | _Param | _Wildcard"


class _TooManyAlternatives(ValueError):
    pass


def _flatten(nodes: tuple[_Node, ...] | list[_Node]) -> list[list[_Leaf]]:
    """Every choice of optional groups as a plain sequence, each group taken before skipped.

    That order is path-to-regexp 8's: the alternatives are tried in it, so `/:name{.:ext}`
    gives ``{"name": "a", "ext": "json"}`` for ``/a.json``, not ``{"name": "a.json"}``.
    """
    sequences: list[list[_Leaf]] = [[]]
    for node in nodes:
        if isinstance(node, _Group):
            inner = [*_flatten(node.nodes), []]
            if len(sequences) * len(inner) > _MAX_ALTERNATIVES:
                raise _TooManyAlternatives(f"More than {_MAX_ALTERNATIVES} optional-group choices")
            sequences = [seq + alt for seq in sequences for alt in inner]
        else:
            for seq in sequences:
                seq.append(node)
    return sequences


def _negate(a: str, b: str) -> str:
    """One character that starts neither ``a`` nor ``b`` (path-to-regexp 8's ``negate``).

    A capture next to literal text may not run over that text: this is what keeps `/:a-:b`
    linear instead of quadratic, and it decides how ambiguous paths split.
    """
    if len(b) > len(a):
        a, b = b, a  # longest first
    if a == b:
        b = ""
    if len(b) > 1:
        return f"(?:(?!{re.escape(a)}|{re.escape(b)}).)"
    if len(a) > 1:
        return f"(?:(?!{re.escape(a)})[^{re.escape(b)}])" if b else f"(?:(?!{re.escape(a)}).)"
    if not a:
        return "."  # JavaScript's [^] (any character; the regex is compiled with DOTALL)
    return f"[^{re.escape(a + b)}]"


def _has_in_segment(seq: list[_Leaf], i: int) -> bool:
    """Whether a wildcard follows at ``seq[i:]`` before text with a '/' ends the segment."""
    for node in seq[i:]:
        if isinstance(node, _Wildcard):
            return True
        if isinstance(node, _Text) and "/" in node.value:
            return False
    return False


def _peek_text(seq: list[_Leaf], i: int) -> str:
    text = []
    for node in seq[i:]:
        if not isinstance(node, _Text):
            break
        text.append(node.value)
    return "".join(text)


class _Emitter:
    """Turns flattened sequences into regex source, recording each capture group's key.

    The regex of each sequence is path-to-regexp 8.4's ``toRegExpSource`` token for token (in
    Python syntax), so ambiguous paths split exactly as Express 5 splits them; Python's ``re``
    and JavaScript's RegExp backtrack alike for these constructs (greedy, leftmost alternative
    first).
    """

    __slots__ = ("src", "keys", "kinds")

    def __init__(self, src: str) -> None:
        self.src = src
        self.keys: list[str | int] = []  # per capture group, in regex order
        self.kinds: list[int] = []

    def emit(self, seq: list[_Leaf]) -> str:
        parts: list[str] = []
        backtrack = ""  # text since the last capture
        wildcard_backtrack = ""  # text since the last wildcard
        prev = 0  # the previous capture: 0 none, 1 param, 2 wildcard
        segment = 0  # bits of the captures seen in this segment: 1 param, 2 wildcard
        for i, node in enumerate(seq, 1):
            if isinstance(node, _Text):
                parts.append(re.escape(node.value))
                backtrack += node.value
                if prev == 2:
                    wildcard_backtrack += node.value
                if "/" in node.value:
                    segment = 0
                continue
            if prev and not backtrack:
                raise ValueError(
                    f"Missing text before {node.name!r}: two captures in a row cannot be told "
                    f"apart in path pattern {self.src!r}"
                )
            if isinstance(node, _Param):
                if segment & 2:  # a wildcard earlier in this segment
                    parts.append(f"({_negate('/', backtrack)}+)")
                elif _has_in_segment(seq, i):  # a wildcard later in this segment
                    parts.append(f"({_negate('/', _peek_text(seq, i))}+)")
                elif segment & 1:  # a param earlier in this segment
                    parts.append(f"({_negate('/', backtrack)}+|{re.escape(backtrack)})")
                else:
                    parts.append("([^/]+)")
                kind = _STRING
                segment |= 1
                prev = 1
            else:
                if isinstance(node.name, int):
                    parts.append("(.*)")  # Express 4: any text, may be empty, may hold '/'
                    kind = _STRING
                elif segment & 2:
                    parts.append(f"({_negate(backtrack, '')}+)")
                    kind = _SEGMENTS
                elif wildcard_backtrack:  # no capture in this segment, a wildcard before it
                    parts.append(f"({_negate(wildcard_backtrack, '')}+|[^/]+)")
                    kind = _SEGMENTS
                else:
                    parts.append("(.+)")
                    kind = _SEGMENTS
                wildcard_backtrack = ""
                segment |= 2
                prev = 2
            self.keys.append(node.name)
            self.kinds.append(kind)
            backtrack = ""
        return "".join(parts)

    def emit_all(self, nodes: list[_Node]) -> str:
        # Literal text before the first param or group is shared by every alternative; keep it
        # out of the alternation so a miss fails on the prefix once. (re.escape works character
        # by character, so every alternative's source starts with exactly this text.)
        k = 0
        while k < len(nodes) and isinstance(nodes[k], _Text):
            k += 1
        head = re.escape("".join(node.value for node in nodes[:k] if isinstance(node, _Text)))
        bodies = [self.emit(seq)[len(head) :] for seq in _flatten(nodes)]
        if len(bodies) == 1:
            return head + bodies[0]
        return head + "(?:" + "|".join(bodies) + ")"


def _strip_trailing_slashes(src: str) -> str:
    # Non-strict mode ignores trailing slashes in the pattern (Express's loosen()); an escaped
    # one (`\/`) is literal text and stays.
    end = len(src)
    while end > 0 and src[end - 1] == "/":
        backslashes = 0
        j = end - 2
        while j >= 0 and src[j] == "\\":
            backslashes += 1
            j -= 1
        if backslashes % 2:
            break
        end -= 1
    return src[:end]


class ParamDecodeError(BadRequest):
    """A captured param holds a malformed percent-escape or invalid UTF-8 (400)."""


def _decode(raw: str) -> str:
    if "%" not in raw:
        return raw
    try:
        return percent_decode(raw)
    except ValueError:
        raise ParamDecodeError(message=f"Failed to decode param '{raw}'") from None


class PathPattern:
    """A route or mount path, compiled once.

    String syntax (Express 5 / path-to-regexp 8, plus Express 4 compatibility):

    - ``/user/:id``: a param, one non-empty run of characters without ``/``. Names follow
      JavaScript identifier rules, or are quoted: ``/:"user-id"``.
    - ``/user{/:id}``, ``/file{.:ext}``: braces make a part optional (they nest).
    - ``/files/*path``: a named wildcard, one or more characters across segments; its value is the
      list of decoded segments (``["a", "b.txt"]``; ``/files/a/`` gives ``["a", ""]``, as in
      Express 5).
    - ``\\`` escapes the next character: ``/a\\(b\\)``. Unescaped ``()[]+?!`` are errors.
    - Express 4: ``/user/:id?`` is ``/user{/:id}``; an unnamed ``*`` captures any text (maybe
      empty, ``/`` included) as ``params[0]``, ``params[1]``, ... in order.

    A compiled regex is used as it is (``search``, its own flags; ``strict`` and
    ``case_sensitive`` do not apply): unnamed groups become ``params[0]``, ``params[1]``, ...,
    named groups use their names; groups that did not take part are left out. As a mount
    (``end=False``) its match must start the path and end at a ``/`` or the path's end, else
    it does not match (Express skips such a layer).

    Param values are percent-decoded as UTF-8 (``%2F`` too); patterns are matched against the raw,
    still-encoded path.

    Args:
        pattern: the path pattern, or a compiled regex.
        end: match the whole path (a route) or only a prefix that ends at a ``/`` boundary (a
            mount: ``/api`` matches ``/api``, ``/api/``, ``/api/x`` but not ``/apix``).
        case_sensitive: literal text is matched case-insensitively unless True.
        strict: unless True, trailing slashes in the pattern are ignored and the path may have
            one trailing slash more.

    Raises:
        ValueError: invalid pattern syntax (unbalanced braces, a param without a name, a reserved
            character, two captures with no text between them, too many optional groups).
        TypeError: ``pattern`` is neither a str nor a compiled regex.

    Attributes:
        pattern: the pattern as given.
        keys: the param keys in pattern order (names, and ints for unnamed captures).
        regex: the compiled regex used for matching.
    """

    __slots__ = (
        "pattern",
        "keys",
        "regex",
        "end",
        "case_sensitive",
        "strict",
        "_find",
        "_group_keys",
        "_group_kinds",
    )

    def __init__(
        self,
        pattern: str | re.Pattern[str],
        *,
        end: bool = True,
        case_sensitive: bool = False,
        strict: bool = False,
    ) -> None:
        self.pattern = pattern
        self.end = end
        self.case_sensitive = case_sensitive
        self.strict = strict
        if isinstance(pattern, re.Pattern):
            self._init_regex(pattern)
        elif isinstance(pattern, str):
            self._init_string(pattern)
        else:
            raise TypeError(
                f"path pattern must be a str or re.Pattern, not {type(pattern).__name__}"
            )

    def _init_regex(self, rx: re.Pattern[str]) -> None:
        names = {index: name for name, index in rx.groupindex.items()}
        keys: list[str | int] = []
        unnamed = 0
        for group in range(1, rx.groups + 1):
            name = names.get(group)
            if name is None:
                keys.append(unnamed)
                unnamed += 1
            else:
                keys.append(name)
        self.regex = rx
        # Express runs a regex unanchored (RegExp.exec); a mount must also start at the
        # beginning of the path and end at a '/' boundary, or Express skips it (trimPrefix)
        self._find = rx.search if self.end else self._search_prefix
        self.keys: tuple[str | int, ...] = tuple(keys)
        self._group_keys: tuple[str | int, ...] = self.keys
        self._group_kinds: tuple[int, ...] = (_STRING,) * len(keys)

    def _search_prefix(self, path: str) -> re.Match[str] | None:
        m = self.regex.search(path)
        if m is None or m.start() != 0 or path[m.end() : m.end() + 1] not in ("", "/"):
            return None
        return m

    def _init_string(self, src: str) -> None:
        if not self.end and src == "/":
            # a mount at "/" takes every path, even "*" (OPTIONS *), and consumes nothing
            # (Express's fast path)
            self.regex = re.compile("")
            self._find = self.regex.match
            self.keys = self._group_keys = self._group_kinds = ()
            return
        if not self.strict and src != "/":
            src = _strip_trailing_slashes(src)
        nodes = _Parser(src).parse()
        emitter = _Emitter(src)
        try:
            body = emitter.emit_all(nodes)
        except _TooManyAlternatives as exc:
            raise ValueError(f"{exc} in path pattern {src!r}") from None
        if not self.end:
            tail = r"(?=/|\Z)"
        elif self.strict:
            tail = r"\Z"
        else:
            tail = r"(?=/?\Z)"  # lookahead: the optional trailing slash is not "consumed"
        flags = re.DOTALL if self.case_sensitive else re.DOTALL | re.IGNORECASE
        self.regex = re.compile(body + tail, flags)
        self._find = self.regex.match
        self._group_keys = tuple(emitter.keys)
        self._group_kinds = tuple(emitter.kinds)
        self.keys = tuple(dict.fromkeys(emitter.keys))  # alternatives repeat keys; keep first order

    def match(self, path: str) -> tuple[Params, int] | None:
        """Match a raw (percent-encoded) path.

        Args:
            path: the request path, without query string.

        Returns:
            None when the path does not match; else ``(params, consumed)``: the decoded params and
            how many characters of ``path`` the pattern covered. ``consumed`` leaves out the
            optional trailing slash that non-strict matching allows, so a mount at ``/api``
            consumes 4 characters of ``/api``, ``/api/`` and ``/api/x`` alike (the rest is what
            the mounted router sees); a wildcard that took a trailing slash into its value
            (``/*path`` on ``/a/`` gives ``["a", ""]``, as in Express 5) consumed it.

        Raises:
            ParamDecodeError: (a BadRequest, 400) a captured value holds a malformed
                percent-escape or invalid UTF-8
                (``Failed to decode param '%zz'``, as Express says).
        """
        m = self._find(path)
        if m is None:
            return None
        params: Params = {}
        if self._group_keys:
            for key, kind, raw in zip(self._group_keys, self._group_kinds, m.groups(), strict=True):
                if raw is None:
                    continue
                if kind == _SEGMENTS:
                    params[key] = [_decode(seg) for seg in raw.split("/")]
                else:
                    params[key] = _decode(raw)
        return params, m.end()

    def __repr__(self) -> str:
        options = []
        if not self.end:
            options.append("end=False")
        if self.case_sensitive:
            options.append("case_sensitive=True")
        if self.strict:
            options.append("strict=True")
        extra = "".join(", " + o for o in options)
        return f"PathPattern({self.pattern!r}{extra})"
