"""The `Audited` marker, in a module of its own so that any model can use it without import cycles."""


class Audited:
    """Mixin: inserts, updates and deletes of this model are written to the audit log at flush.
    Columns with `info={"redact": True}` are recorded as changed but never with their value."""

    __audit_entity__: str | None = None
