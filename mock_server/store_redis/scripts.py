"""The Redis store's Lua scripts, each one atomic across workers; the stores name their keys and arguments."""

from __future__ import annotations

# Begins every write a submission makes (a job, a rule used up, a charge held, a request counted):
# its last argument is a deadline in Redis's own time (microseconds, `Namespace.deadline`), half
# the store's timeout after it was sent. A write Redis runs past it (Redis stalled, then continued)
# belongs to a request the fake has answered 503, or soon will: it is refused, changing nothing, so
# no submission answered 503 leaves anything behind.
TIMELY = """
local clock = redis.call('TIME')
if tonumber(clock[1]) * 1000000 + tonumber(clock[2]) > tonumber(ARGV[#ARGV]) then
  return redis.error_reply('LATE this write reached Redis after its request had been answered')
end
"""
# Every clock script returns the state; the first process to read a namespace's clock sets it up,
# with a random epoch (ARGV[3]) that a Redis losing its data (a restart, a flush) loses with it.
# A read also returns the rule book's version (KEYS[2]) prefixed by that epoch, so a request learns
# both in one round trip, and a version counting again from 0 after a loss never repeats one seen.
CLOCK_READ = """
local created = '0'
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'speed', ARGV[1], 'sim', ARGV[2], 'real', ARGV[2], 'jumped', '0', 'epoch', ARGV[3])
  created = '1'
end
local state = redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real', 'jumped', 'epoch')
state[5] = (state[5] or '') .. ':' .. (redis.call('GET', KEYS[2]) or '0')
state[6] = created
return state
"""
CLOCK_ADVANCE = """
local sim = tonumber(redis.call('HGET', KEYS[1], 'sim')) + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'sim', string.format('%.17g', sim))
redis.call('HINCRBYFLOAT', KEYS[1], 'jumped', ARGV[1])
return redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real', 'jumped')
"""
CLOCK_SET_SPEED = """
local s = redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real')
local now = tonumber(s[2]) + (tonumber(ARGV[2]) - tonumber(s[3])) * tonumber(s[1])
redis.call('HSET', KEYS[1], 'speed', ARGV[1], 'sim', string.format('%.17g', now), 'real', ARGV[2])
return redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real', 'jumped')
"""
CLOCK_RESET = """
redis.call('HSET', KEYS[1], 'speed', ARGV[2], 'sim', ARGV[1], 'real', ARGV[1], 'jumped', '0')
return redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real', 'jumped')
"""
# What the job scripts share. A job's member in the index and the by-time sets is a 20-digit
# sequence number, ':', its id; the by-time sets are the starts, the completed ends and the failed ends.
JOB_MEMBERS = """
local function id_of(member) return string.sub(member, 22) end
local function forget(by_time, members)
  for _, gone in ipairs(members) do
    for _, key in ipairs(by_time) do redis.call('ZREM', key, gone) end
  end
end
local function prune(index, by_time, now)
  forget(by_time, redis.call('ZRANGEBYSCORE', index, '-inf', now))
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
end
"""
# KEYS: job, output, index, sequence, starts, completed ends, failed ends, outputs, evictions.
# ARGV: data, result ms, output ms ('' for none), result deadline, id, now, start, end, failed
# ('1'/'0'), output deadline, the cap, the job key prefix, the output key prefix.
# The index is scored by the result's deadline (simulated), so expired members are pruned by score;
# members start with a sequence number, so jobs kept until the same instant keep their order. The
# same members sit in the starts and ends by time, which count the jobs by state (`JOBS_SUMMARY`);
# the outputs are indexed by their deadline (the same members). Past the cap, the oldest jobs and
# outputs go first.
ADD_JOB = (
    TIMELY
    + JOB_MEMBERS
    + """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local seq = redis.call('INCR', KEYS[4])
local member = string.format('%020d', seq) .. ':' .. ARGV[5]
redis.call('ZADD', KEYS[3], ARGV[4], member)
redis.call('ZADD', KEYS[5], ARGV[7], member)
redis.call('ZADD', ARGV[9] == '1' and KEYS[7] or KEYS[6], ARGV[8], member)
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
  redis.call('ZADD', KEYS[8], ARGV[10], member)
end
local by_time = {KEYS[5], KEYS[6], KEYS[7]}
prune(KEYS[3], by_time, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', ARGV[6])
local cap = tonumber(ARGV[11])
local over = redis.call('ZCARD', KEYS[3]) - cap
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, over - 1)
  forget(by_time, oldest)
  for _, gone in ipairs(oldest) do redis.call('DEL', ARGV[12] .. id_of(gone)) end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, over - 1)
  redis.call('HINCRBY', KEYS[9], 'jobs', over)
end
over = redis.call('ZCARD', KEYS[8]) - cap
if over > 0 then
  for _, gone in ipairs(redis.call('ZRANGE', KEYS[8], 0, over - 1)) do
    redis.call('DEL', ARGV[13] .. id_of(gone))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[8], 0, over - 1)
  redis.call('HINCRBY', KEYS[9], 'outputs', over)
end
"""
)
# Undoes `ADD_JOB` for a submission that failed after all (`Namespace.run`): KEYS: job, output,
# index, starts, completed ends, failed ends, outputs; ARGV: id, its scores in the index, starts,
# ends and outputs ('' without output). Its members are found among those of the same score.
FORGET_JOB = (
    JOB_MEMBERS
    + """
redis.call('DEL', KEYS[1], KEYS[2])
local function drop(key, score)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, score, score)) do
    if id_of(member) == ARGV[1] then redis.call('ZREM', key, member) end
  end
end
drop(KEYS[3], ARGV[2])
drop(KEYS[4], ARGV[3])
drop(KEYS[5], ARGV[4])
drop(KEYS[6], ARGV[4])
if ARGV[5] ~= '' then drop(KEYS[7], ARGV[5]) end
"""
)
# KEYS: index, starts, completed ends, failed ends, evictions; ARGV: now, now with the clock's slack.
# The jobs by state at `now`, each count O(log n): started and ended are counted by time.
JOBS_SUMMARY = (
    JOB_MEMBERS
    + """
prune(KEYS[1], {KEYS[2], KEYS[3], KEYS[4]}, ARGV[1])
local function next_end(key)
  local found = redis.call('ZRANGEBYSCORE', key, '(' .. ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return found[2] or false
end
local evicted = redis.call('HMGET', KEYS[5], 'jobs', 'outputs')
return {
  redis.call('ZCARD', KEYS[1]), redis.call('ZCOUNT', KEYS[2], '-inf', ARGV[2]),
  redis.call('ZCOUNT', KEYS[3], '-inf', ARGV[2]), redis.call('ZCOUNT', KEYS[4], '-inf', ARGV[2]),
  next_end(KEYS[3]), next_end(KEYS[4]), evicted[1] or '0', evicted[2] or '0'
}
"""
)
# KEYS: the current clock, then its floor as this worker last saw it projected to now: (speed, sim, real, jumped).
# Raises a clock that is behind the floor (a Redis that restarted and lost it) to the floor; never lowers it.
CLOCK_RESTORE = """
local s = redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real')
local now = tonumber(s[2]) + (tonumber(ARGV[3]) - tonumber(s[3])) * tonumber(s[1])
if now < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'speed', ARGV[1], 'sim', ARGV[2], 'real', ARGV[3], 'jumped', ARGV[4])
end
return redis.call('HMGET', KEYS[1], 'speed', 'sim', 'real', 'jumped')
"""
# A job and how long its key has to live (ms; -2 when there is no key), so a cached copy never outlives it.
JOB_READ = """
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
"""
JOURNAL_RECORD = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
"""
# KEYS: the rule index, then each rule's hash; ARGV: the rule ids.
RULES_ALL = """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local state = redis.call('HMGET', KEYS[2] .. id, 'data', 'times', 'seen', 'hits')
  if state[1] then
    table.insert(out, id)
    for _, value in ipairs(state) do table.insert(out, value) end
  end
