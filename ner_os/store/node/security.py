"""The security plugin's files for a local secured node: certificates, its config directory with the
ner-os roles (``tools/opensearch-node/security/``) and generated internal users.

Passwords are made once per node directory (``credentials.json``, 0600) and only their bcrypt hashes
go into the node's ``internal_users.yml``: the security index is initialised from these files on the
first start and keeps them, so a restart must reuse the same passwords.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import bcrypt

from ner_os.errors import ClusterError
from ner_os.store.node.certificates import ensure_certificates
from ner_os.store.node.build import LAUNCHER_DIR

SECURITY_CONFIG_DIR = LAUNCHER_DIR / "security"  # config.yml, roles.yml, roles_mapping.yml (shipped)
SHIPPED_FILES = ("config.yml", "roles.yml", "roles_mapping.yml")
ADMIN_USER = "admin"
USERS = {ADMIN_USER: "ner-os local administrator (all_access)",
         "ner_os_loader": "ner-os loader (role ner_os_loader)",
         "ner_os_searcher": "ner-os searcher (role ner_os_searcher)"}
CREDENTIALS_FILE = "credentials.json"
NODE_CERT_FILES = ("ca.pem", "node.pem", "node-key.pem")


def prepare_home(home: Path, build_dir: Path, node_root: Path) -> tuple[Path, Path]:
    """Lay out ``home/config`` for the security plugin; (CA certificate, credentials file)."""
    certificates = ensure_certificates(node_root / "certs")
    certs = home / "config" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    for name in NODE_CERT_FILES:
        shutil.copy2(node_root / "certs" / name, certs / name)
    credentials_path = node_root / CREDENTIALS_FILE
    passwords = ensure_credentials(credentials_path)
    write_security_config(home / "config" / "opensearch-security", build_dir, passwords)
    return certificates.ca, credentials_path


def write_security_config(target: Path, build_dir: Path, passwords: dict[str, str]) -> None:
    """The plugin's own config files (action groups, tenants, ...), ner-os' config/roles/mapping over
    them, and internal users with only ours in it (never the demo users the zip ships)."""
    plugin_config = build_dir / "plugins" / "opensearch-security" / "config"
    if not plugin_config.is_dir():
        raise ClusterError(f"the security plugin's config is missing from the launcher build ({plugin_config})")
    target.mkdir(parents=True, exist_ok=True)
    for source in plugin_config.glob("*.yml"):
        shutil.copy2(source, target / source.name)
    for name in SHIPPED_FILES:
        shutil.copy2(SECURITY_CONFIG_DIR / name, target / name)
    _write_private(target / "internal_users.yml", render_internal_users(passwords))


def render_internal_users(passwords: dict[str, str]) -> str:
    """internal_users.yml (JSON is valid YAML) with a bcrypt hash per user."""
    users: dict = {"_meta": {"type": "internalusers", "config_version": 2}}
    for user, password in passwords.items():
        users[user] = {"hash": bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=12)).decode(),
                       "reserved": user == ADMIN_USER, "description": USERS.get(user, user)}
    return json.dumps(users, indent=2) + "\n"


def ensure_credentials(path: Path) -> dict[str, str]:
    """The users' passwords: read from ``path``, or generated (random, 24 url-safe chars) and saved 0600."""
    if path.is_file():
        saved = read_credentials(path)
        if set(saved) == set(USERS):
            return saved
    passwords = {user: secrets.token_urlsafe(18) for user in USERS}
    _write_private(path, json.dumps(passwords, indent=2) + "\n")
    return passwords


def read_credentials(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ClusterError(f"cannot read the local node's credentials file {path}: {type(error).__name__}") from None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
