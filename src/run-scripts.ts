/**
 * The Lua scripts of the run records (runs.ts): each counts a job, a page or a follow once,
 * in one step, so a crash between two calls never counts anything twice or not at all.
 * The pending hash's page token is kept in its field '#page' (job ids hold no '#').
 */
// Records a job's result once: a job processed twice (a stalled job picked up again)
// does not count twice. KEYS: run hash, jobs hash. ARGV: job id, result JSON, then
// counter name/increment pairs.
export const RECORD_JOB = `
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
for i = 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1`;

// The same for a job of the run with a number: once by its bit (or by its id, had a worker of
// the version before recorded it), and the result kept in the job's own hash for followers.
// KEYS: run hash, jobs hash, done bitmap, the job's hash. ARGV: job id, result, number, then
// counter name/increment pairs.
export const RECORD_NUMBERED_JOB = `
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HSETNX', KEYS[4], 'mmResult', ARGV[2]) end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('SETBIT', KEYS[3], ARGV[3], 1) == 1 then return 0 end
for i = 4, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1`;

// KEYS: run hash, :pending hash. ARGV: the page's token, then its job ids. Numbers the jobs
// from the run's sequence and stores them as the page's pending ones, with the page's token
// (field '#page': runs.ts's PENDING_PAGE), replacing the page before's.
export const INTEND = `
local k = #ARGV - 1
local last = redis.call('HINCRBY', KEYS[1], 'jobSeq', k)
local first = last - k
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], '#page', ARGV[1])
for i = 1, k do redis.call('HSET', KEYS[2], ARGV[i + 1], first + i - 1) end
return first`;

// Whether a page was counted (run-pages.ts): one the version before's pages hash holds; a
// numbered page (slot field set) at most the phase's highest counted number; a listing's
// page unless it is the one listed with the run's resume token (the first page while there
// is none), and any once the listing is complete. Arguments: run hash, pages hash, the page's
// token, slot field, slot number, the first page's token.
const COUNTED = `
local function counted(run, pages, token, field, ordinal, first)
  if redis.call('HEXISTS', pages, token) == 1 then return true end
  if field ~= '' then return tonumber(redis.call('HGET', run, field) or '0') >= tonumber(ordinal) end
  if redis.call('HEXISTS', run, 'listed') == 1 then return true end
  return token ~= (redis.call('HGET', run, 'lastToken') or first)
end
`;

// KEYS: run hash, pages hash (the version before's), queued-jobs set, pending hash. ARGV: page
// token, next token ('' at the end), slot field, slot number, first page's token, n, the page's
// n job ids, then counter name/increment pairs. Counts a page once, with the jobs new to the
// run among its ids, and moves the run on past it: a listing's page sets the resume token (its
// last marks the listing complete), a numbered page its phase's number. It drops the page's
// pending ids, and, counted now, the counted ids: those of a page recorded are never counted
// again, so the set holds at most the ids of the one page not yet recorded (settlePending's)
// and those of this one.
export const PAGE_DONE = `${COUNTED}
local n = tonumber(ARGV[6])
local added = 0
for i = 7, 6 + n do added = added + redis.call('SADD', KEYS[3], ARGV[i]) end
if counted(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[4], ARGV[5]) then added = 0 else
  if added > 0 then redis.call('HINCRBY', KEYS[1], 'jobsAdded', added) end
  for i = 7 + n, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
  redis.call('DEL', KEYS[3])
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
  elseif ARGV[2] == '' then
    redis.call('HDEL', KEYS[1], 'lastToken')
    redis.call('HSET', KEYS[1], 'listed', '1')
  else redis.call('HSET', KEYS[1], 'lastToken', ARGV[2]) end
end
redis.call('DEL', KEYS[4])
return added`;

// KEYS: run hash, pending hash, queued-jobs set, jobs hash, done bitmap, pages hash (the
// version before's), then the n pending jobs' BullMQ keys. ARGV: the page's token, slot field,
// slot number, first page's token, the n pending job ids, then their n numbers. A pending job
// that exists in the queue, or has a result, was added (by a producer that stopped before
// recording its page): counted if new to the run, unless its page was counted before (a page
// queued again counts nothing, as in PAGE_DONE). Then nothing is pending.
export const SETTLE_PENDING = `${COUNTED}
local added = 0
local n = (#ARGV - 4) / 2
if ARGV[1] ~= '' and counted(KEYS[1], KEYS[6], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then n = 0 end
for i = 1, n do
  local id = ARGV[4 + i]
  if redis.call('EXISTS', KEYS[6 + i]) == 1 or redis.call('HEXISTS', KEYS[4], id) == 1
    or redis.call('GETBIT', KEYS[5], ARGV[4 + n + i]) == 1 then
    added = added + redis.call('SADD', KEYS[3], id)
  end
end
if added > 0 then redis.call('HINCRBY', KEYS[1], 'jobsAdded', added) end
redis.call('DEL', KEYS[2])
return added`;

// KEYS: run hash, followed set, jobs hash, then for each of the n jobs: its followers set, its
// hash in the queue, its run's jobs hash. ARGV: run id, expiry ms, the n job ids. Follows each
// job once and counts it in the same step; a job that already has a result (it ended before
// it was followed: the worker that ended it did not see this run) is recorded here, once. A
// job gone from the queue with no result to read (ended and removed in the instant between
// the add and this) is not followed: nothing would ever tell its result.
export const FOLLOW = `
local added = 0
local function record(id, r)
  if redis.call('HSETNX', KEYS[3], id, r) == 0 then return end
  local st, _, ix, sk, fl, pt = string.match(r, '^(%a) (%d+) (%d+) (%d+) (%d+) (%d+)')
  if not st then
    local ok, j = pcall(cjson.decode, r)
    if not ok or type(j) ~= 'table' then return end
    st = (j.status == 'done') and 'd' or 'f'
    ix, sk, fl, pt = j.indexed or 0, j.skipped or 0, j.failed or 0, j.points or 0
  end
  redis.call('HINCRBY', KEYS[1], st == 'd' and 'jobsDone' or 'jobsFailed', 1)
  local counts = { objectsIndexed = ix, objectsSkipped = sk, objectsFailed = fl, points = pt }
  for f, v in pairs(counts) do
    local c = tonumber(v) or 0
    if c > 0 then redis.call('HINCRBY', KEYS[1], f, c) end
  end
end
for i = 3, #ARGV do
  local id = ARGV[i]
  local at = 3 + (i - 3) * 3
  local result = redis.call('HGET', KEYS[at + 2], 'mmResult') or redis.call('HGET', KEYS[at + 3], id)
  if (result or redis.call('EXISTS', KEYS[at + 2]) == 1) and redis.call('SADD', KEYS[2], id) == 1 then
    added = added + 1
    redis.call('SADD', KEYS[at + 1], ARGV[1])
    redis.call('PEXPIRE', KEYS[at + 1], ARGV[2])
    if result then record(id, result) end
  end
end
if added > 0 then redis.call('HINCRBY', KEYS[1], 'jobsFollowed', added) end
return added`;
