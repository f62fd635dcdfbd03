"""Configurations PgBouncer must refuse at start, each with a message saying why."""

import re

import pytest

from pgbouncer_process import plugin_options
from rig import SET_NAME

# No server is contacted by a refused configuration; the port is never used.
APP = f"host=127.0.0.1 port=1 dbname=app credential={SET_NAME}"


def _refused(bouncers, workdir, databases, settings):
    bouncer = bouncers.make(databases, settings)
    code, output = bouncer.run_expecting_exit()
    assert code != 0, f"PgBouncer exited with 0 on a bad configuration:\n{output}"
    return output


def test_missing_plugin_file(bouncers, workdir):
    missing = workdir / "no-such-dir" / "libpgbv-missing.so"
    output = _refused(bouncers, workdir, {"app": APP},
                      {"credential_plugin": str(missing),
                       "credential_plugin_options": plugin_options(workdir / "p.sock")})
    # dlerror()'s own text, which names the file.
    assert f"{missing}: cannot open shared object file: No such file or directory" in output, \
        output


def test_wrong_abi_version(bouncers, workdir, bad_abi_plugin, plugin_so):
    output = _refused(bouncers, workdir, {"app": APP},
                      {"credential_plugin": str(bad_abi_plugin),
                       "credential_plugin_options": plugin_options(workdir / "p.sock")})
    line = next((l for l in output.splitlines() if "999" in l), None)
    assert line is not None, f"the plugin's ABI version 999 is not in the output:\n{output}"
    assert re.search(r"\bversion\b.*\b1\b", line), f"the host's ABI version is missing: {line}"
    assert "init called" not in output  # refused on the version, before any call


@pytest.mark.parametrize("extra", ["user=someone", "password=secret123",
                                   "user=someone password=secret123"])
def test_credential_with_user_or_password(bouncers, workdir, plugin_so, extra):
    output = _refused(bouncers, workdir,
                      {"app": APP, "refused_db": f"{APP} {extra}"},
                      {"credential_plugin": str(plugin_so),
                       "credential_plugin_options": plugin_options(workdir / "p.sock")})
    line = next((l for l in output.splitlines() if "refused_db" in l), None)
    assert line is not None, f"no error names the database refused_db:\n{output}"
    assert "credential" in line, line


def test_credential_without_plugin(bouncers, workdir):
    output = _refused(bouncers, workdir, {"lonely_db": APP}, {})
    line = next((l for l in output.splitlines() if "lonely_db" in l), None)
    assert line is not None and "credential_plugin" in line, output


@pytest.mark.parametrize("options,named", [
    ("", "socket"),
    ("socket=relative/path.sock", "socket"),
    ("socket=/tmp/x.sock frobnicate=1", "frobnicate"),
    ("socket=/tmp/x.sock reconnect_min_ms=soon", "reconnect_min_ms"),
])
def test_plugin_refuses_its_options(bouncers, workdir, plugin_so, options, named):
    output = _refused(bouncers, workdir, {"app": APP},
                      {"credential_plugin": str(plugin_so),
                       "credential_plugin_options": options})
    line = next((l for l in output.splitlines() if "credential_plugin" in l and named in l),
                None)
    assert line is not None, f"no start-up error names {named}:\n{output}"
