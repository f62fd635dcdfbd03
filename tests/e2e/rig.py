"""The standard scenario: PostgreSQL, a credential server and a patched PgBouncer wired up.

A `Rig` owns the roles it creates and knows how to rotate: create a new PostgreSQL role,
push it as the set's next generation, and remember which role each generation was.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from credserver import CredServer
from pgbouncer_process import PgBouncer, plugin_options
from postgres_cluster import PostgresCluster

SET_NAME = "app_rw"  # deliberately not the database's name, so messages naming it are checkable


def new_password() -> str:
    # Space and both quotes: the plugin path must carry any printable password unchanged.
    return secrets.token_urlsafe(15) + " '\"~"


class Roles:
    """PostgreSQL login roles made for one test and dropped after it."""

    def __init__(self, pg: PostgresCluster):
        self.pg = pg
        self.created: list[str] = []
        self._n = 0

    def new(self, prefix: str = "rot", *, member_of_app: bool = True,
            password: str | None = None) -> tuple[str, str]:
        self._n += 1
        name = f"pgbv_{prefix}_{self._n}_{secrets.token_hex(3)}"
        password = password if password is not None else new_password()
        self.pg.create_role(name, password, member_of_app=member_of_app)
        self.created.append(name)
        return name, password

    def drop(self, name: str) -> None:
        self.pg.drop_role(name)

    def drop_all(self) -> None:
        for name in self.created:
            try:
                self.pg.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             f"WHERE usename = '{name}';")
                self.pg.drop_role(name)
            except Exception:
                pass  # the cluster may be gone already; it is thrown away with its roles


@dataclass
class Generation:
    generation: int
    role: str
    pushed_at: float


@dataclass
class Rig:
    pg: PostgresCluster
    credserver: CredServer
    roles: Roles
    bouncer: PgBouncer | None = None
    generations: list[Generation] = field(default_factory=list)

    @property
    def current(self) -> Generation:
        return self.generations[-1]

    def push(self, role: str, password: str, expires_at: int = 0) -> Generation:
        gen = self.credserver.set_credentials(SET_NAME, role, password, expires_at)
        g = Generation(gen, role, time.monotonic())
        self.generations.append(g)
        return g

    def rotate(self, prefix: str = "rot") -> Generation:
        """A newly created role becomes the set's next generation."""
        role, password = self.roles.new(prefix)
        return self.push(role, password)


def app_database(pg: PostgresCluster, set_name: str = SET_NAME) -> str:
    return f"host=127.0.0.1 port={pg.port} dbname=app credential={set_name}"


def plugin_settings(plugin: Path, socket_path: Path, **overrides) -> dict[str, str | int]:
    options = {"reconnect_min_ms": 50, "reconnect_max_ms": 500}
    return {"credential_plugin": str(plugin),
            "credential_plugin_options": plugin_options(socket_path, **options),
            **overrides}
