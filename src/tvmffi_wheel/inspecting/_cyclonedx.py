"""The CycloneDX schema check of an SBOM: the one module that imports cyclonedx-python-lib.

Optional (`pip install 'tvmffi-wheel[sbom]'`): the backend writes its SBOM without it
(common/sbom.py), and only `check` validates, with the schemas that library ships and
its strict JSON validator. Its API moved between major releases, hence the pin in
pyproject.toml's extra.
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'tvmffi-wheel[sbom]'"


def schema_problem(text: str, spec_version: str) -> str | None:
    """Why ``text`` breaks the CycloneDX ``spec_version`` JSON schema; None when it keeps it.

    Raises ImportError where cyclonedx-python-lib (with its json-validation extra) is missing."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    version = SchemaVersion.from_version(spec_version)
    error = JsonStrictValidator(version).validate_str(text)
    if error is None:
        return None
    detail = getattr(error, "data", None)
    message = getattr(detail, "message", None) or str(error).splitlines()[0]
    where = getattr(detail, "json_path", "")
    return f"{message} (at {where})" if where else str(message)
