/**
 * The limiter's token log, in Lua for the scripts of rate-limit-scripts.ts: the tokens of
 * the requests reserved to start in each second (hash field `q`, "second:tokens,..."), kept
 * for the last 61 s and the slots ahead.
 *
 * Why it exists: the token schedule (`tt`) is a bucket of the minute's margin, TPM x mt
 * tokens. A request no bigger than the bucket keeps every 60 s of starts within TPM by the
 * bucket alone. A bigger one (a long text, a video: more than 0.83% of the TPM at the
 * default margin) cannot; holding it until its excess has drained kept the minute right
 * but halved the rate of a run of such requests (each waited its own tokens twice). Such a
 * request now goes once the schedule has drained, and the log holds it until the 60 s
 * around its second have room for it: three 1,024-token videos under 2,500 TPM go at 0 s,
 * 25 s and 61 s, not at 0 s, 49 s and 98 s.
 *
 * Seconds are whole, so the log counts a window of 61 s: never less than the provider's 60.
 * A settled request's correction (usage - reserved, from its ticket's second) goes to the
 * second it was reserved in; a reservation given back is taken off.
 */
export const TOKEN_LOG_LUA = `
local function qRead()
  local q, from = {}, math.floor(now / 1000) - 61
  local s = redis.call('HGET', key, 'q')
  if s then
    for sec, v in string.gmatch(s, '(%d+):(%-?[%d%.]+)') do
      sec = tonumber(sec)
      if sec >= from then q[sec] = (q[sec] or 0) + tonumber(v) end
    end
  end
  return q
end
local function qWrite(q)
  local from, secs, parts = math.floor(now / 1000) - 61, {}, {}
  for sec, v in pairs(q) do if sec >= from and v > 0 then secs[#secs + 1] = sec end end
  table.sort(secs)
  for i, sec in ipairs(secs) do parts[i] = sec .. ':' .. string.format('%.0f', q[sec]) end
  if #parts > 0 then redis.call('HSET', key, 'q', table.concat(parts, ',')) else redis.call('HDEL', key, 'q') end
end
-- tokens logged in the seconds [e - 60, e], and the oldest such second with any
local function qWindow(q, e)
  local sum, oldest = 0, nil
  for sec, v in pairs(q) do
    if sec >= e - 60 and sec <= e and v > 0 then
      sum = sum + v
      if not oldest or sec < oldest then oldest = sec end
    end
  end
  return sum, oldest
end
-- the first second from 'sec' where 'tokens' more keep every window around it within
-- 'budget' (the windows ending at it and at the logged seconds of the next 60 s)
local function qFit(q, sec, tokens, budget)
  while true do
    local sum, oldest = qWindow(q, sec)
    if sum + tokens > budget and oldest then
      sec = oldest + 61
    else
      local later = nil
      for s in pairs(q) do
        if s > sec and s <= sec + 60 and qWindow(q, s) + tokens > budget then later = s end
      end
      if not later then return sec end
      sec = sec + 1
    end
  end
end
-- settled requests that used more or fewer tokens than reserved ("second:delta,..."):
-- each second of starts gets its own correction
local function qCorrect(bySec)
  local q = qRead()
  for sec, d in string.gmatch(bySec, '(%d+):(%-?[%d%.]+)') do
    sec = tonumber(sec)
    if q[sec] then q[sec] = q[sec] + tonumber(d) end
  end
  qWrite(q)
end
-- a reservation given back: its tokens leave the second of its slot
local function qTakeOff(slotMs, tokens)
  if tokens <= 0 then return end
  local q = qRead()
  local sec = math.floor(slotMs / 1000)
  if q[sec] then q[sec] = q[sec] - tokens; qWrite(q) end
end
`;
