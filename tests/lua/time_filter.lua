-- Timing driver: the CPU seconds a Fluent Bit Lua filter spends per KB on one record shape, at two
-- sizes. usage: luajit time_filter.lua FILTER.lua FUNCTION SHAPE SMALL_BYTES LARGE_BYTES
-- Prints "<seconds per KB, small> <seconds per KB, large>", each the best of 5 timed rounds (the
-- machine is shared; the minimum is the least disturbed). Records are built before the clock starts.
local filter, fn, shape, small, large = arg[1], arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
dofile(filter)
local call = _G[fn]

-- a shape is a repeated unit, put in the log line or (key) used as a field name
local SHAPES = {
  word = { "a" }, upper = { "A" }, digits = { "1" }, base64 = { "Zm9v" }, dotted = { "a." },
  hex_dash = { "0f-" }, spaced_digits = { "1 " }, at_signs = { "a@" }, local_part = { "a.b_c+" },
  quoted_key = { 'password="' }, scheme = { "authorization:" }, bearer = { "bearer " },
  dotless_key = { "a", key = true },
}
local spec = assert(SHAPES[shape], "unknown shape " .. shape)

local function record(bytes)
  local text = string.rep(spec[1], math.ceil(bytes / #spec[1])):sub(1, bytes)
  if spec.key then return { [text .. ".id"] = "1", msg = "x" } end
  return { log = text, stream = "stdout" }
end

local function per_kb(bytes)
  local reps = math.max(1, math.floor(64 * 1024 / bytes)) -- about 64 KB scrubbed per round
  local best = math.huge
  for _ = 1, 5 do
    local records = {}
    for i = 1, reps do records[i] = record(bytes) end
    local started = os.clock()
    for i = 1, reps do call("kube.test", 0, records[i]) end
    best = math.min(best, os.clock() - started)
  end
  return best / (reps * bytes / 1024)
end

print(string.format("%.9f %.9f", per_kb(small), per_kb(large)))