end
return out
"""
# `RuleStore.take`, atomic across workers: KEYS are the index, the version and the candidate rules
# in order; ARGV[1] is count_undecided ('1'/'0'), then each candidate's id and whether it may decide.
# Counters change through HINCRBY only: Redis keeps them as exact 64-bit integers.
RULES_TAKE = (
    TIMELY
    + """
local chosen = nil
for i = 3, #KEYS do
  local state = redis.call('HMGET', KEYS[i], 'seen', 'nth')
  if state[1] and tonumber(state[1]) + 1 >= tonumber(state[2]) then chosen = i break end
end
local may = chosen ~= nil and ARGV[2 * chosen - 3] == '1'
if may or (chosen == nil and ARGV[1] == '1') then
  for i = 3, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HINCRBY', KEYS[i], 'seen', 1) end
  end
end
if not may then return false end
local key, id = KEYS[chosen], ARGV[2 * chosen - 4]
redis.call('HINCRBY', key, 'hits', 1)
local times = tonumber(redis.call('HGET', key, 'times'))
if times > 0 then times = redis.call('HINCRBY', key, 'times', -1) end
local state = redis.call('HMGET', key, 'data', 'times', 'seen', 'hits')
if times == 0 then
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], id)
  redis.call('INCR', KEYS[2])
end
return {id, state[1], state[2], state[3], state[4]}
"""
)
# KEYS: the rule's hash, the index, the version; ARGV: id, data, nth, times.
RULES_ADD = """
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'nth', ARGV[3], 'times', ARGV[4], 'seen', 0, 'hits', 0)
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]), ARGV[1])
redis.call('INCR', KEYS[3])
"""
RULES_REMOVE = """
redis.call('DEL', KEYS[2])
redis.call('INCR', KEYS[3])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""


