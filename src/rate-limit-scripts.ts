/**
 * The shared rate limiter's side in Redis: the scheduler (GCRA reservations on Redis's
 * clock) and the controller (adaptive margin, AIMD learned rate), as Lua scripts over one
 * hash per account and model, and the tuning they run with. rate-limit.ts is the client
 * that calls them.
 * - Slots: `1 / (rate x (1 - margin))` apart (a warm start's first seconds wider); tokens
 *   on a second schedule at TPM / 60 x (1 - margin / 3): tokens are counted per minute;
 *   requests bigger than the minute's margin also by a log of the last 61 s
 *   (rate-limit-token-log.ts).
 * - Margin: a 429 when few came in the last minute is our own pacing too tight: +2 points
 *   (at most 25%), then -0.5 every 30 s, never below 2.5%. Many late wake-ups widen it too.
 * - Rate (AIMD): more 429s say the account gets less than believed: the rate falls to the
 *   successes per second of the last minute (to 50-95% of what it was), then after a
 *   minute without a 429 probes up by 1% of the believed rate every 15 s, never above it.
 *   Each change starts an epoch: 429s of requests reserved before it change nothing more.
 * - Retry-After, when the provider sends one, holds every slot until then.
 * (Every constant is in LIMITER_TUNING and a RATE_LIMIT_* setting.)
 *
 * State, one hash per account and model: `mm-ingest:rl:{account}:{model}` where `account`
 * is the first 16 hex digits of the SHA-256 of the API's base URL and the API key (never
 * the key). It does not depend on the queue prefix: deployments that use a key at one
 * endpoint share its quota, so they share the limiter; different keys (or regions) do not.
 * One key a script, so it works on Redis Cluster too.
 * Fields: tr, tt (next request slot and token schedule, ms of Redis time), r and ra
 * (learned rate, requests/s, and when it last changed), m and ma (margin and when it last
 * widened), tc (the tokens/s the token schedule is paced at), ep (epoch), l429 (last 429), since (start of the current activity), n
 * (reservations), q (the token log), ls, lr and lw (the late wake-ups' window: its start, reservations and late ones), k (tokens reserved net of corrections), o0..o59 and x0..x59 (successes
 * and 429s in each second of the last minute, as "second:count"). The hash expires after 6 hours unused.
 */
import { createHash } from 'node:crypto';
import { TOKEN_LOG_LUA } from './rate-limit-token-log.js';

// Shared by the scripts: the clock, the state read with its lazy updates (margin
// narrowing, rate probing), the settlement of answered requests.
// ARGV[1] rps ceiling (0: no request limit), ARGV[2] tokens/s ceiling (0: none),
// ARGV[3] token corrections (usage - reserved): their sum, '|' and each second's
// ("sum|second:delta,..."), ARGV[4] successes to count,
// ARGV[5..16] tuning, then the script's own arguments from ARGV[17].
const PRELUDE = `
local key = KEYS[1]
-- numbers go to Redis as text with 14 digits; times in ms need more
local function n(x) return string.format('%.4f', x) end
-- per-second counts kept in 60 fields ('o' successes, 'x' 429s: o0..o59), each 'second:count'
local function bumpSecond(letter, sec, by)
  local slot = letter .. (sec % 60)
  local cur = redis.call('HGET', key, slot)
  local c = 0
  if cur then
    local s, v = string.match(cur, '^(%d+):(%d+)$')
    if tonumber(s) == sec then c = tonumber(v) end
  end
  redis.call('HSET', key, slot, sec .. ':' .. (c + by))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local ceil, tps = tonumber(ARGV[1]), tonumber(ARGV[2])
local dtok, dtokBySec, oks = tonumber(string.match(ARGV[3], '^[^|]*')), string.match(ARGV[3], '|(.*)$') or '', tonumber(ARGV[4])
${TOKEN_LOG_LUA}local mStart, mMin, mMax, mWiden = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local mNarrow, mEvery, tShare = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local decMin, decMax, pHold, pEvery, pStep = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
local ttl = 21600000
local f = redis.call('HMGET', key, 'tr', 'tt', 'r', 'ra', 'm', 'ma', 'ep', 'l429', 'since', 'tc')
local tr, tt = tonumber(f[1]) or 0, tonumber(f[2]) or 0
-- the token schedule holds tokens, paced at the tokens/s it was told (tc): told another
-- rate (a raised or lowered TPM), the tokens still ahead drain at the new one
local tc = tonumber(f[10])
if tps > 0 and (not tc or math.abs(tc - tps) > 1e-6 * tps) then
  if tc and tc > 0 and tt > now then tt = now + (tt - now) * tc / tps; redis.call('HSET', key, 'tt', n(tt)) end
  redis.call('HSET', key, 'tc', string.format('%.17g', tps))
end
local since = tonumber(f[9])
-- the span successes are counted over starts again after a minute without requests
if not since or math.max(tr, tt) < now - 60000 then since = now; redis.call('HSET', key, 'since', n(now)) end
local ep = tonumber(f[7]) or 0
local l429 = tonumber(f[8])
local m, ma = tonumber(f[5]) or mStart, tonumber(f[6]) or now
if m > mMin and now - ma >= mEvery then
  local steps = math.floor((now - ma) / mEvery)
  m = math.max(mMin, m - steps * mNarrow)
  ma = ma + steps * mEvery
  redis.call('HSET', key, 'm', n(m), 'ma', n(ma))
elseif not f[5] then
  redis.call('HSET', key, 'm', n(m), 'ma', n(ma))
end
local r, ra = tonumber(f[3]), tonumber(f[4]) or now
if ceil > 0 then
  if not r or r > ceil then r = ceil end
  if r < ceil and now - ra >= pHold + pEvery then
    local steps = math.floor((now - ra - pHold) / pEvery)
    r = math.min(ceil, r + steps * pStep * ceil)
    ra = ra + steps * pEvery
    redis.call('HSET', key, 'r', n(r), 'ra', n(ra))
  end
end
-- the token schedule's margin: a share of the request margin (tokens are counted per minute)
local function tokenMargin() return m * tShare end
local function tokenRate() return tps * (1 - tokenMargin()) / 1000 end
if dtok ~= 0 then
  if tps > 0 then tt = tt + dtok / tokenRate(); redis.call('HSET', key, 'tt', n(tt)) end
  if tps > 0 and dtokBySec ~= '' then qCorrect(dtokBySec) end
  redis.call('HINCRBYFLOAT', key, 'k', n(dtok))
end
if oks > 0 then bumpSecond('o', math.floor(now / 1000), oks) end
redis.call('PEXPIRE', key, ttl)
`;

