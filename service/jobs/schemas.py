"""Job request and response bodies: starting reference-model training and tuning, a job's progress, the list."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.pagination import PageRead
from service.tables import JobKind, JobStatus


class JobRead(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    kind: JobKind
    status: JobStatus
    phase: str | None = Field(description="what the worker is doing now, e.g. attack, fine-tune, audit")
    percent: float = Field(description="progress of the current phase, 0 to 100")
    eta: datetime | None = Field(description="estimated end of the current phase, from its elapsed time and progress")
    eta_seconds: float | None = Field(description="seconds from now until eta")
    attempts: int = Field(description="claims by a worker so far; a job whose worker died is retried")
    cancel_requested: bool
    error: str | None = Field(description="why it failed")
    parent_version: int | None = Field(description="the version it starts from (fixed when a worker claims it)")
    result_version: int | None = Field(description="the version it produced")
    request_ids: list[uuid.UUID] = Field(description="deletion requests it covers (unlearning jobs)")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobList(PageRead[JobRead]):
    """The tenant's jobs that pass the filters, newest first."""


class JobQuery(BaseModel):
    """The filters of GET /v1/jobs (all must hold), as query parameters."""

    model_id: uuid.UUID | None = Field(default=None, description="only this model's jobs")
    status: list[JobStatus] = Field(
        default_factory=list, description="only jobs in one of these states; repeat it for several"
    )
    kind: list[JobKind] = Field(default_factory=list, description="only jobs of these kinds; repeat it for several")


class ReferenceModelsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"k": 8}]})

    k: int = Field(
        ge=2, le=64, multiple_of=2,
        description="reference models to train; pairs on complementary random halves of the training split",
    )  # fmt: skip
    recipe: dict[str, Any] | None = Field(
        default=None,
        description="TrainConfig fields of every reference model (seed i is 100 + i); omitted = the model's "
        "unlearn_config.recipe if it has one, else the library's default recipe",
    )


TUNING_PROCEDURES = ("reference_free", "retrain")
MAX_TUNING_RUNS = 40  # settings x runs of one tuning job: each run is one unlearning job's work
LearningRate = Annotated[float, Field(gt=0.0, le=10.0)]
StepSize = Annotated[int, Field(ge=1, le=1000)]


class TuningCreate(BaseModel):
    """What a tuning job tries; every field may be left out."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"lrs": [0.01, 0.02, 0.05], "step_sizes": [5], "runs": 2}]}
    )

    procedure: Literal["reference_free", "retrain"] = Field(
        default="reference_free",
        description="reference_free (default): each setting scored by |loss-threshold AUC of the tuning subset "
        "vs held-out test samples - 50|, under the utility guard; needs no retraining. retrain: the paper's "
        "procedure, the average gap to a model retrained without the tuning subset with the model's "
        "unlearn_config.recipe (only for models that have one, on datasets whose remaining data may be used)",
    )
    lrs: list[LearningRate] | None = Field(
        default=None, min_length=1, max_length=8,
        description="learning rates to try; omitted = the model's lr x 0.1, 0.2, 0.5, 1 and 2",
    )  # fmt: skip
    step_sizes: list[StepSize] | None = Field(
        default=None, min_length=1, max_length=4,
        description="StepLR step sizes (epochs) to try; omitted = the model's step_size",
    )  # fmt: skip
    forget_size: int | None = Field(
        default=None, ge=10, le=10_000,
        description="samples in the tuning forget subset, drawn (seeded) from the training samples not yet "
        "forgotten; they stay in the model; omitted = 5% of the training split, at least 20",
    )  # fmt: skip
    runs: int = Field(default=2, ge=1, le=5, description="runs per setting, seeds unlearn_config.seed + k")
    forget_mixes: list[bool] | None = Field(
        default=None, min_length=1, max_length=2,
        description="AMUN's fine-tuning mixes to try, each with the whole grid: true = D_F with its labels in "
        "the mix (the paper's default), false = D_R and D_A only (D_A alone without remaining data); omitted = "
        "both for amun and amun_salun, the model's own for other methods",
    )  # fmt: skip

    @field_validator("lrs", "step_sizes", "forget_mixes")
    @classmethod
    def _distinct(cls, values: list[Any] | None) -> list[Any] | None:
        if values is not None and len(set(values)) != len(values):
            raise ValueError(f"the values must be distinct, got {values}")
        return values

    @model_validator(mode="after")
    def _bounded(self) -> TuningCreate:
        runs = len(self.lrs or [0] * 5) * len(self.step_sizes or [0]) * len(self.forget_mixes or [0, 0]) * self.runs
        if runs > MAX_TUNING_RUNS:
            raise ValueError(f"settings x runs is {runs}; a tuning job does at most {MAX_TUNING_RUNS} runs")
        return self
