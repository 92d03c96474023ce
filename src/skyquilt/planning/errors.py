"""Config errors: one line naming the key, the value and what is allowed, before any job runs.

Every parse-time check raises `ConfigError`; `checked` turns it, or a schema violation of
`snakemake.utils.validate`, into that one line on stderr and stops the workflow's parsing.
"""

import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar


class ConfigError(ValueError):
    """A config value that cannot be used; the message is one line naming the key."""


Result = TypeVar("Result")


def fail(message: object) -> NoReturn:
    """Stop parsing the workflow with one line that names the key and what is allowed."""
    print(f"skyquilt config error: {message}", file=sys.stderr)
    sys.exit(1)


def checked(check: Callable[..., Result], *args: object, **kwargs: object) -> Result:
    """check(*args, **kwargs), or `fail` with one line when it refuses the config.

    Catches this module's ConfigError and the schema errors of `snakemake.utils.validate`.
    """
    from snakemake.exceptions import WorkflowError

    try:
        return check(*args, **kwargs)
    except ConfigError as error:
        fail(error)
    except WorkflowError as error:
        fail(schema_error_line(error))


def schema_error_line(error: Exception) -> str:
    """One line from Snakemake's schema validation error: the key path and the problem."""
    import jsonschema

    for cause in (*getattr(error, "args", ()), error.__cause__, error.__context__):
        if isinstance(cause, jsonschema.ValidationError):
            key = ".".join(str(part) for part in cause.absolute_path) or "config"
            # Patterns and unknown keys say what is wrong, not what is allowed: add that.
            if cause.validator == "additionalProperties":
                return f"{key}: {cause.message}; allowed: {', '.join(cause.schema['properties'])}"
            if cause.validator == "pattern" and "description" in cause.schema:
                return f"{key}: {cause.instance!r} is not {cause.schema['description']}"
            return f"{key}: {cause.message}"
    return str(error).strip().splitlines()[-1]