// ARGV[17] tokens of this request (estimate); ARGV[18], ARGV[19] and ARGV[26], or '', 0
// and 0: the schedule's end, the request slot and the token wait of a reservation of this
// caller's that is given back (woken too late for it), taken back only if nobody reserved
// after it; ARGV[27] and ARGV[28], or 0 and 0: the slot and tokens of any reservation
// given back (its tokens leave the token log). Returns {wait ms, epoch, rate, margin,
// slot (Redis ms), the schedule's end after this slot (for a give-back), the request slot
// (before the token schedule's wait), the token wait (ms the slot waited for the token
// schedule beyond its end)}.
const RESERVE = `${PRELUDE}
local tokens = tonumber(ARGV[17])
if ARGV[18] ~= '' and f[1] == ARGV[18] then
  tr = tonumber(ARGV[19])
  tt = tt - tonumber(ARGV[26])
end
if tps > 0 then qTakeOff(tonumber(ARGV[27]), tonumber(ARGV[28])) end
local slot = now
if ceil > 0 then slot = math.max(slot, tr) end
local reqSlot = slot
local cost, q = 0, nil
if tps > 0 then
  local rho = tokenRate()
  cost = tokens / rho
  -- a token bucket of the minute's margin (TPM x mt tokens, tolMin ms of the schedule):
  -- a request within it goes once the tokens before it have drained, less its own room in
  -- the bucket, so no 60 s ending at it carries more than TPM x mt + 60 s x rho = TPM; and
  -- at most a second's share of the margin early. A bigger one goes once they have
  -- drained, and when the token log has room for it in every 60 s around its second
  -- (rate-limit-token-log.ts)
  local mt = tokenMargin()
  local tolSec = 1000 * mt / (1 - mt)
  local tolMin = 60000 * mt / (1 - mt)
  slot = math.max(slot, tt + math.max(-tolSec, math.min(0, cost - tolMin)))
  q = qRead()
  if cost > tolMin then
    local sec = math.floor(slot / 1000)
    local fit = qFit(q, sec, tokens, tps * 60 * (1 - mt))
    if fit > sec then slot = fit * 1000 end
  end
  local qs = math.floor(slot / 1000)
  q[qs] = (q[qs] or 0) + tokens
  qWrite(q)
end
-- ARGV[24], ARGV[25]: the warm start's length and margin (LIMITER_TUNING.warmMs)
local spacing = m
if now - since < tonumber(ARGV[24]) then spacing = math.max(m, tonumber(ARGV[25])) end
local nextTr = ''
if ceil > 0 then nextTr = n(slot + 1000 / (r * (1 - spacing))); redis.call('HSET', key, 'tr', nextTr) end
local tokenWait = 0
if tps > 0 then
  tokenWait = math.max(0, slot - tt)
  redis.call('HSET', key, 'tt', n(math.max(tt, slot) + cost))
end
redis.call('HINCRBY', key, 'n', 1)
redis.call('HINCRBYFLOAT', key, 'k', n(tokens))
-- late wake-ups (ARGV[20] 1: this one replaces a slot woken up too late for): more than
-- ARGV[21] of the reservations of a window of ARGV[22] ms (at least ARGV[23] of them)
-- widen the margin, and with it the lateness a slot tolerates
local used = m
local lateWiden, lateWin = tonumber(ARGV[21]), tonumber(ARGV[22])
if lateWiden > 0 then
  local lf = redis.call('HMGET', key, 'ls', 'lr', 'lw')
  local ls = tonumber(lf[1]) or now
  local lr, lw = (tonumber(lf[2]) or 0) + 1, (tonumber(lf[3]) or 0) + tonumber(ARGV[20])
  if now - ls >= lateWin then
    if lr >= tonumber(ARGV[23]) and lw > lateWiden * lr and m < mMax then
      m = math.min(mMax, m + mWiden)
      redis.call('HSET', key, 'm', n(m), 'ma', n(now))
    end
    ls, lr, lw = now, 0, 0
  end
  redis.call('HSET', key, 'ls', n(ls), 'lr', lr, 'lw', lw)
end
return {n(slot - now), ep, n(r or 0), n(used), n(slot), nextTr, n(reqSlot), n(tokenWait)}
`;

