# Adds one job to the reindex queue with the data given as JSON in argv[1], as it is, with
# BullMQ's Python client: how the tests send malformed requests from another language.
# Prints the job's id. Connection and prefix: REDIS_URL and QUEUE_PREFIX, as mm-ingest's.
import asyncio
import json
import os
import sys

from bullmq import Queue


async def main() -> None:
    queue = Queue("reindex", {"connection": os.environ["REDIS_URL"], "prefix": os.environ["QUEUE_PREFIX"]})
    try:
        job = await queue.add("reindex", json.loads(sys.argv[1]))
        print(job.id)
    finally:
        await queue.close()


asyncio.run(main())
