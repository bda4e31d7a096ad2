/**
 * The Lua scripts that take a target's due keys into a batch and release a batch's keys,
 * each in one step (state.ts's module comment lists the keys they name).
 */

// KEYS: pending, inflight, batches, batch hash, batch keys list, event times.
// ARGV: max keys, cutoff (ms: a key that arrived before it is due), batch id, now, target id.
// (A key's wait counts from its arrival: events a store delivers late must still coalesce.)
// Takes up to N pending keys that no unfinished batch holds, oldest first, when N of them
// are waiting or the oldest has waited long enough; returns the number taken (0: nothing due).
export const TAKE = `
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local max = tonumber(ARGV[1])
local take = {}
local eligible = 0
local oldest = nil
for i = 1, #all, 2 do
  if redis.call('HEXISTS', KEYS[2], all[i]) == 0 then
    eligible = eligible + 1
    local score = tonumber(all[i + 1])
    if oldest == nil or score < oldest then oldest = score end
    if #take < max then take[#take + 1] = all[i] end
  end
end
if eligible == 0 then return 0 end
if eligible < max and oldest > tonumber(ARGV[2]) then return 0 end
local first = nil
for i = 1, #take do
  local score = tonumber(redis.call('ZSCORE', KEYS[6], take[i]) or redis.call('ZSCORE', KEYS[1], take[i]))
  if first == nil or score < first then first = score end
  redis.call('ZREM', KEYS[1], take[i])
  redis.call('ZREM', KEYS[6], take[i])
  redis.call('HSET', KEYS[2], take[i], ARGV[3])
end
for i = 1, #take, 500 do
  redis.call('RPUSH', KEYS[5], unpack(take, i, math.min(i + 499, #take)))
end
redis.call('HSET', KEYS[4], 'target', ARGV[5], 'oldest', first, 'flushedAt', ARGV[4], 'queued', '0')
redis.call('ZADD', KEYS[3], first, ARGV[3])
return #take`;

// KEYS: inflight, batches, batch hash, batch keys list. ARGV: batch id.
// Releases a batch's keys (only those it still holds) and forgets it.
export const RELEASE = `
local keys = redis.call('LRANGE', KEYS[4], 0, -1)
for i = 1, #keys do
  if redis.call('HGET', KEYS[1], keys[i]) == ARGV[1] then redis.call('HDEL', KEYS[1], keys[i]) end
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4])
return #keys`;