// A reservation given back (its wait was aborted): ARGV[17] the schedule's end it left,
// ARGV[18] its request slot, ARGV[19] its token wait, ARGV[20] and ARGV[21] its slot and
// tokens (they leave the token log). The slot is taken back only if
// nobody reserved after it (the schedule still ends where this reservation left it): the
// next request then gets it, and the token schedule loses the wait this one added (a slot
// held back by the token schedule does not hold back the request schedule).
// A slot with later ones behind it stays a gap (moving theirs would need them all to be
// told). Its tokens come back with the settlements (ARGV[3]). Returns 1 if taken back.
const RELEASE = `${PRELUDE}
if tps > 0 then qTakeOff(tonumber(ARGV[20]), tonumber(ARGV[21])) end
if ARGV[17] ~= '' and f[1] == ARGV[17] then
  redis.call('HSET', key, 'tr', n(math.max(now, tonumber(ARGV[18]))))
  if tps > 0 then redis.call('HSET', key, 'tt', n(tt - tonumber(ARGV[19]))) end
  return 1
end
return 0
`;

// Settlements only (no reservation came within the flush delay).
const SETTLE = `${PRELUDE}
return 1
`;

// A 429. ARGV[17] the refused reservation's epoch (-1: unknown), ARGV[18] Retry-After ms (0: none).
// Returns {what it did: 0 nothing (stale), 1 widened the margin, 2 lowered the rate, 3 held; rate; margin}.
const THROTTLED = `${PRELUDE}
local tepoch, hold = tonumber(ARGV[17]), tonumber(ARGV[18])
local minRefused, minShare = tonumber(ARGV[19]), tonumber(ARGV[20])
local sec = math.floor(now / 1000)
-- every 429 is evidence, counted per second like the successes (x0..x59)
bumpSecond('x', sec, 1)
local did = 0
if hold > 0 then
  redis.call('HSET', key, 'tr', n(math.max(tr, now + hold)), 'tt', n(math.max(tt, now + hold)))
  did = 3
end
if tepoch >= 0 and tepoch < ep then return {did, n(r or 0), n(m)} end
redis.call('HSET', key, 'l429', n(now))
-- successes and 429s of the last minute
local function lastMinute(prefix)
  local fields = {}
  for i = 0, 59 do fields[#fields + 1] = prefix .. i end
  local vals = redis.call('HMGET', key, unpack(fields))
  local total = 0
  for i = 1, 60 do
    local v = vals[i]
    if v then
      local s, c = string.match(v, '^(%d+):(%d+)$')
      s = tonumber(s)
      if s and s > sec - 60 and s <= sec then total = total + tonumber(c) end
    end
  end
  return total
end
local oks, refused = lastMinute('o'), lastMinute('x')
local span = math.max(1000, math.min(60000, now - since))
local observed = oks * 1000 / span
-- a few 429s among many answers: our own pacing was too tight (arrival jitter ate the
-- margin); many, or fewer answers than paced for while slots queue ahead (ARGV[21] ms of
-- activity, ARGV[22] of the pace): the account gets less than we believe
local pace = (r or ceil) * (1 - m)
local under = ceil > 0 and span >= tonumber(ARGV[21]) and tr > now + 1000 / pace and observed < pace * tonumber(ARGV[22])
if ceil <= 0 or (not under and (refused < minRefused or refused < minShare * (oks + refused))) then
  m = math.min(mMax, m + mWiden)
  redis.call('HSET', key, 'm', n(m), 'ma', n(now), 'ep', ep + 1)
  return {1, n(r or 0), n(m)}
end
local nr = math.max(r * decMin, math.min(r * decMax, observed))
redis.call('HSET', key, 'r', n(nr), 'ra', n(now), 'ep', ep + 1)
return {2, n(nr), n(m)}
`;

const STATE = `
local f = redis.call('HMGET', KEYS[1], 'r', 'm', 'n', 'k', 'l429')
return f
`;

export interface Script {
  readonly body: string;
  readonly sha: string;
}
const script = (body: string): Script => ({ body, sha: createHash('sha1').update(body).digest('hex') });
export const SCRIPTS = {
  reserve: script(RESERVE),
  settle: script(SETTLE),
  throttled: script(THROTTLED),
  release: script(RELEASE),
  state: script(STATE),
};
