"""The subset of Go text/template that Vault's username templates use, with Vault's functions.

Supports literal text, {{ pipelines }} with "|", parenthesised sub-pipelines, string/number
literals, .Field access, {{- / -}} trimming, and the functions Vault registers for
username_template (printf, truncate, truncate_sha256, random, unix_time, ...).
"""

import base64
import binascii
import hashlib
import re
import secrets
import string
import time
import uuid as uuidlib

BASE62 = string.ascii_uppercase + string.ascii_lowercase + string.digits

# Vault's default for the PostgreSQL plugin.
DEFAULT_USERNAME_TEMPLATE = ('{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) '
                             '(.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}')


class TemplateError(Exception):
    """A template that cannot be parsed or executed."""


def random_base62(n):
    """n random characters of [A-Za-z0-9], like Vault's base62.Random."""
    return "".join(secrets.choice(BASE62) for _ in range(n))


def _truncate(max_len, s):
    if max_len <= 0:
        raise TemplateError(f"max length must be > 0 but was {max_len}")
    return s[:max_len]


def _truncate_sha256(max_len, s):
    if max_len <= 8:
        raise TemplateError(f"max length must be > 8 but was {max_len}")
    if len(s) <= max_len:
        return s
    cut = max_len - 8
    return s[:cut] + hashlib.sha256(s[cut:].encode()).hexdigest()[:8]


_GO_LAYOUT = [("2006", "%Y"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("04", "%M"),
              ("05", "%S"), ("-0700", "%z"), ("Z07:00", "Z"), ("MST", "UTC"), ("Jan", "%b"),
              ("Mon", "%a")]


def _timestamp(layout):
    out = layout
    for go, py in _GO_LAYOUT:
        out = out.replace(go, py)
    return time.strftime(out, time.gmtime())


def _printf(fmt, *args):
    out, i, argi = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%" or i + 1 >= len(fmt):
            out.append(c)
            i += 1
            continue
        verb = fmt[i + 1]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        arg = args[argi] if argi < len(args) else None
        argi += 1
        if arg is None:
            out.append(f"%!{verb}(MISSING)")
        elif verb == "q":
            out.append('"' + str(arg).replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(str(arg))
    return "".join(out)


FUNCS = {
    "printf": _printf,
    "random": random_base62,
    "truncate": _truncate,
    "truncate_sha256": _truncate_sha256,
    "uppercase": lambda s: s.upper(),
    "lowercase": lambda s: s.lower(),
    "replace": lambda find, repl, s: s.replace(find, repl),
    "sha256": lambda s: hashlib.sha256(s.encode()).hexdigest(),
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "decode_base64": lambda s: base64.b64decode(s).decode(),
    "hex": lambda s: binascii.hexlify(s.encode()).decode(),
    "decode_hex": lambda s: binascii.unhexlify(s).decode(),
    "unix_time": lambda: str(int(time.time())),
    "unix_time_millis": lambda: str(int(time.time() * 1000)),
    "timestamp": _timestamp,
    "uuid": lambda: str(uuidlib.uuid4()),
}

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+)'
                    r'|(?P<field>\.[A-Za-z_][A-Za-z0-9_]*)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)'
                    r'|(?P<op>[|()]))')


def _lex(action):
    tokens, pos = [], 0
    while pos < len(action):
        if action[pos:].strip() == "":
            break
        m = _TOKEN.match(action, pos)
        if not m:
            raise TemplateError(f"unexpected {action[pos:]!r} in template action")
        kind = m.lastgroup
        text = m.group(kind)
        if kind == "str":
            text = bytes(text[1:-1], "utf-8").decode("unicode_escape")
        elif kind == "raw":
            kind, text = "str", text[1:-1]
        tokens.append((kind, text))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens, fields):
        self.toks = tokens
        self.i = 0
        self.fields = fields

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def pipeline(self):
        value = self.command(None)
        while self.peek() == ("op", "|"):
            self.i += 1
            value = self.command(value)
        return value

    def command(self, piped):
        kind, text = self.peek()
        if kind == "ident":
            self.i += 1
            if text not in FUNCS:
                raise TemplateError(f'function "{text}" not defined')
            args = []
            while True:
                k, t = self.peek()
                if k is None or (k == "op" and t in "|)"):
                    break
                args.append(self.operand())
            if piped is not None:
                args.append(piped)
            try:
                return FUNCS[text](*args)
            except TemplateError:
                raise
            except Exception as e:
                raise TemplateError(f"error calling {text}: {e}") from None
        value = self.operand()
        if piped is not None:
            raise TemplateError("can't give argument to non-function")
        return value

    def operand(self):
        kind, text = self.peek()
        self.i += 1
        if kind == "str":
            return text
        if kind == "num":
            return int(text)
        if kind == "field":
            name = text[1:]
            if name not in self.fields:
                raise TemplateError(f"can't evaluate field {name}")
            return self.fields[name]
        if kind == "op" and text == "(":
            value = self.pipeline()
            if self.peek() != ("op", ")"):
                raise TemplateError("unclosed left paren")
            self.i += 1
            return value
        if kind == "ident":
            # A function used as an argument takes no arguments of its own (Go's rule).
            if text not in FUNCS:
                raise TemplateError(f'function "{text}" not defined')
            try:
                return FUNCS[text]()
            except Exception as e:
                raise TemplateError(f"error calling {text}: {e}") from None
        raise TemplateError(f"unexpected {text!r} in operand")


def render(template, fields):
    """Executes a Go template with the given .Fields; returns the string or raises TemplateError."""
    out, pos = [], 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            out.append(template[pos:])
            break
        text = template[pos:start]
        end = template.find("}}", start)
        if end < 0:
            raise TemplateError("unclosed action")
        action = template[start + 2:end]
        if action.startswith("-"):
            text = text.rstrip()
            action = action[1:]
        trim_after = action.endswith("-")
        if trim_after:
            action = action[:-1]
        out.append(text)
        parser = _Parser(_lex(action), fields)
        if parser.toks:
            out.append(str(parser.pipeline()))
            if parser.i != len(parser.toks):
                raise TemplateError(f"unexpected {parser.toks[parser.i][1]!r} in action")
        pos = end + 2
        if trim_after:
            while pos < len(template) and template[pos].isspace():
                pos += 1
    return "".join(out)
