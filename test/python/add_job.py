# Adds one job to the reindex queue with the data given as JSON in argv[1], as it is, with
# BullMQ's Python client: how the tests send malformed requests from another language, and
# requests to a Redis Cluster. Prints the job's id. Connection and prefix as mm-ingest's:
# REDIS_URL, QUEUE_PREFIX, and REDIS_CLUSTER=true for a cluster (REDIS_URL's first node is
# the seed of redis-py's RedisCluster, which discovers the others).
import asyncio
import json
import os
import sys

from bullmq import Queue
from redis.asyncio.cluster import RedisCluster


async def main() -> None:
    url = os.environ["REDIS_URL"]
    cluster = os.environ.get("REDIS_CLUSTER") == "true"
    connection = RedisCluster.from_url(url.split(",")[0], decode_responses=True) if cluster else url
    queue = Queue("reindex", {"connection": connection, "prefix": os.environ["QUEUE_PREFIX"]})
    try:
        job = await queue.add("reindex", json.loads(sys.argv[1]))
        print(job.id)
    finally:
        await queue.close()


asyncio.run(main())
