"""CollectionKey: the tenant and the name of a collection, never a ``str``; names and
tenants checked where they enter; stages and SQL lookups refuse a bare name."""

from __future__ import annotations

import pickle

import pytest
from sqlalchemy.orm import Session

from core import db, repository
from core.errors import InvalidRequest
from core.types import CollectionKey, check_collection_name, check_tenant, require_key


def test_a_key_is_not_a_str_and_keeps_its_tenant() -> None:
    key = CollectionKey("acme", "docs")
    assert not isinstance(key, str)
    assert f"collection '{key}'" == "collection 'docs'"  # messages show the name
    assert pickle.loads(pickle.dumps(key)) == key
    assert CollectionKey.default("docs") == CollectionKey("default", "docs") != key
    assert len({key, CollectionKey("b", "docs"), CollectionKey.default("docs")}) == 3
    with pytest.raises(TypeError, match="a bare name has no tenant"):
        require_key("docs")
    with pytest.raises(TypeError):
        require_key(str(key))  # formatting a key loses its tenant: refused, not defaulted


@pytest.mark.parametrize("bad", ["", " acme", "a/b", "-x", "x" * 65, "ä"])
def test_bad_tenant_names_are_refused_by_name(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid tenant name"):
        check_tenant(bad)
    with pytest.raises(InvalidRequest):
        CollectionKey(bad, "docs")


def test_good_tenant_names() -> None:
    for good in ("default", "acme", "team-1.prod_eu", "x" * 64):
        assert check_tenant(good) == good


@pytest.mark.parametrize(
    "bad", ["", " ", "a\x00b", "docs\n", "my docs", "x" * 129, "-x", ".hidden", "a/b", "rtl\u202e"]
)
def test_bad_collection_names_are_refused_naming_the_rule(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid collection name.*1 to 128 letters"):
        CollectionKey("acme", bad)


def test_good_collection_names() -> None:
    for good in ("default", "eval-scifact", "v1.2_docs", "Données", "x" * 128, "_tmp"):
        assert check_collection_name(good) == good


def test_sql_lookups_refuse_a_bare_name(tmp_path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'rag.sqlite3'}")
    with Session(engine) as s, s.begin():
        repository.get_or_create_collection(s, CollectionKey("acme", "docs"))
    with Session(engine) as s:
        assert repository.find_collection(s, CollectionKey("acme", "docs")) is not None
        assert repository.find_collection(s, CollectionKey.default("docs")) is None
        for call in (
            repository.find_collection,
            repository.get_collection,
            repository.get_or_create_collection,
        ):
            with pytest.raises(TypeError, match="bare name"):
                call(s, "docs")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            repository.collection_answer_models(s, "docs")  # type: ignore[arg-type]
