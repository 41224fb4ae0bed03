"""API tokens, for admins: made here (the secret is answered once), listed without secrets, revoked."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from autoresearch.api.dependencies import StoreDep
from autoresearch.api.problems import problems
from autoresearch.api.schemas import TokenCreate, TokenCreated, TokenPublic
from autoresearch.api.security import IS_ADMIN
from autoresearch.errors import NotFound
from autoresearch.services.auth import issue_token

router = APIRouter(prefix="/tokens", tags=["tokens"], dependencies=[IS_ADMIN])
AUTH_PROBLEMS = problems(401, 403)


@router.post("", status_code=status.HTTP_201_CREATED, responses=AUTH_PROBLEMS | problems(422))
def create_token(body: TokenCreate, store: StoreDep, response: Response) -> TokenCreated:
    """A new token. Its `secret` is in this answer only: keep it; only its hash is stored."""
    secret, token = issue_token(store, name=body.name, scope=body.scope)
    response.headers["Cache-Control"] = "no-store"
    return TokenCreated.of(token, secret)


@router.get("", responses=AUTH_PROBLEMS)
def list_tokens(store: StoreDep) -> list[TokenPublic]:
    """Every token, revoked ones too, in order of id; never their secrets."""
    return [TokenPublic.model_validate(token) for token in store.list_tokens()]


@router.delete(
    "/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=AUTH_PROBLEMS | problems(404, 422)
)
def revoke_token(token_id: Annotated[int, Path(ge=1)], store: StoreDep) -> None:
    """Revoke a token: it stops working at once. Revoking a revoked token changes nothing."""
    token = next((t for t in store.list_tokens() if t.id == token_id), None)
    if token is None:
        raise NotFound(f"no API token with id {token_id}")
    if token.revoked_at is None:
        store.revoke_token(token_id)
