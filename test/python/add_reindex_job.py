# The README's example of a reindex request from Python ("Reindex from a queue"), byte for
# byte below this comment: test/integration/python-reindex.test.ts runs it, and checks that
# the README's code block is still exactly this file's body.
import asyncio
import os

from bullmq import Queue


async def main() -> None:
    queue = Queue("reindex", {
        "connection": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
        "prefix": os.environ.get("QUEUE_PREFIX", "mm-ingest"),
    })
    try:
        job = await queue.add("reindex", {
            "bucket": os.environ.get("BUCKET", "docs"),
            "collection": os.environ.get("COLLECTION", "docs"),
            "model": "qwen3-vl-embedding",
        }, {
            # a failed or crashed attempt is retried and resumes its run
            "attempts": 5, "backoff": {"type": "exponential", "delay": 10000},
            "removeOnComplete": 1000, "removeOnFail": 1000,
        })
        print(job.id)
    finally:
        await queue.close()


asyncio.run(main())
