"""The Backend interface and its registry. A backend speaks one provider's wire format and always returns
OpenAI-shaped completions and chunks, so everything above it sees one format."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from turnout.config import ConfigError, ConfigIssue, ModelConfig
from turnout.errors import InvalidRequestError
from turnout.params import Params, validate_params
from turnout.registry import Registry

#: A streamed chunk: the JSON text of one OpenAI `chat.completion.chunk` (what follows `data: `).
Chunk = str


class Backend(abc.ABC):
    provider: ClassVar[str]
    Options: ClassVar[type[Params]] = Params

    def __init__(self, name: str, config: ModelConfig, *, path: str = "") -> None:
        self.name = name
        self.config = config
        self.upstream_model = config.model or name
        self.options = validate_params(self.Options, config.options, f"{path or 'models.' + name}.options")
        if config.embeddings and type(self).embed is Backend.embed:
            # the provider knows whether it can embed; the loader cannot (it imports no backend)
            raise ConfigError([ConfigIssue(f"{path or 'models.' + name}.embeddings",
                                           f"provider '{config.provider}' does not serve embeddings; "
                                           f"providers that do: {', '.join(embedding_providers())}")])

    @abc.abstractmethod
    async def complete(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Send a non-streaming chat completion (with extra request `headers`, if any); return the
        OpenAI-shaped response."""

    @abc.abstractmethod
    def stream(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> AsyncIterator[list[Chunk]]:
        """Send a streaming chat completion; yield batches of OpenAI chunk JSON texts (the chunks that
        arrived together). Errors before the first batch raise UpstreamError; after it, StreamInterruptedError."""

    async def embed(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Send an OpenAI embeddings request (`model` still the caller's); return OpenAI's embeddings list object.
        A provider that serves embeddings overrides this; `embeddings: true` on any other is a config error."""
        raise InvalidRequestError(f"model '{self.name}' (provider '{self.provider}') does not serve embeddings",
                                  param="model", code="model_not_embeddings")

    async def aclose(self) -> None:
        """Release connections. Called once the backend has no request in flight."""

    def secrets(self) -> tuple[str, ...]:
        """What must never reach a client, a log line or a metric: the key, and every configured header value
        (a provider's key often travels in one: x-api-key, a gateway's token)."""
        key = self.config.api_key.get_secret_value() if self.config.api_key else ""
        return tuple(dict.fromkeys(s for s in (key, *self.config.headers.values()) if s))


backends: Registry[Backend] = Registry("provider", attr="provider")
register = backends.register



def embedding_providers() -> list[str]:
    return [name for name in backends.names() if backends.get(name).embed is not Backend.embed]


def build_backend(name: str, config: ModelConfig) -> Backend:
    return backends.get(config.provider)(name, config, path=f"models.{name}")
