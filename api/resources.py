"""Process-wide resources the API builds at start-up and closes at shutdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from common.celery_config import make_celery
from common.db import AsyncDatabase
from common.jobs import CeleryPublisher
from common.settings import Settings


@dataclass
class Resources:
    settings: Settings
    db: AsyncDatabase
    redis: aioredis.Redis
    celery: Any
    publisher: CeleryPublisher

    @classmethod
    def create(cls, settings: Settings) -> Resources:
        celery = make_celery(settings, main="mcq-api")
        return cls(
            settings=settings,
            db=AsyncDatabase(settings),
            redis=aioredis.Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=1,
                socket_timeout=1,
                health_check_interval=15,
            ),
            celery=celery,
            publisher=CeleryPublisher(celery),
        )

    async def close(self) -> None:
        await self.db.dispose()
        await self.redis.aclose()
