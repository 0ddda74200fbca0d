"""Translation worker (pika consumer + CTranslate2) and delivery worker (Celery)."""
