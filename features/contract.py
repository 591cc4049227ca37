"""Resolving a feature service into its feature contract: the one place that reads a service's
definition (see :mod:`searchrank.core.contract` for what the contract is and who reads it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from searchrank.core.contract import ContractColumn, FeatureContract, Role, feature_column
from searchrank.core.domain import Domain
from searchrank.core.errors import InputError

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore


def contract_of(service: FeatureService, views: Mapping[str, Any]) -> FeatureContract:
    """The contract of ``service`` given its views by name (feature views and on-demand views).

    A field without tags of its own takes its view's domain (Feast rejects tags on the fields of
    on-demand views).
    """
    from feast import OnDemandFeatureView

    columns = []
    for projection in service.feature_view_projections:
        view = views[projection.name]
        on_demand = isinstance(view, OnDemandFeatureView)
        view_tags = dict(view.tags or {})
        for field in projection.features:
            domain = Domain.from_tags(field.tags or view_tags)
            role = Role.FEATURE
            if domain.audit:
                role = Role.AUDIT
            elif on_demand:
                role = Role.REQUEST_TIME
            columns.append(
                ContractColumn(
                    column=feature_column(projection.name_to_use(), field.name),
                    view=projection.name,
                    feature=field.name,
                    dtype=str(field.dtype),
                    domain=domain,
                    role=role,
                    entities=() if on_demand else tuple(view.entities),
                )
            )
    return FeatureContract(service.name, tuple(columns))


def resolve_contract(store: FeatureStore, feature_service: str) -> FeatureContract:
    """The contract of the feature service registered as ``feature_service`` in ``store``.

    Raises:
        InputError: no such service; the message lists the registered ones.
    """
    known = sorted(s.name for s in store.list_feature_services())
    if feature_service not in known:
        raise InputError(
            "feature_service", feature_service, f"must be a registered feature service: {known}"
        )
    views: dict[str, Any] = {v.name: v for v in store.list_feature_views()}
    views |= {v.name: v for v in store.list_on_demand_feature_views()}
    return contract_of(store.get_feature_service(feature_service), views)
