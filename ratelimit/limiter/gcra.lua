-- GCRA over a batch of keys, applied atomically in one call.
--
-- State per key is a string "<level> <t>": the level is the number of hits
-- still "in the bucket" and t the time of the last write in µs. The level
-- drains continuously at limit/period hits per µs. This is GCRA in its
-- continuous-state form (theoretical arrival time = t + level*period/limit).
-- Storing the level, which is bounded by 2*limit, rather than the arrival time
-- (about 1.7e15 µs) keeps Lua's doubles precise for fractional emission
-- intervals such as 60 s / 7. A string with SET PX is one command per write
-- where a hash would need HSET and PEXPIRE.
--
-- KEYS[i]    state of the i-th request
-- ARGV[1]    now in µs since the epoch, or 0 to use this Redis server's clock,
--            which every gateway instance then shares (no skew between them)
-- ARGV[2+4(i-1) ...] for request i: limit (hits per period), period (µs),
--            hits, mode:
--   a  admit:  consume hits if they fit, and only if every admit and check in
--              the batch is allowed: a call refused by one limit (say, a key's)
--              consumes nothing from the others (say, its organisation's)
--   c  check:  consume nothing; allowed while at least one hit is left
--   r  record: consume unconditionally, the usage has already happened; the
--              level is capped at 2*limit, so one oversized response blocks
--              the scope for at most one extra period instead of for hours
--   f  refund: give hits back
-- A key may appear more than once; its requests apply in order.
--
-- Returns four integers per request: allowed (1/0), hits remaining, µs until
-- the level is back to zero, µs until the same call could be allowed (0 if
-- it was).
--
-- Since Redis 5 scripts replicate their effects, not the script, so reading
-- TIME before writing is allowed; the call below only matters on Redis 3.2/4.
-- Per-request data sit in flat arrays: tables per request cost more than the
-- Redis commands themselves.
if redis.replicate_commands then redis.replicate_commands() end

local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local n = #KEYS
local limit, rate, hits, mode, eps = {}, {}, {}, {}, {}
local slot = {}           -- request -> index of the first request on its key
local first = {}          -- key -> that index
local stored, stamp = {}, {} -- per slot: level drained up to now, and its time
local has_admit = false
for i = 1, n do
  local a = 2 + (i - 1) * 4
  local l = tonumber(ARGV[a])
  limit[i] = l
  rate[i] = l / tonumber(ARGV[a + 1]) -- hits drained per µs
  hits[i] = tonumber(ARGV[a + 2])
  mode[i] = ARGV[a + 3]
  -- Levels carry floating-point error of ~1e-15 relative; comparisons allow
  -- for it so that a bucket drained by exactly one hit admits one.
  eps[i] = l * 1e-12
  has_admit = has_admit or mode[i] == 'a'

  local key = KEYS[i]
  local s = first[key]
  if not s then
    s = i
    first[key] = i
    local level, last = 0, now
    local v = redis.call('GET', key)
    if v then
      local lv, lt = string.match(v, '^(%S+) (%S+)$')
      level, last = tonumber(lv) or 0, tonumber(lt) or now
    end
    if now > last then
      level = math.max(0, level - (now - last) * rate[i])
    end
    -- If the clock stepped back, drain nothing and keep the later timestamp
    -- so that no interval is ever drained twice.
    stored[i], stamp[i] = level, math.max(now, last)
  end
  slot[i] = s
end

-- step applies request i to a level (consuming for admits only if admit is
-- true) and returns the new level, whether i is allowed, and the hits it
-- needed.
local function step(level, i, admit)
  local m = mode[i]
  if m == 'a' then
    local ok = level + hits[i] <= limit[i] + eps[i]
    if ok and admit then
      level = level + hits[i]
    end
    return level, ok, hits[i]
  elseif m == 'r' then
    level = math.min(level + hits[i], 2 * limit[i])
    return level, level <= limit[i] + eps[i], 1
  elseif m == 'f' then
    return math.max(0, level - hits[i]), true, 1
  end
  -- 'c'; the caller validates modes, so anything else is read-only too.
  return level, level + 1 <= limit[i] + eps[i], 1
end

-- ceil_us rounds a time up to whole µs, ignoring float noise below 1 ns.
local function ceil_us(x)
  return math.max(0, math.ceil(x - 0.001))
end

local function retry_after(level, i, need)
  return ceil_us((level + need - limit[i]) / rate[i])
end

-- Pass 1, on scratch levels: does every admit and check fit, counting what
-- the batch itself consumes before it? Its verdicts on admits and checks are
-- final, so that a refused batch always shows a refusal. Without admits,
-- pass 2 alone gives the same answers.
local admitted = true
local verdict, wait = {}, {}
if has_admit then
  local scratch = {}
  for i = 1, n do
    local s = slot[i]
    local level, ok, need = step(scratch[s] or stored[s], i, true)
    scratch[s] = level
    verdict[i] = ok
    wait[i] = ok and 0 or retry_after(level, i, need)
    if not ok and (mode[i] == 'a' or mode[i] == 'c') then
      admitted = false
    end
  end
end

-- Pass 2: apply for real, consuming admits only if the whole batch fits.
local final, out = {}, {}
for i = 1, n do
  local s = slot[i]
  local level, ok, need = step(final[s] or stored[s], i, admitted)
  final[s] = level
  local retry = 0
  if has_admit and (mode[i] == 'a' or mode[i] == 'c') then
    ok, retry = verdict[i], wait[i]
  elseif not ok then
    retry = retry_after(level, i, need)
  end
  out[#out + 1] = ok and 1 or 0
  out[#out + 1] = math.max(0, math.floor(limit[i] - level + eps[i]))
  out[#out + 1] = ceil_us(level / rate[i])
  out[#out + 1] = retry
end

for i = 1, n do
  local level = final[i]
  if level and level ~= stored[i] then
    local key = KEYS[i]
    if level > 0 then
      -- The key expires once fully drained: an absent key means level 0.
      redis.call('SET', key, string.format('%.17g %.17g', level, stamp[i]),
        'PX', math.ceil(level / rate[i] / 1000) + 1000)
    else
      redis.call('DEL', key)
    end
  end
end
return out
