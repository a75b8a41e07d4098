# qs.parse (the npm `qs` package, 6.17): the "extended" parser of Express query strings and
# body-parser's urlencoded(extended=True). Nested keys `a[b][c]=1`, arrays `a[]=1`, `a[1]=x`
# (sparse, compacted at the end), arrayLimit (a larger index becomes an object key), depth (the
# rest of a deeper key stays one literal key, or 400 with strict_depth), parameterLimit, charset.
# Ported function by function so that merges of conflicting keys come out as qs's do. Bounded:
# each parameter builds at most depth + 2 containers, sparse arrays are index -> value maps (no
# `a[999]` blow-up) and every step is linear in the input. Pure: str in, dicts/lists/str out.
from __future__ import annotations

import re
from typing import Any, Final

from gateway.errors import BadRequest
from gateway.http.target import percent_decode

__all__ = ["parse", "parse_extended_query", "DEFAULTS"]

DEFAULTS: Final = {"depth": 5, "array_limit": 20, "parameter_limit": 1000}
_MAX_SAFE: Final = 2**53
_MAX_ARRAY_INDEX: Final = 2**32 - 1
_INT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)")
_LATIN1_ESCAPE: Final = re.compile(r"%[0-9a-fA-F]{2}")
# Object.prototype's own names: with allow_prototypes=False, qs drops keys that would shadow them
_OBJECT_PROTOTYPE: Final = frozenset(
    {
        "constructor",
        "__defineGetter__",
        "__defineSetter__",
        "hasOwnProperty",
        "__lookupGetter__",
        "__lookupSetter__",
        "isPrototypeOf",
        "propertyIsEnumerable",
        "toString",
        "valueOf",
        "__proto__",
        "toLocaleString",
    }
)


class _Arr:
    """A JavaScript array while parsing: sparse (holes matter to merges) until compacted."""

    __slots__ = ("items", "length", "conflict")

    def __init__(self) -> None:
        self.items: dict[int, Any] = {}
        self.length = 0
        self.conflict: int | None = None  # qs's conflictChannel mark

    def append(self, value: Any) -> None:
        self.items[self.length] = value
        self.length += 1


class _Obj(dict[str, Any]):
    """A JavaScript object while parsing, with qs's side-channel marks as attributes."""

    __slots__ = ("overflow", "conflict")

    def __init__(self) -> None:
        super().__init__()
        self.overflow: int | None = None  # made by arrayLimit overflow: its highest index
        self.conflict: int | None = None


def _is_container(value: Any) -> bool:
    return isinstance(value, (_Arr, _Obj))


def _js_number_text(n: int) -> str:
    # String(Number(n)) for an integer n >= 0: shortest round-trip digits, padded with zeros
    f = float(n)
    if f >= 1e21:
        return repr(f)  # exponent form: never equal to a run of digits
    text = repr(f)
    if "e" not in text:
        return text[:-2] if text.endswith(".0") else text
    mantissa, exponent = text.split("e")
    digits = mantissa.replace(".", "")
    point = mantissa.find(".") if "." in mantissa else len(mantissa)
    return digits + "0" * (int(exponent) + point - len(digits))


def _js_int(key: str) -> int | None:
    """``n`` when ``String(parseInt(key, 10)) === key`` in JavaScript, else None."""
    if _INT.fullmatch(key) is None or key == "-0":
        return None
    n = int(key)
    if abs(n) > _MAX_SAFE and _js_number_text(abs(n)) != key.lstrip("-"):
        return None  # a float in JavaScript: it prints differently
    return n


def _js_keys(obj: dict[str, Any]) -> list[str]:
    """Object.keys order: array-index keys ascending first, then the rest as inserted."""
    indices = []
    for key in obj:
        if key and key[0] in "0123456789":
            n = _js_int(key)
            if n is not None and n < _MAX_ARRAY_INDEX:
                indices.append((n, key))
    if not indices:
        return list(obj)
    indices.sort()
    first = [key for _, key in indices]
    chosen = set(first)
    return first + [key for key in obj if key not in chosen]


def _array_to_object(arr: _Arr) -> _Obj:
    obj = _Obj()
    for i in sorted(arr.items):
        obj[str(i)] = arr.items[i]
    return obj


def _concat(*parts: Any) -> _Arr:
    """``[].concat(...parts)``: arrays spread (holes kept), anything else is one element."""
    out = _Arr()
    for part in parts:
        if isinstance(part, _Arr):
            base = out.length
            for i, value in part.items.items():
                out.items[base + i] = value
            out.length = base + part.length
        else:
            out.append(part)
    return out


def _overflowed(arr: _Arr, max_index: int) -> _Obj:
    obj = _array_to_object(arr)
    obj.overflow = max_index
    return obj


