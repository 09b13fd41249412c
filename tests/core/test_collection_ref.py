"""CollectionRef: a collection name that carries its tenant through the str-typed stages."""

from __future__ import annotations

import operator
import pickle

import pytest

from core.errors import InvalidRequest
from core.types import CollectionRef, check_tenant, tenant_of


def test_a_ref_is_its_name_and_carries_its_tenant() -> None:
    ref = CollectionRef("docs", "acme")
    assert isinstance(ref, str) and f"collection '{ref}'" == "collection 'docs'"
    assert tenant_of(ref) == "acme" and tenant_of("docs") == "default"
    assert str(ref) == "docs" and type(str(ref)) is str
    assert pickle.loads(pickle.dumps(ref)).tenant == "acme"


def test_equality_and_hashing_include_the_tenant() -> None:
    a, b = CollectionRef("docs", "a"), CollectionRef("docs", "b")
    assert a != b and a != "docs"
    assert not operator.eq("docs", a)  # the str on the left: Python asks the ref first
    assert CollectionRef("docs") == "docs" and hash(CollectionRef("docs")) == hash("docs")
    assert len({a, b, "docs", CollectionRef("docs")}) == 3  # a cache keeps tenants apart
    assert a == CollectionRef("docs", "a") and hash(a) == hash(CollectionRef("docs", "a"))


@pytest.mark.parametrize("bad", ["", " acme", "a/b", "-x", "x" * 65, "ä"])
def test_bad_tenant_names_are_refused_by_name(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid tenant name"):
        check_tenant(bad)
    with pytest.raises(InvalidRequest):
        CollectionRef("docs", bad)


def test_good_tenant_names() -> None:
    for good in ("default", "acme", "team-1.prod_eu", "x" * 64):
        assert check_tenant(good) == good
