"""CRUD routes for tenant resources, one router per resource, made by one factory.

No `from __future__ import annotations` here: FastAPI reads the schema classes from the closures'
annotations at definition time.
"""

from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel

from phoneagent.api import schemas as s
from phoneagent.api.deps import ProvisionerDep
from phoneagent.db.base import new_id
from phoneagent.db.models import AgentProfile, DispatchRule, InboundTrunk, OutboundTrunk, PhoneNumber
from phoneagent.provisioning.resources import get_owned, list_owned, room_prefix_for, trunk_fields_with_preset


def _rule_create(d: dict[str, Any]) -> dict[str, Any]:
    rule_id = new_id("dsp")
    return {**d, "id": rule_id, "room_prefix": room_prefix_for(rule_id)}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": s.Problem, "description": "the body is not parseable JSON"},
    401: {"model": s.Problem, "description": "missing or invalid API key"},
    404: {"model": s.Problem, "description": "no such resource for this tenant"},
    409: {"model": s.Problem, "description": "name taken, or still in use"},
    422: {"model": s.Problem, "description": "invalid field (named in detail)"},
    502: {"model": s.Problem, "description": "LiveKit refused or could not be reached; nothing was written"},
}
F = TypeVar("F", bound=Callable[..., Any])


def _with_body(fn: F, schema: type[BaseModel]) -> F:
    """FastAPI reads a body's class from its parameter's annotation; the factory's schemas are
    values, so they are set on the function after it is made rather than written in its signature."""
    fn.__annotations__["body"] = schema
    return fn


def _page_of(schema: type[BaseModel]) -> type[BaseModel]:
    return cast(type[BaseModel], cast(Any, s.Page)[schema])


Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[str | None, Query(max_length=80, description="next_cursor of the previous page")]


def crud_router(
    *,
    prefix: str,
    tag: str,
    model: type[Any],
    create_schema: type[BaseModel],
    update_schema: type[BaseModel],
    out_schema: type[BaseModel],
    prepare_create: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d,
    prepare_update: Callable[[Any, dict[str, Any]], dict[str, Any]] = lambda _row, d: d,
    create_fn: str = "create",
    delete_fn: str = "delete",
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag], responses=ERRORS)

    def create(body: BaseModel, p: ProvisionerDep) -> Any:
        row = model(**prepare_create(body.model_dump(exclude_none=True)))
        return getattr(p, create_fn)(row)

    router.post(
        "", status_code=status.HTTP_201_CREATED, response_model=out_schema, summary=f"Create a {tag}"
    )(_with_body(create, create_schema))

    @router.get("", response_model=_page_of(out_schema), summary=f"List {tag}s")
    def list_(p: ProvisionerDep, limit: Limit = 50, cursor: Cursor = None) -> Any:
        rows = list_owned(p.session, model, p.tenant_id, limit=limit + 1, after=cursor)
        more = len(rows) > limit
        return {"items": rows[:limit], "next_cursor": rows[limit - 1].id if more else None}

    @router.get("/{item_id}", response_model=out_schema, summary=f"Get a {tag}")
    def get(item_id: str, p: ProvisionerDep) -> Any:
        return get_owned(p.session, model, p.tenant_id, item_id)

    def update(item_id: str, body: BaseModel, p: ProvisionerDep) -> Any:
        row = get_owned(p.session, model, p.tenant_id, item_id)
        return p.update(row, prepare_update(row, body.model_dump(exclude_unset=True, exclude_none=True)))

    router.patch("/{item_id}", response_model=out_schema, summary=f"Update a {tag}")(
        _with_body(update, update_schema)
    )

    @router.delete(
        "/{item_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary=f"Delete a {tag}",
    )
    def delete(item_id: str, p: ProvisionerDep) -> Response:
        row = get_owned(p.session, model, p.tenant_id, item_id)
        getattr(p, delete_fn)(row)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


def _trunk_update(direction: str) -> Callable[[Any, dict[str, Any]], dict[str, Any]]:
    def prepare(row: Any, changes: dict[str, Any]) -> dict[str, Any]:
        merged = {
            "address": getattr(row, "address", ""),
            "transport": getattr(row, "transport", "udp"),
            "allowed_addresses": getattr(row, "allowed_addresses", None),
            "auth_username": row.auth_username,
            "auth_password": row.auth_password,
            **changes,
        }
        filled = trunk_fields_with_preset(row.provider, direction, merged)
        keep = set(changes) | {"allowed_addresses", "address"}
        return {k: v for k, v in filled.items() if k in keep and hasattr(row, k)}

    return prepare


def _profile_fields(d: dict[str, Any]) -> dict[str, Any]:
    if d.get("outcome_schema") == {}:  # {} removes it
        d["outcome_schema"] = None
    return d


def _number_create(d: dict[str, Any]) -> dict[str, Any]:
    d["e164"] = d.pop("number")
    return d


routers = [
    crud_router(
        prefix="/agents",
        tag="agent profile",
        model=AgentProfile,
        create_schema=s.AgentProfileCreate,
        update_schema=s.AgentProfileUpdate,
        out_schema=s.AgentProfileOut,
        prepare_create=_profile_fields,
        prepare_update=lambda _row, d: _profile_fields(d),
    ),
    crud_router(
        prefix="/trunks/inbound",
        tag="inbound trunk",
        model=InboundTrunk,
        create_schema=s.InboundTrunkCreate,
        update_schema=s.InboundTrunkUpdate,
        out_schema=s.InboundTrunkOut,
        prepare_create=lambda d: trunk_fields_with_preset(d.get("provider", "generic"), "inbound", d),
        prepare_update=_trunk_update("inbound"),
    ),
    crud_router(
        prefix="/trunks/outbound",
        tag="outbound trunk",
        model=OutboundTrunk,
        create_schema=s.OutboundTrunkCreate,
        update_schema=s.OutboundTrunkUpdate,
        out_schema=s.OutboundTrunkOut,
        prepare_create=lambda d: trunk_fields_with_preset(d.get("provider", "generic"), "outbound", d),
        prepare_update=_trunk_update("outbound"),
    ),
    crud_router(
        prefix="/dispatch-rules",
        tag="dispatch rule",
        model=DispatchRule,
        create_schema=s.DispatchRuleCreate,
        update_schema=s.DispatchRuleUpdate,
        out_schema=s.DispatchRuleOut,
        prepare_create=_rule_create,
    ),
    crud_router(
        prefix="/numbers",
        tag="phone number",
        model=PhoneNumber,
        create_schema=s.PhoneNumberCreate,
        update_schema=s.PhoneNumberUpdate,
        out_schema=s.PhoneNumberOut,
        prepare_create=_number_create,
        create_fn="attach_number",
        delete_fn="detach_number",
    ),
]
