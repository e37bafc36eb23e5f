"""Model request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.pagination import PageRead
from service.settings import MAX_RETENTION_SECONDS


def _within_limit(seconds: int) -> int:
    if seconds > MAX_RETENTION_SECONDS:
        raise ValueError(f"the retention window is at most {MAX_RETENTION_SECONDS} seconds (30 days): an artefact "
                         "holding forgotten samples is never kept longer")  # fmt: skip
    return seconds


RetentionSeconds = Annotated[
    int,
    Field(
        ge=0,
        strict=True,
        description="how long, in seconds, an artefact that holds samples a newer version forgot (a superseded "
        "version's checkpoint, the original included; reference models) is kept before it is destroyed: 0 = at "
        f"once, at most {MAX_RETENTION_SECONDS} (30 days)",
        examples=[0, 604800],
    ),
    AfterValidator(_within_limit),
]


class ModelManifest(BaseModel):
    """The JSON 'manifest' part of a model upload."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="unique within the tenant")
    dataset_id: uuid.UUID = Field(description="the registered dataset the model was trained on")
    architecture: dict[str, Any] = Field(
        description="ArchSpec fields: name (small_cnn, resnet18_cifar, torchvision), num_classes, in_channels, "
        "image_size, width, torchvision_name"
    )
    unlearn_config: dict[str, Any] = Field(
        default_factory=dict,
        description="UnlearnConfig fields: method (amun, amun_salun, ft, rl, ga, bs, l1_sparse, salun, retrain) "
        "and its hyper-parameters (epochs, lr, batch_size, attack: {eps_init, steps, ...}, stop, seed, ...); "
        "omitted fields take the library defaults",
    )
    retention_seconds: RetentionSeconds | None = Field(
        default=None, description="the retention window (see ModelRead); omitted: the service's default"
    )


class ModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    dataset_id: uuid.UUID
    architecture: dict[str, Any] = Field(description="the ArchSpec, defaults filled in")
    method: str
    unlearn_config: dict[str, Any] = Field(description="the UnlearnConfig, defaults filled in")
    latest_version: int = Field(description="number of the newest ready version; 1 = the registered original")
    tuning: dict[str, Any] | None = Field(
        description="where unlearn_config's lr and step_size came from, once a tuning job chose them: job_id, "
        "procedure, metric (what scored each run), grid (every setting with its per-run scores, held-out "
        "accuracies, feasibility and the reason when infeasible), chosen, constraint_met, previous_config, "
        "finished_at; null while the manifest's values stand"
    )
    retention_seconds: int = Field(
        description="how long, in seconds, an artefact that holds samples a newer version forgot (a superseded "
        "version's checkpoint, the original included; reference models) is kept before the erasure sweep "
        "destroys it; 0 = at once; the window in force at each sweep applies"
    )
    created_at: datetime


class ModelUpdate(BaseModel):
    """PATCH /v1/models/{id}: the settings that may change after registration."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"retention_seconds": 0}]})

    retention_seconds: RetentionSeconds


class ModelList(PageRead[ModelRead]):
    """The tenant's models, oldest first."""
