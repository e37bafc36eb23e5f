"""Model request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.pagination import PageRead


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
    created_at: datetime


class ModelList(PageRead[ModelRead]):
    """The tenant's models, oldest first."""
