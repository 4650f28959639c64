-- Test driver: load a Fluent Bit Lua filter, call it on each record of a samples file the way
-- Fluent Bit does (tag, timestamp, record), and print one JSON line per call: code and record.
-- usage: lua5.4|luajit run_filter.lua FILTER.lua FUNCTION SAMPLES.lua (Lua 5.1 semantics only:
-- Fluent Bit embeds LuaJIT)
local filter, fn, samples = arg[1], arg[2], arg[3]
dofile(filter)
local call = _G[fn]
assert(type(call) == "function", "filter defines no function " .. fn)

local function encode(v)
  local t = type(v)
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif t == "number" then
    -- no math.type in 5.1: an integral value prints as an integer
    return (v == math.floor(v) and math.abs(v) < 2 ^ 53) and string.format("%d", v) or string.format("%.17g", v)
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "table" then
    local n = #v
    local count = 0
    for _ in pairs(v) do count = count + 1 end
    if n > 0 and n == count then
      local parts = {}
      for i = 1, n do parts[i] = encode(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = encode(k) .. ":" .. encode(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot encode " .. t)
end

for _, record in ipairs(dofile(samples)) do
  local code, ts, out = call("kube.test", 1733054400.5, record)
  -- a dropped record (-1) is gone: print only the verdict
  print(encode({ code = code, timestamp = ts, record = code ~= -1 and out or nil }))
end
