"""Azure OpenAI: deployment URLs, `api-version`, and the `api-key` header; the wire format is OpenAI's."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import httpx

from turnout.backends.base import register
from turnout.backends.http import HTTPBackend
from turnout.backends.openai_compat import OpenAIBackend

DEFAULT_API_VERSION = "2024-10-21"


@register("azure")
class AzureBackend(OpenAIBackend):
    def default_headers(self) -> dict[str, str]:
        headers = HTTPBackend.default_headers(self)
        if self.config.api_key is not None:
            headers["api-key"] = self.config.api_key.get_secret_value()
        return headers

    @cached_property
    def url(self) -> httpx.URL:
        return self.endpoint("chat/completions")

    def endpoint(self, operation: str) -> httpx.URL:
        """A deployment's endpoint: chat/completions, embeddings or completions, with the api-version."""
        base = (self.config.base_url or "").rstrip("/")
        version = self.config.api_version or DEFAULT_API_VERSION
        return httpx.URL(f"{base}/openai/deployments/{self.config.deployment}/{operation}?api-version={version}")

    @property
    def responses_url(self) -> httpx.URL:
        # the Responses API is served by Azure's v1 API (no api-version), the deployment named as the model
        return httpx.URL(f"{(self.config.base_url or '').rstrip('/')}/openai/v1/responses")

    @property
    def responses_model(self) -> str:
        return self.config.deployment or self.upstream_model

    def payload(self, body: dict[str, Any]) -> dict[str, Any]:
        # the deployment names the model; Azure ignores `model`, so keep the caller's
        return dict(body)
