"""Tracking URIs: refused when they carry a secret, shown with their query values masked.

A tracking URI travels into Snakemake params (``.snakemake/metadata``), ``parent.json``, job
logs and the console, so :func:`check_uri` refuses one with credentials before any of those
see it: MLflow reads them from its own environment variables instead.

Why not :func:`urllib.parse.urlsplit` alone: it ends the authority at the first ``/``, ``?`` or
``#``, so ``http://alice:s3cr/et@host`` has no username for it (``netloc='alice:s3cr'``), yet
HTTP clients and people read ``alice`` / ``s3cr/et`` as credentials. The rule here does not
depend on where a parser would end the authority: outside a plain file path, any ``@`` is
refused.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from .errors import SentscaleError


class TrackingError(SentscaleError):
    """The tracking store or a run it should hold is not usable."""


#: schemes whose ``scheme:///path`` form holds a local path, where ``@`` is an ordinary
#: character (a Jenkins ``workspace@2``, a ``user@domain`` home folder)
PATH_SCHEMES = ("sqlite", "file")
#: a query parameter whose name contains one of these holds a secret (SQLAlchemy's
#: ``password=``, an API ``token=``/``api_key=``, a signed URL's ``sig=``/``X-Amz-Credential=``)
SECRET_QUERY = re.compile(r"pass|pwd|secret|token|key|sig|auth|cred", re.IGNORECASE)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")
#: what HTTP clients drop from a URL before parsing it (WHATWG URL, urlsplit)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]")

HOW = (
    "set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) "
    "instead, or for a database URI the driver's own password file (~/.pgpass, a MySQL option "
    "file), so they stay out of params, logs and result files"
)


def _scheme(text: str) -> str | None:
    """The URI scheme, lower case; None for a plain path (a one-letter scheme is a Windows
    drive: ``C:\\runs``)."""
    match = _SCHEME.match(text)
    return match.group(1).lower() if match and len(match.group(1)) > 1 else None


def _is_path_form(text: str, scheme: str | None) -> bool:
    """True when everything after the scheme is a local path: no scheme at all, or
    ``sqlite:``/``file:`` not followed by a non-empty authority (``//host``)."""
    if scheme is None:
        return True
    if scheme not in PATH_SCHEMES:
        return False
    rest = text[len(scheme) + 1 :]
    return not rest.startswith("//") or rest.startswith("///")


def _authority(text: str) -> str:
    """What follows ``scheme://`` up to the first ``/``, ``\\``, ``?`` or ``#``."""
    rest = text.split("//", 1)[1] if "//" in text else ""
    return re.split(r"[/\\?#]", rest, maxsplit=1)[0]


def _shown_host(text: str) -> str:
    """The host after the last ``@`` when it is plainly a host[:port] and nothing before that
    ``@`` could be a query value (``?token=ab@cd`` must not show ``cd``); else ``...``."""
    before, _, after = text.rpartition("@")
    host = re.split(r"[/\\?#]", after, maxsplit=1)[0]
    return host if _HOST.match(host) and "=" not in before else "..."


def secret_query_keys(text: str) -> list[str]:
    """Names of the query parameters of ``text`` whose value is a secret (by name)."""
    query = text.split("?", 1)[1].split("#", 1)[0] if "?" in text else ""
    names = [unquote_plus(part.split("=", 1)[0]) for part in re.split(r"[&;]", query) if part]
    return [name for name in names if SECRET_QUERY.search(name)]


def check_uri(uri: str | None) -> None:
    """TrackingError if ``uri`` carries credentials; the message never repeats them.

    Refused: userinfo (``user:password@host``, ``token@host``) however it is spelt - an
    unencoded ``/``, ``?``, ``#`` or ``@`` in the password, percent-encoding, whitespace or
    tabs inside, an upper-case scheme, no ``//`` - i.e. any ``@`` unless the URI is a local
    path (a plain path, ``sqlite:///...``, ``file:///...``), a ``%40`` in the authority, and
    a query parameter named like a secret (``password=``, ``token=``, ``api_key=``, ...).
    """
    if not uri:
        return
    text = _INVISIBLE.sub("", uri)
    scheme = _scheme(text)
    shown_scheme = f"{scheme}://" if scheme else ""
    path_form = _is_path_form(text, scheme)
    if not path_form and ("@" in text or "%40" in _authority(text).lower()):
        raise TrackingError(
            f"tracking URI {shown_scheme}***@{_shown_host(text)} carries credentials; expected "
            f"a URI without 'user:password@' (an '@' of a path must be written %40) - {HOW}"
        )
    secrets = secret_query_keys(text)
    if secrets:
        raise TrackingError(
            f"tracking URI {shown_uri(uri)} carries a secret in its query ({', '.join(secrets)});"
            f" expected a URI without it - {HOW}"
        )


def shown_uri(uri: str) -> str:
    """``uri`` for logs and messages: userinfo as ``***`` and every query value masked.

    Only a URI :func:`check_uri` accepted reaches logs, but masking costs nothing and keeps a
    query's values (some stores take options there) out of shared logs."""
    text = _INVISIBLE.sub("", uri)
    if not _is_path_form(text, _scheme(text)) and "@" in text:
        scheme = _scheme(text)
        return f"{scheme + '://' if scheme else ''}***@{_shown_host(text)}"
    if "?" not in text:
        return text
    head, query = text.split("?", 1)
    query, hash_, fragment = query.partition("#")
    masked = "&".join(
        f"{part.split('=', 1)[0]}=***" if "=" in part else part for part in re.split(r"[&;]", query)
    )
    return f"{head}?{masked}{hash_}{fragment}"
