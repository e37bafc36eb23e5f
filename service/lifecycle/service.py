"""The sample claims of a model's requests, as the jobs that carry the requests out use them: what a job
forgets, what its model may not train on again, which version forgot which samples, and the version a
completed job marks its requests' claims with. Nothing here commits."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy.orm import Session

from service.lifecycle import repository


def samples_of_job(session: Session, *, job_id: uuid.UUID) -> list[str]:
    """The samples a job forgets: the claims of the requests it covers, sorted."""
    return repository.sample_ids_of_job(session=session, job_id=job_id)


def claims(session: Session, *, model_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """Every sample of the model forgotten or claimed by an accepted request (never to be trained on again),
    with the request that claimed it; one query, so the two always agree."""
    return dict(repository.claims_of_model(session=session, model_id=model_id))


def forgotten_by_version(session: Session, *, model_id: uuid.UUID) -> dict[uuid.UUID, list[str]]:
    """The samples each ready version of the model forgot, by the version's id."""
    by_version: dict[uuid.UUID, list[str]] = defaultdict(list)
    for sample_id, version_id in repository.forgotten_by_version(session=session, model_id=model_id):
        by_version[version_id].append(sample_id)
    return dict(by_version)


def mark_forgotten(session: Session, *, request_ids: Iterable[uuid.UUID], version_id: uuid.UUID) -> None:
    """The requests' claims now name the first version without their samples."""
    repository.mark_forgotten(session=session, request_ids=request_ids, version_id=version_id)