def _combine(a: Any, b: Any, limit: int, *, owned: bool = False) -> Any:
    """qs utils.combine: ``[].concat(a, b)``, an object past ``limit`` elements.

    ``owned``: ``a`` is referenced nowhere else, so an array may grow in place (JavaScript
    copies it each time: quadratic for a key repeated n times).
    """
    if owned and isinstance(a, _Arr) and a.conflict is None and not isinstance(b, _Arr):
        a.append(b)
        return _overflowed(a, a.length - 1) if a.length > limit else a
    if isinstance(a, _Obj) and a.overflow is not None:
        index = a.overflow
        values = [b.items[i] for i in sorted(b.items)] if isinstance(b, _Arr) else [b]
        for value in values:
            index += 1
            a[str(index)] = value
        a.overflow = index
        return a
    result = _concat(a, b)
    if result.length > limit:
        return _overflowed(result, result.length - 1)
    return result


def _limited_pair(first: Any, second: Any, limit: int) -> Any:
    pair = _Arr()
    pair.append(first)
    pair.append(second)
    if 2 > limit:
        return _overflowed(pair, 1)
    return pair


def _max_numeric_index(obj: _Obj, floor: int) -> int:
    top = floor
    for key in obj:
        n = _js_int(key)
        if n is not None and n > top:
            top = n
    return top


def _merge(target: Any, source: Any, limit: int) -> Any:
    """qs utils.merge with strictMerge (the default): ``source`` into ``target``."""
    if source is None or source == "":  # `!source`
        return target
    if not _is_container(source):
        if isinstance(target, _Arr):
            if len(target.items) >= limit:
                return _overflowed(_concat(target, source), target.length)
            target.append(source)
        elif isinstance(target, _Obj):
            if target.overflow is not None:
                target.overflow += 1
                target[str(target.overflow)] = source
            elif target.conflict is not None:
                target.conflict += 1
                target[str(target.conflict)] = source
            else:
                pair = _limited_pair(target, source, limit)
                if isinstance(pair, _Arr):
                    pair.conflict = 1
                return pair
        else:
            return _limited_pair(target, source, limit)
        return target

    if not _is_container(target):
        if isinstance(source, _Obj) and source.overflow is not None:
            shifted = _Obj()
            shifted["0"] = target
            for key in _js_keys(source):
                n = _js_int(key)
                shifted["NaN" if n is None else str(n + 1)] = source[key]
            shifted.overflow = source.overflow + 1
            return shifted
        combined = _concat(target, source)
        if combined.length > limit:
            return _overflowed(combined, combined.length - 1)
        return combined

    if isinstance(target, _Arr) and isinstance(source, _Arr):
        for i in sorted(source.items):
            item = source.items[i]
            if i in target.items:
                current = target.items[i]
                if _is_container(current) and _is_container(item):
                    target.items[i] = _merge(current, item, limit)
                else:
                    target.append(item)
            else:
                target.items[i] = item
                if i >= target.length:
                    target.length = i + 1
        if len(target.items) > limit:
            return _overflowed(target, target.length - 1)
        return target

    if isinstance(target, _Arr):
        acc = _array_to_object(target)
        if target.conflict is not None:
            acc.conflict = target.length - 1
    else:
        acc = target
    if isinstance(source, _Arr):
        pairs = [(str(i), source.items[i]) for i in sorted(source.items)]
        source_overflow = None
    else:
        pairs = [(key, source[key]) for key in _js_keys(source)]
        source_overflow = source.overflow
    for key, value in pairs:
        acc[key] = _merge(acc[key], value, limit) if key in acc else value
        if source_overflow is not None and acc.overflow is None:
            acc.overflow = _max_numeric_index(acc, source_overflow)
        if acc.overflow is not None:
            n = _js_int(key)
            if n is not None and n >= 0 and n > acc.overflow:
                acc.overflow = n
        if acc.conflict is not None:
            n = _js_int(key)
            if n is not None and n > acc.conflict:
                acc.conflict = n
    return acc


def _decode(text: str, charset: str) -> str:
    # qs utils.decode: '+' is a space; utf-8 escapes all or nothing (decodeURIComponent, else
    # the text as it is); iso-8859-1 escapes one byte each
    if "%" not in text:
        return text.replace("+", " ") if "+" in text else text
    text = text.replace("+", " ")
    if charset == "iso-8859-1":
        return _LATIN1_ESCAPE.sub(lambda m: chr(int(m.group()[1:], 16)), text)
    try:
        return percent_decode(text)
    except ValueError:
        return text


def _parse_values(
    text: str, parameter_limit: int, array_limit: int, charset: str
) -> dict[str, Any]:
    if "%5" in text:
        text = text.replace("%5B", "[").replace("%5b", "[").replace("%5D", "]").replace("%5d", "]")
    parts = text.split("&", parameter_limit) if parameter_limit >= 0 else text.split("&")
    if 0 <= parameter_limit < len(parts):
        del parts[parameter_limit:]  # JavaScript's split(sep, limit) drops the rest
    values: dict[str, Any] = {}
    for part in parts:
        bracket_equals = part.find("]=")
        pos = part.find("=") if bracket_equals == -1 else bracket_equals + 1
        if pos == -1:
            key, value = _decode(part, charset), ""
        else:
            key, value = _decode(part[:pos], charset), _decode(part[pos + 1 :], charset)
        if key in values:
            values[key] = _combine(values[key], value, array_limit, owned=True)
        else:
            values[key] = value
    return values


