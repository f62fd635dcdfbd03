"""The small subset of HCL that Vault policies use: labelled blocks, strings, numbers, lists."""

import re

from .errors import VaultError

_STRING = r'"((?:[^"\\]|\\.)*)"'


def strip_comments(text):
    """Removes #, // and /* */ comments outside of strings."""
    out, i, n, in_str = [], 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_str = False
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _block_end(text, open_idx):
    depth, in_str, i = 0, False, open_idx
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise VaultError(400, "failed to parse policy: unbalanced braces")


def blocks(text, block_type):
    """[(label, body, start, end)] of every `block_type "label" { ... }` at any depth."""
    out = []
    head = re.compile(r"\b" + re.escape(block_type) + r"\s+" + _STRING + r"\s*=?\s*\{")
    pos = 0
    while True:
        m = head.search(text, pos)
        if not m:
            return out
        end = _block_end(text, m.end() - 1)
        out.append((unescape(m.group(1)), text[m.end():end], m.start(), end + 1))
        pos = end + 1


def without_blocks(text, found):
    """The text with the given blocks cut out (to read top-level attributes only)."""
    parts, pos = [], 0
    for _, _, start, end in found:
        parts.append(text[pos:start])
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def unescape(s):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1),
                                                                          m.group(1)), s)


def string_attr(body, key):
    m = re.search(r"(?<![\w-])" + re.escape(key) + r"\s*=\s*" + _STRING, body)
    return unescape(m.group(1)) if m else None


def int_attr(body, key):
    m = re.search(r"(?<![\w-])" + re.escape(key) + r"\s*=\s*(\d+)", body)
    return int(m.group(1)) if m else None


def list_attr(body, key):
    m = re.search(r"(?<![\w-])" + re.escape(key) + r"\s*=\s*\[", body)
    if not m:
        return None
    items, i = [], m.end()
    while i < len(body):
        if body[i] == "]":
            return items
        if body[i] == '"':
            sm = re.compile(_STRING).match(body, i)
            if not sm:
                break
            items.append(unescape(sm.group(1)))
            i = sm.end()
        else:
            i += 1
    raise VaultError(400, f"failed to parse policy: unterminated list for {key}")
