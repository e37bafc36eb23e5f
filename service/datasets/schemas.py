"""Dataset request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.pagination import PageRead
from unlearning.specs import DATASET_FORMATS

DatasetFormat = Literal[DATASET_FORMATS]  # type: ignore[valid-type]


class DatasetCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "fashion-mnist", "format": "idx", "path": "fashion-mnist"},
                {"name": "digits", "format": "digits", "test_fraction": 0.25, "split_seed": 0},
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200, description="unique within the tenant")
    format: DatasetFormat = Field(
        description="idx (MNIST-style), cifar10 (python batches), imagefolder (train/ and test/ of class "
        "folders), npz (train.npz and test.npz), digits (scikit-learn's bundled set, no files)"
    )
    path: str | None = Field(
        default=None, description="folder relative to the service's data root; required except for digits"
    )
    id_file: str | None = Field(
        default=None,
        description="file relative to the data root, one training-sample ID per line in training order; "
        "omitted = positional IDs ('0', '1', ...) or the ids array of train.npz",
    )
    retain_access: bool = Field(default=True, description="may unlearning use the remaining training data")
    test_fraction: float | None = Field(
        default=None, gt=0, lt=1,
        description="digits only: held-out share (0.25); the stratified split needs every class on both sides, "
        "so 0.0051 to 0.9944 for the 1,797 digits",
    )  # fmt: skip
    split_seed: int | None = Field(
        default=None, ge=0, le=2**32 - 1, description="digits only: seed of the train/test split (0)"
    )

    @model_validator(mode="after")
    def _path_matches_format(self) -> DatasetCreate:
        if self.format == "digits" and self.path is not None:
            raise ValueError("the digits format is bundled and takes no path")
        if self.format != "digits" and not self.path:
            raise ValueError(f"format {self.format!r} needs a path inside the data root")
        if self.format != "digits" and (self.test_fraction is not None or self.split_seed is not None):
            raise ValueError("test_fraction and split_seed apply to the digits format only")
        return self


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    format: DatasetFormat
    path: str | None = Field(description="relative to the data root, symlinks resolved")
    id_file: str | None
    id_scheme: Literal["positional", "id_file"]
    retain_access: bool
    spec: dict[str, Any] = Field(description="the core library's DatasetSpec, paths relative to the data root")
    num_train: int
    num_test: int
    classes: list[str]
    input_shape: list[int] = Field(description="C, H, W")
    created_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _derive_id_scheme(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {"id_scheme": "id_file" if data.get("id_file") else "positional", **data}
        return {
            **{name: getattr(data, name) for name in cls.model_fields if name != "id_scheme"},
            "id_scheme": "id_file" if data.id_file else "positional",
        }


class DatasetList(PageRead[DatasetRead]):
    """The tenant's datasets, oldest first."""
