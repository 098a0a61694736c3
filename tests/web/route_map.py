"""The app's routes as the tests see them: every path, method, parameter and the permission it needs.

Routes are discovered from the app itself, so a route added later is walked by the permission test and
the cross-tenant walk without anyone remembering to list it. FastAPI ≥ 0.13x keeps included routers
as lazy `_IncludedRouter` entries in `app.routes`; `iter_route_contexts` flattens them with their
prefixes and router-level dependencies. Older FastAPI lists the `APIRoute`s directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute, Mount, Route

from citygas.web.deps import Requires, verify_csrf

# FastAPI with lazily included routers has `iter_route_contexts`; older FastAPI lists routes flat.
_iter_route_contexts = getattr(fastapi_routing, "iter_route_contexts", None)


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: tuple[str, ...]
    permissions: tuple[frozenset[str], ...]  # one entry per `Requires`: any one of its permissions admits
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    header_params: tuple[str, ...]
    form_fields: tuple[str, ...]
    json_fields: tuple[str, ...]  # top-level fields of a JSON body model
    csrf_protected: bool

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")

    @property
    def guarded(self) -> bool:
        return bool(self.permissions)

    def needs(self) -> frozenset[str]:
        """Every permission the route names (an empty `Requires()` asks only for a logged-in caller)."""
        return frozenset().union(*self.permissions)

    def unmet(self, granted: frozenset[str]) -> list[str]:
        """The requirements `granted` does not satisfy, each as 'a or b'."""
        return sorted(" or ".join(sorted(alts)) for alts in self.permissions if alts and not alts & granted)


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _walk(sub)


def _requires_in(dependant: Dependant) -> tuple[frozenset[str], ...]:
    # `uow_with(...)` wraps its `Requires` in a closure dependency; the walk reaches it as a sub-dependency.
    return tuple(sub.call.permissions for sub in _walk(dependant) if isinstance(sub.call, Requires))


def _json_fields(dependant: Dependant) -> tuple[str, ...]:
    fields: list[str] = []
    for param in dependant.body_params:
        if type(param.field_info).__name__ == "Form":
            continue
        annotation = param.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields.extend(annotation.model_fields)
        else:
            fields.append(param.name)
    return tuple(fields)


def _info(path: str, methods: set[str], dependant: Dependant) -> RouteInfo:
    every = [dependant, *_walk(dependant)]
    return RouteInfo(
        path=path,
        methods=tuple(sorted(methods)),
        permissions=_requires_in(dependant),
        path_params=tuple(dict.fromkeys(p.name for d in every for p in d.path_params)),
        query_params=tuple(dict.fromkeys(p.name for d in every for p in d.query_params)),
        header_params=tuple(dict.fromkeys(p.name for d in every for p in d.header_params)),
        form_fields=tuple(p.name for p in dependant.body_params if type(p.field_info).__name__ == "Form"),
        json_fields=_json_fields(dependant),
        csrf_protected=any(sub.call is verify_csrf for sub in _walk(dependant)),
    )


def _flat(app: FastAPI) -> Iterator[tuple[BaseRoute, str, set[str], Dependant | None]]:
    if _iter_route_contexts is not None:
        for context in _iter_route_contexts(app.routes):
            original = context.original_route
            path = str(context.path)
            if isinstance(original, APIRoute):
                yield original, path, set(context.methods or ()), context.dependant
            else:
                yield original, path, set(getattr(context, "methods", None) or ()), None
        return
    for route in app.routes:  # pragma: no cover - older FastAPI
        if isinstance(route, APIRoute):
            yield route, route.path, set(route.methods or ()), route.dependant
        else:
            yield route, getattr(route, "path", ""), set(getattr(route, "methods", None) or ()), None


def api_routes(app: FastAPI) -> list[RouteInfo]:
    """Every FastAPI route (API, pages, health), with full paths."""
    routes = [
        _info(path, methods, dep)
        for route, path, methods, dep in _flat(app)
        if isinstance(route, APIRoute) and dep is not None
    ]
    # Guard against a walk that silently finds nothing (as a naive `isinstance(r, APIRoute)` over
    # `app.routes` does on current FastAPI): these routes exist since the foundation.
    paths = {r.path for r in routes}
    for known in ("/api/v1/customers/{consumer_number}", "/ops/customers", "/ops/admin/tenants", "/login"):
        assert known in paths, f"route discovery lost {known}; found {sorted(paths)}"
    return routes


def plain_routes(app: FastAPI) -> list[tuple[str, tuple[str, ...]]]:
    """Starlette routes that are not FastAPI routes (OpenAPI, docs), as (path, methods)."""
    return [
        (path, tuple(sorted(methods)))
        for route, path, methods, _ in _flat(app)
        if isinstance(route, Route) and not isinstance(route, APIRoute)
    ]


def mounts(app: FastAPI) -> list[str]:
    return [path for route, path, _, _ in _flat(app) if isinstance(route, Mount)]