# The account ledger: one script per operation, each settling the key's due charges first. KEYS:
# the account hash (topped_up, spent, held, seq), pending (charge ids by due time), charges (id ->
# billed flag and price), after (id -> balance right after its charge), after-due (those ids by
# due time), window (submission times, on the rate-limit clock), the index of keys. ARGV: key, now,
# starting credits ('': unlimited), kept_since (balances after charges due by then are forgotten;
# '' for an operation that does not settle), then the operation's own. How long balances and the
# rate-limit window last is decided above the stores (accounts.py), which pass the cutoffs. Floats
# travel as strings ('%.17g' keeps them exact) and are kept to a millionth of a credit, as
# accounts.py rounds them.
LEDGER = """
local acct, pending, charges, after, after_due, window = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now, credits, kept_since = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function round6(x) return math.floor(x * 1e6 + 0.5) / 1e6 end
local function num(x) return string.format('%.17g', x) end
if redis.call('HSETNX', acct, 'seq', '0') == 1 then redis.call('RPUSH', KEYS[7], ARGV[1]) end
local function settle()
  local state = redis.call('HMGET', acct, 'topped_up', 'spent', 'held')
  local topped_up, spent, held = tonumber(state[1]) or 0, tonumber(state[2]) or 0, tonumber(state[3]) or 0
  local due = redis.call('ZRANGEBYSCORE', pending, '-inf', ARGV[2], 'WITHSCORES')
  if #due > 0 then
    for i = 1, #due, 2 do
      local id = due[i]
      local charge = redis.call('HGET', charges, id)
      local price = tonumber(string.sub(charge, 2))
      held = round6(held - price)
      if string.sub(charge, 1, 1) == '1' then
        spent = round6(spent + price)
        if credits then
          redis.call('HSET', after, id, num(round6(credits + topped_up - spent)))
          redis.call('ZADD', after_due, due[i + 1], id)
        end
      end
      redis.call('HDEL', charges, id)
    end
    redis.call('ZREMRANGEBYSCORE', pending, '-inf', ARGV[2])
    redis.call('HSET', acct, 'spent', num(spent), 'held', num(held))
  end
  while true do
    local oldest = redis.call('ZRANGE', after_due, 0, 0, 'WITHSCORES')
    if #oldest == 0 or tonumber(oldest[2]) > kept_since then break end
    redis.call('ZREM', after_due, oldest[1])
    redis.call('HDEL', after, oldest[1])
  end
  return topped_up, spent, held
end
local function recent(window_since)
  while true do
    local oldest = redis.call('ZRANGE', window, 0, 0, 'WITHSCORES')
    if #oldest == 0 or tonumber(oldest[2]) > window_since then return oldest[2] end
    redis.call('ZREM', window, oldest[1])
  end
end
local function usage(topped_up, spent, held, window_since)
  local oldest = recent(window_since)
  return {num(topped_up), num(spent), num(held), redis.call('ZCARD', window), oldest or false}
end
"""
LEDGER_TOUCH = LEDGER
# ARGV[2] is the rate-limit clock's time here; ARGV[5]: the rate limit; ARGV[6]: the window's start
# (counts at or before it have left). Returns the oldest counted time when the window is full, else counts now.
LEDGER_COUNT = (
    TIMELY
    + LEDGER
    + """
local oldest = recent(tonumber(ARGV[6]))
if redis.call('ZCARD', window) >= tonumber(ARGV[5]) then return oldest end
redis.call('ZADD', window, ARGV[2], redis.call('HINCRBY', acct, 'seq', 1))
return false
"""
)
# ARGV[5..8]: due, request id, price, billed ('1' or '0'). Returns {balance, held} when refused.
LEDGER_HOLD = (
    TIMELY
    + LEDGER
    + """
local topped_up, spent, held = settle()
local price = tonumber(ARGV[7])
if credits then
  local balance = round6(credits + topped_up - spent)
  if round6(balance - held) < price then return {num(balance), num(held)} end
end
redis.call('ZADD', pending, ARGV[5], ARGV[6])
redis.call('HSET', charges, ARGV[6], ARGV[8] .. ARGV[7])
redis.call('HSET', acct, 'held', num(round6(held + price)))
return false
"""
)
# ARGV[5]: the request id. Releases its held charge, if still held (a submission that failed).
LEDGER_RELEASE = (
    LEDGER
    + """
local charge = redis.call('HGET', charges, ARGV[5])
if not charge then return 0 end
local held = tonumber(redis.call('HGET', acct, 'held')) or 0
redis.call('ZREM', pending, ARGV[5])
redis.call('HDEL', charges, ARGV[5])
redis.call('HSET', acct, 'held', num(round6(held - tonumber(string.sub(charge, 2)))))
return 1
"""
)
# ARGV[5]: the request id.
LEDGER_REMAINING = (
    LEDGER
    + """
settle()
return redis.call('HGET', after, ARGV[5])
"""
)
# ARGV[5]: credits to add; ARGV[6]: the window's start, on the rate-limit clock. (`LEDGER_USAGE`: ARGV[5].)
LEDGER_TOP_UP = (
    LEDGER
    + """
local topped_up, spent, held = settle()
topped_up = round6(topped_up + tonumber(ARGV[5]))
redis.call('HSET', acct, 'topped_up', num(topped_up))
return usage(topped_up, spent, held, tonumber(ARGV[6]))
"""
)
LEDGER_USAGE = (
    LEDGER
    + """
local topped_up, spent, held = settle()
return usage(topped_up, spent, held, tonumber(ARGV[5]))
"""
)
