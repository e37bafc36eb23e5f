"""The FastAPI application factory: `uvicorn service.app:create_app --factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.audits.endpoints import router as audits_router
from service.callbacks.endpoints import router as callbacks_router
from service.callbacks.webhooks import webhooks_router
from service.console.endpoints import router as console_router
from service.datasets.endpoints import router as datasets_router
from service.db import dispose_engines
from service.erasure.endpoints import router as erasure_router
from service.errors import install_problem_handlers, problem_responses, use_problem_media_type
from service.health import router as health_router
from service.jobs import dispatch
from service.jobs.endpoints import model_jobs_router
from service.jobs.endpoints import router as jobs_router
from service.models.endpoints import router as models_router
from service.observability import HttpMetrics, RequestContextMiddleware, configure_logging
from service.requests.endpoints import router as requests_router
from service.routing import operation_id
from service.settings import Settings, get_settings
from service.suppression.endpoints import router as suppression_router
from service.tenants.endpoints import router as api_keys_router
from service.versions.endpoints import router as versions_router


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    dispose_engines()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; settings default to the environment's. Engines are built lazily, in the serving process."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    dispatch.configure(settings)  # jobs created by this app's requests go to Celery when a broker is set
    app = FastAPI(
        title="Unlearning service",
        version="0.1.0",
        summary="Erase training samples from image classifiers, with membership-inference evidence.",
        lifespan=_lifespan,
        responses=problem_responses(500),
        generate_unique_id_function=operation_id,
        webhooks=webhooks_router(),
    )
    app.state.settings = settings
    app.state.metrics = HttpMetrics()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    app.include_router(health_router)
    app.include_router(api_keys_router)
    app.include_router(datasets_router)
    app.include_router(models_router)
    app.include_router(model_jobs_router)
    app.include_router(versions_router)
    app.include_router(requests_router)
    app.include_router(suppression_router)
    app.include_router(erasure_router)
    app.include_router(jobs_router)
    app.include_router(audits_router)
    app.include_router(callbacks_router)
    app.include_router(console_router)  # HTML pages for people, left out of the OpenAPI document

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes,
                webhooks=app.webhooks.routes,
            )
            app.openapi_schema = use_problem_media_type(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
