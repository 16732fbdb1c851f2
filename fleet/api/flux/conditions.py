"""Status conditions in Kubernetes' ``metav1.Condition`` shape, with Flux's types and reasons.

The types and reasons are the ones Flux's controllers write (fluxcd/pkg ``apis/meta``
conditions.go, helm-controller ``api/v2`` condition_types.go, source-controller
``api/v1`` condition_types.go), so ``flux get``, kstatus and dashboards read fleet's status
as they read Flux's. A reason outside these lists is allowed, as in Flux, if it is a
PascalCase identifier the API server accepts.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Final, Literal

import pydantic

from fleet.api.flux import base
from fleet.api.flux.base import Timestamp

ConditionStatus = Literal["True", "False", "Unknown"]

REASON_PATTERN: Final = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
"""What the API server accepts as ``reason`` (metav1.Condition's validation)."""
TYPE_PATTERN: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
MAX_MESSAGE_LENGTH: Final = 32768


class ConditionType:
    """Condition types Flux's objects carry."""

    READY: Final = "Ready"
    """The object is reconciled at its current generation (False: not, or failed)."""
    RECONCILING: Final = "Reconciling"
    """Present only while True: a reconcile of the latest changes is under way."""
    STALLED: Final = "Stalled"
    """Present only while True: reconciling cannot progress until the spec changes."""
    HEALTHY: Final = "Healthy"
    """Kustomization: the last health assessment of the applied objects."""
    RELEASED: Final = "Released"
    """HelmRelease: the last install or upgrade succeeded."""
    TEST_SUCCESS: Final = "TestSuccess"
    """HelmRelease: the last ``helm test`` run succeeded."""
    REMEDIATED: Final = "Remediated"
    """HelmRelease: a failed release was rolled back or uninstalled."""
    DRIFTED: Final = "Drifted"
    """HelmRelease: the cluster state differs from the release manifest."""
    ARTIFACT_IN_STORAGE: Final = "ArtifactInStorage"
    """Source: the artifact of ``status.artifact`` is available."""
    ARTIFACT_OUTDATED: Final = "ArtifactOutdated"
    """Source: the stored artifact is not of the latest spec or revision."""
    FETCH_FAILED: Final = "FetchFailed"
    """Source: the last fetch (clone, index download) failed."""
    BUILD_FAILED: Final = "BuildFailed"
    """Source: building the artifact from the fetched content failed."""


class Reason:
    """Condition (and Event) reasons Flux's controllers use."""

    SUCCEEDED: Final = "Succeeded"
    FAILED: Final = "Failed"
    PROGRESSING: Final = "Progressing"
    PROGRESSING_WITH_RETRY: Final = "ProgressingWithRetry"
    SUSPENDED: Final = "Suspended"
    DEPENDENCY_NOT_READY: Final = "DependencyNotReady"
    INVALID_PATH: Final = "InvalidPath"
    INVALID_URL: Final = "InvalidURL"
    INSECURE_CONNECTIONS_DISALLOWED: Final = "InsecureConnectionsDisallowed"
    UNSUPPORTED_CONNECTION_TYPE: Final = "UnsupportedConnectionType"
    PRUNE_FAILED: Final = "PruneFailed"
    ARTIFACT_FAILED: Final = "ArtifactFailed"
    BUILD_FAILED: Final = "BuildFailed"
    HEALTH_CHECK_FAILED: Final = "HealthCheckFailed"
    HEALTH_CHECK_CANCELED: Final = "HealthCheckCanceled"
    RECONCILIATION_SUCCEEDED: Final = "ReconciliationSucceeded"
    RECONCILIATION_FAILED: Final = "ReconciliationFailed"
    INVALID_CEL_EXPRESSION: Final = "InvalidCELExpression"
    FEATURE_GATE_DISABLED: Final = "FeatureGateDisabled"

    # helm-controller (api/v2)
    INSTALL_SUCCEEDED: Final = "InstallSucceeded"
    INSTALL_FAILED: Final = "InstallFailed"
    UPGRADE_SUCCEEDED: Final = "UpgradeSucceeded"
    UPGRADE_FAILED: Final = "UpgradeFailed"
    TEST_SUCCEEDED: Final = "TestSucceeded"
    TEST_FAILED: Final = "TestFailed"
    ROLLBACK_SUCCEEDED: Final = "RollbackSucceeded"
    ROLLBACK_FAILED: Final = "RollbackFailed"
    UNINSTALL_SUCCEEDED: Final = "UninstallSucceeded"
    UNINSTALL_FAILED: Final = "UninstallFailed"
    DRIFT_DETECTED: Final = "DriftDetected"
    NO_DRIFT_DETECTED: Final = "NoDriftDetected"
    INVENTORY_BUILD_FAILED: Final = "InventoryBuildFailed"

    # source-controller (api/v1)
    GIT_OPERATION_SUCCEEDED: Final = "GitOperationSucceeded"
    GIT_OPERATION_FAILED: Final = "GitOperationFailed"
    URL_INVALID: Final = "URLInvalid"
    AUTHENTICATION_FAILED: Final = "AuthenticationFailed"
    INDEXATION_FAILED: Final = "IndexationFailed"
    ARTIFACT_UP_TO_DATE: Final = "ArtifactUpToDate"
    STORAGE_OPERATION_FAILED: Final = "StorageOperationFailed"


class Condition(base.StatusModel):
    """One entry of ``status.conditions``: every field Kubernetes requires, camelCase."""

    model_config = pydantic.ConfigDict(frozen=True)

    KEEP_EMPTY = frozenset({"message"})

    type: str = pydantic.Field(pattern=TYPE_PATTERN, max_length=316)
    status: ConditionStatus
    observed_generation: int = pydantic.Field(default=0, ge=0)
    """The object's ``metadata.generation`` this condition was set for."""
    last_transition_time: Timestamp
    """When ``status`` last changed; unchanged while only reason or message change."""
    reason: str = pydantic.Field(pattern=REASON_PATTERN, min_length=1, max_length=1024)
    message: str = pydantic.Field(max_length=MAX_MESSAGE_LENGTH)

    @pydantic.field_validator("message", mode="before")
    @classmethod
    def _clip(cls, message: object) -> object:
        # An error message (a helm or kustomize failure) can exceed what the API server
        # stores; cut it rather than lose the whole status write.
        if isinstance(message, str) and len(message) > MAX_MESSAGE_LENGTH:
            return message[: MAX_MESSAGE_LENGTH - 3] + "..."
        return message

    @property
    def is_true(self) -> bool:
        return self.status == "True"


def new_condition(
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    observed_generation: int,
    now: datetime.datetime,
) -> Condition:
    """A condition whose ``lastTransitionTime`` is ``now`` (to second precision, in UTC)."""
    return Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        last_transition_time=base.to_utc_second(now),
    )


def find_condition(conditions: Iterable[Condition], type: str) -> Condition | None:
    """The condition of ``type``, if any (``apimeta.FindStatusCondition``)."""
    return next((c for c in conditions if c.type == type), None)


def set_condition(conditions: Sequence[Condition], new: Condition) -> list[Condition]:
    """``conditions`` with ``new`` in place of any condition of its type.

    As ``apimeta.SetStatusCondition`` does, the old ``lastTransitionTime`` is kept when the
    status did not change, so the time says when the object last became (un)ready.
    """
    old = find_condition(conditions, new.type)
    if old is not None and old.status == new.status:
        new = new.model_copy(update={"last_transition_time": old.last_transition_time})
    replaced = [new if c.type == new.type else c for c in conditions]
    return replaced if old is not None else [*conditions, new]


def remove_condition(conditions: Sequence[Condition], type: str) -> list[Condition]:
    """``conditions`` without the one of ``type`` (Reconciling and Stalled once False)."""
    return [c for c in conditions if c.type != type]
