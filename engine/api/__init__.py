"""The engine as an HTTP service (``jrule serve``): FastAPI routes over :class:`EngineService`.

Modules, each with one job:

``config``     the service's settings (file + ``JRULE_*`` environment variables)
``errors``     the one error shape ``{code, message, details}`` and its HTTP statuses
``policy``     the access policy: one declared table, operation -> roles allowed
``auth``       API keys (stored hashed), principals, the object-level checks
``admin``      courts, principals, roles, keys (``jrule admin``), recorded on the ledger
``signatures`` Ed25519-signed events from external organisations
``writer``     group commit across concurrent requests (one writer, one transaction)
``metrics``    Prometheus metrics; ``logs``: structured JSON logs
``contracts``, ``instances``, ``events``, ``actions``, ``ledger``, ``ops``: the routes
``runtime``    the running pieces (service, ledger, writer, scheduler, dispatcher)
``app``        builds the FastAPI application; ``serve``: the ``jrule serve`` command

See ``docs/api.md`` and ``docs/operations.md``.
"""