def _split_key(
    key: str, depth: int, strict_depth: bool, allow_prototypes: bool
) -> list[str] | None:
    """``a[b][c]`` -> ``["a", "[b]", "[c]"]``; past ``depth`` groups the rest is one segment."""
    if depth <= 0:
        plain = key[1:-1] if key[:1] == "[" and key[-1:] == "]" else key
        if not allow_prototypes and plain in _OBJECT_PROTOTYPE:
            return None
        return [key]
    segments = []
    first = key.find("[")
    parent = key[:first] if first >= 0 else key
    if parent:
        if not allow_prototypes and parent in _OBJECT_PROTOTYPE:
            return None
        segments.append(parent)
    n = len(key)
    start = first
    collected = 0
    while start >= 0 and collected < depth:
        level = 1
        i = start + 1
        close = -1
        while i < n and close < 0:  # balance nested brackets inside this group
            ch = key[i]
            if ch == "[":
                level += 1
            elif ch == "]":
                level -= 1
                if level == 0:
                    close = i
            i += 1
        if close < 0:  # unterminated: the rest is one literal segment
            segments.append("[" + key[start:] + "]")
            return segments
        segment = key[start : close + 1]
        if not allow_prototypes and segment[1:-1] in _OBJECT_PROTOTYPE:
            return None
        segments.append(segment)
        collected += 1
        start = key.find("[", close + 1)
    if start >= 0:
        if strict_depth:
            raise BadRequest(message="The input exceeded the depth")
        segments.append("[" + key[start:] + "]")
    return segments


def _array_index(text: str) -> int | None:
    n = _js_int(text)
    return n if n is not None and n >= 0 else None


def _parse_object(chain: list[str], value: Any, array_limit: int) -> Any:
    leaf = value
    for root in reversed(chain):
        obj: Any
        if root == "[]":
            if isinstance(leaf, _Obj) and leaf.overflow is not None:
                obj = leaf
            else:
                obj = _combine(_Arr(), leaf, array_limit)
        else:
            clean = root[1:-1] if root[:1] == "[" and root[-1:] == "]" else root
            index = _array_index(clean) if clean != root else None
            if index is not None and index < array_limit:
                obj = _Arr()
                obj.items[index] = leaf
                obj.length = index + 1
            else:
                obj = _Obj()
                if index is not None:
                    obj[clean] = leaf
                    obj.overflow = index
                elif clean != "__proto__":  # qs never stores it, even with allowPrototypes
                    obj[clean] = leaf
        leaf = obj
    return leaf


def _finish(value: Any) -> Any:
    """qs's compact: arrays lose their holes; plain dicts and lists out, keys in JS order."""
    if isinstance(value, _Arr):
        return [_finish(value.items[i]) for i in sorted(value.items)]
    if isinstance(value, _Obj):
        return {key: _finish(value[key]) for key in _js_keys(value)}
    return value


def parse(
    text: str,
    *,
    depth: int = 5,
    array_limit: int = 20,
    parameter_limit: int = 1000,
    charset: str = "utf-8",
    allow_prototypes: bool = True,
    strict_depth: bool = False,
) -> dict[str, Any]:
    """``qs.parse(text, options)`` for a string (qs 6.17 semantics, duplicates combined).

    Args:
        text: a query string or urlencoded body (no leading ``?``).
        depth: how many ``[...]`` groups of a key nest; the rest of the key stays one literal
            segment (``a[b][c][d]`` at depth 2 is ``{"a": {"b": {"c": {"[d]": ...}}}}``).
        array_limit: the highest array index + 1 kept as an array; a larger index, or a list
            that would grow past it, becomes a dict with string indices (``"21"``).
        parameter_limit: ``&``-separated pieces looked at; later ones are ignored.
        charset: ``utf-8`` or ``iso-8859-1`` for %-escapes.
        allow_prototypes: keep keys named like JavaScript's Object.prototype members
            (``constructor``, ``toString``, ...), as Express and body-parser ask; they are
            plain keys here. ``__proto__`` is never kept (qs drops it either way).
        strict_depth: a key deeper than ``depth`` is an error instead of a literal segment.

    Returns:
        A dict of str to str, list or dict (nested).

    Raises:
        BadRequest: 400 "The input exceeded the depth" (only with ``strict_depth``).
    """
    if not text:
        return {}
    values = _parse_values(text, parameter_limit, array_limit, charset)
    result: Any = _Obj()
    for key in _js_keys(values):
        if not key:
            continue
        chain = _split_key(key, depth, strict_depth, allow_prototypes)
        if chain is None:
            continue
        result = _merge(result, _parse_object(chain, values[key], array_limit), array_limit)
    finished: dict[str, Any] = _finish(result)
    return finished


def parse_extended_query(query_string: str) -> dict[str, Any]:
    """Express's "extended" query parser: ``qs.parse(s, {allowPrototypes: true})`` (depth 5,
    arrayLimit 20, parameterLimit 1000)."""
    return parse(query_string, allow_prototypes=True)
